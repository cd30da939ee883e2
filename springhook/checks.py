"""Checks that `manage.py check --deploy` adds for Springhook's own settings."""

from django.conf import settings
from django.core.checks import Tags, Warning, register


@register(Tags.security, deploy=True)
def private_urls_allowed(app_configs, **kwargs) -> list[Warning]:
    if not settings.WEBHOOK_ALLOW_PRIVATE_URLS:
        return []
    return [
        Warning(
            "WEBHOOK_ALLOW_PRIVATE_URLS is on: webhooks may point at loopback and private"
            " addresses, so anyone who may edit a webhook can make this server send requests"
            " into its own network.",
            hint="Unset WEBHOOK_ALLOW_PRIVATE_URLS (or set it to 0) in production; it is meant"
            " for development and tests.",
            id="springhook.W001",
        )
    ]
