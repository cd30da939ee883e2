from django.apps import AppConfig


class SpringhookConfig(AppConfig):
    name = "springhook"
    verbose_name = "Springhook"

    def ready(self) -> None:
        from springhook import checks  # noqa: F401 -- registers the deploy checks
