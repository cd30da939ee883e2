"""Reads about API keys that the endpoints need."""

from django.db.models import QuerySet

from apikeys.models import ApiKey
from webhooks.models import Webhook


def api_key_webhooks(*, api_key: ApiKey) -> QuerySet[Webhook]:
    """The webhooks this key belongs to (none for a catalogue-only key), by name and id."""
    return Webhook.objects.filter(api_keys=api_key).order_by("name", "id")
