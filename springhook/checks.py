"""Checks that `manage.py check --deploy` adds for Springhook's own settings."""

import os

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


@register(Tags.security, deploy=True)
def retired_proxy_variable(app_configs, **kwargs) -> list[Warning]:
    # Read here and nowhere else: a settings file from before the change still sets it,
    # and behind a proxy on another machine it would now end in redirects to HTTPS.
    if "DJANGO_BEHIND_TLS_PROXY" not in os.environ:
        return []
    return [
        Warning(
            "DJANGO_BEHIND_TLS_PROXY is no longer read: whether a request came over HTTPS"
            " is gunicorn's to say, from X-Forwarded-Proto of the addresses in"
            " FORWARDED_ALLOW_IPS (127.0.0.1 and ::1 unless set).",
            hint="Remove DJANGO_BEHIND_TLS_PROXY; with a proxy on another machine, set"
            " FORWARDED_ALLOW_IPS to its address (docs/operations.md, 'The proxy in front').",
            id="springhook.W002",
        )
    ]
