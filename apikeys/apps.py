from django.apps import AppConfig


class ApiKeysConfig(AppConfig):
    """API keys and the JSON plumbing of every API endpoint (errors, the key check,
    paging), below the apps that serve endpoints: the catalogue's Trainings API and the
    partners' own webhook endpoints."""

    name = "apikeys"
    verbose_name = "API keys"
