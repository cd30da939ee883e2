from django.apps import AppConfig


class PortalConfig(AppConfig):
    """The partner portal at /portal/: the people of one partner see their own webhooks and
    deliveries, and with an acting link fix them. Above deliveries: it reads and acts
    through the services of deliveries, webhooks and apikeys, and holds only sign-in links."""

    name = "portal"
    verbose_name = "Partner portal"
