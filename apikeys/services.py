"""API keys: created with their raw text shown once, stored as a hash, checked per request."""

import hashlib
import secrets
from collections.abc import Iterable
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apikeys.models import ApiKey
from webhooks.models import Webhook, WebhookAction
from webhooks.services import Actor, webhook_action_record

API_KEY_PREFIX = "sk_"
API_KEY_BYTES = 32
# Longer than any key we issue (3 + 43 characters): anything longer is refused unhashed.
_API_KEY_MAX_LENGTH = 100
# last_used_at is written at most this often per key, so that reading the API does not
# turn every request into a write.
API_KEY_LAST_USED_INTERVAL = timedelta(minutes=1)


def api_key_hash(raw_key: str) -> str:
    """The stored form of a key: SHA-256, hex.

    A fast hash is the right tool here, unlike for passwords. Slow, salted hashes
    (PBKDF2, Argon2) exist because passwords have little entropy and a stolen table can be
    brute-forced; a key of 32 random bytes has 256 bits, which no amount of hashing speed
    makes guessable. A plain digest also lets a key be found by an indexed lookup instead
    of trying every row with a deliberately slow function on every request.
    """
    return hashlib.sha256(raw_key.encode("utf-8")).hexdigest()


def api_key_create(*, name: str, webhook_ids: Iterable[int] = ()) -> tuple[ApiKey, str]:
    """Create an active API key; return it with the raw key, which exists only here.

    The raw key (`sk_` + 32 random bytes, URL-safe base64) is never stored: only its
    SHA-256 and its first 8 characters (to recognise it by). Show it to the user once.
    With `webhook_ids` the key belongs to those webhooks' partner. Raises ValidationError
    for a blank or too long name or a webhook that does not exist; then nothing is saved.
    """
    wanted = sorted(set(webhook_ids))
    found = set(Webhook.objects.filter(pk__in=wanted).values_list("pk", flat=True))
    missing = [webhook_id for webhook_id in wanted if webhook_id not in found]
    if missing:
        raise ValidationError(
            {"webhooks": [f"webhook {webhook_id} does not exist" for webhook_id in missing]}
        )
    raw_key = API_KEY_PREFIX + secrets.token_urlsafe(API_KEY_BYTES)
    api_key = ApiKey(name=name.strip(), prefix=raw_key[:8], key_hash=api_key_hash(raw_key))
    api_key.full_clean()
    with transaction.atomic():
        api_key.save()
        api_key.webhooks.set(wanted)
    return api_key, raw_key


def api_key_check(*, raw_key: str) -> ApiKey | None:
    """The active key that `raw_key` is, or None; notes (to the minute) that it was used.

    There is no constant-time comparison to do: the key is found by looking its hash up
    in a unique index, never by comparing secrets byte by byte. Timing that lookup tells
    an attacker at most something about the hash of a guess they made, which says
    nothing about any real key.
    """
    if not raw_key or len(raw_key) > _API_KEY_MAX_LENGTH:
        return None
    try:
        api_key = ApiKey.objects.only("id", "name", "prefix", "last_used_at").get(
            key_hash=api_key_hash(raw_key), is_active=True
        )
    except ApiKey.DoesNotExist:
        return None
    now = timezone.now()
    stale_before = now - API_KEY_LAST_USED_INTERVAL
    if api_key.last_used_at is None or api_key.last_used_at <= stale_before:
        # Conditional, so that concurrent requests of one key write it once between them.
        ApiKey.objects.filter(pk=api_key.pk).filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lte=stale_before)
        ).update(last_used_at=now)
        api_key.last_used_at = now
    return api_key


def _key_record(api_key: ApiKey, *, action: str, outcome: str) -> None:
    """Record on each of the key's webhooks what its partner did to the key (for staff)."""
    actor = Actor(channel=WebhookAction.Channel.API, label=str(api_key), api_key_id=api_key.pk)
    for webhook_id in api_key.webhooks.values_list("pk", flat=True):
        webhook_action_record(webhook_id=webhook_id, actor=actor, action=action,
                              outcome=outcome)


def api_key_rotate(*, api_key_id: int) -> tuple[ApiKey, str]:
    """Replace a key with a new one of the same name and webhooks, and revoke the old one
    in the same transaction: from the moment this returns only the new key works. Returns
    the new key and its raw text (shown once, as api_key_create's)."""
    with transaction.atomic():
        old = ApiKey.objects.select_for_update().filter(pk=api_key_id, is_active=True).first()
        if old is None:
            raise ValidationError({"api_key": [f"API key {api_key_id} is not active"]})
        new, raw_key = api_key_create(
            name=old.name, webhook_ids=old.webhooks.values_list("pk", flat=True)
        )
        old.is_active = False
        old.save(update_fields=["is_active"])
        _key_record(old, action="rotate_api_key",
                    outcome=f"Replaced its API key {old.prefix}… with {new.prefix}…; "
                    f"{old.prefix}… no longer works.")
    return new, raw_key


def api_key_revoke(*, api_key_id: int) -> ApiKey:
    """Revoke a key at once: every later request with it is refused (401)."""
    with transaction.atomic():
        api_key = ApiKey.objects.select_for_update().filter(pk=api_key_id).first()
        if api_key is None:
            raise ValidationError({"api_key": [f"API key {api_key_id} does not exist"]})
        api_key.is_active = False
        api_key.save(update_fields=["is_active"])
        _key_record(api_key, action="revoke_api_key",
                    outcome=f"Revoked its API key {api_key.prefix}…: it no longer works.")
    return api_key
