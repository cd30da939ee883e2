"""What a partner may do to its own webhook, through the portal or the partner API alike:
resend a failed delivery now, a test event, a resync, pause, resume, rotate the signing
secret, change the URL. Each one runs the staff operation's service, answers in words what
it did, and records that for staff (webhooks.services.webhook_action_record).

The partner's wording differs from staff's where it names what to do next: a partner is
pointed to its own actions, never to ones only staff have.
"""

import time
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from deliveries.http import webhook_post
from deliveries.models import Delivery
from deliveries.payload import payload_render
from deliveries.services.claim import message_id_generate, webhook_signing_secrets
from deliveries.services.operations import (
    DeliveryError,
    delivery_test_send,
    delivery_tests_drop,
    test_interval_take,
    webhook_resync,
)
from deliveries.services.scope import ScopeChanged, webhook_scope_change
from deliveries.services.send import USER_AGENT
from deliveries.signing import signature_header
from webhooks.models import Webhook
from webhooks.services import (
    SECRET_OVERLAP,
    Actor,
    webhook_action_record,
    webhook_pause,
    webhook_resume,
    webhook_secret_rotate,
)
from webhooks.validators import webhook_url_validator


class NotResendable(DeliveryError):
    """The delivery was accepted already, or an attempt of it is in flight."""


class UrlChangeRefused(DeliveryError):
    """The new URL did not accept the test event (or is the webhook's URL already)."""


class UrlNotAllowed(UrlChangeRefused):
    """The new URL is malformed or points where webhooks may not (the address guard)."""


@dataclass(frozen=True)
class SecretRotated:
    webhook: Webhook
    # The new secret, to be shown once to whoever rotated it and never again.
    secret: str
    message: str


def _webhook(webhook_id: int) -> Webhook:
    webhook = Webhook.objects.filter(pk=webhook_id).first()
    if webhook is None:
        raise DeliveryError(f"webhook {webhook_id} does not exist")
    return webhook


def partner_delivery_resend(*, webhook_id: int, message_id: str, actor: Actor) -> str:
    """Make a failed (or not yet tried) delivery's next attempt due now: the dispatcher
    sends it at its next tick, with the same webhook-id. Raises NotResendable for an
    accepted delivery, one being sent right now or a paused webhook's, DeliveryError when
    there is none."""
    now = timezone.now()
    with transaction.atomic():
        delivery = (
            Delivery.objects.select_for_update(no_key=True)
            .filter(webhook_id=webhook_id, message_id=message_id)
            .first()
        )
        if delivery is None:
            raise DeliveryError(f"webhook {webhook_id} has no delivery {message_id}")
        if not delivery.is_open:
            raise NotResendable(
                f"Delivery {message_id} was accepted already: there is nothing to resend."
            )
        if not Webhook.objects.filter(pk=webhook_id, is_active=True).exists():
            raise NotResendable(
                "The webhook is paused: nothing is sent until you resume it, and then this "
                "delivery goes out first."
            )
        if delivery.is_held(now):
            raise NotResendable(
                f"Delivery {message_id} is being sent right now: see its attempts in a moment."
            )
        delivery.make_due(now=now)
        delivery.save(update_fields=Delivery.MAKE_DUE_FIELDS)
    message = (
        f"Resend queued: delivery {message_id} goes out again within a few seconds, "
        "with the same webhook-id."
    )
    webhook_action_record(webhook_id=webhook_id, actor=actor, action="resend", outcome=message)
    return message


def partner_test_send(*, webhook_id: int, actor: Actor) -> Delivery:
    """Queue a test event (deliveries.services.delivery_test_send), refused in the
    partner's words while the webhook is paused or has a batch waiting, and at most once
    per WEBHOOK_TEST_INTERVAL per webhook and per key (raises TestTooSoon sooner)."""
    webhook = _webhook(webhook_id)
    if not webhook.is_active:
        raise DeliveryError(f"{webhook} is paused: resume it first, then send a test event.")
    waiting = Delivery.objects.open().filter(webhook_id=webhook_id).only("message_id").first()
    if waiting is not None:
        raise DeliveryError(
            f"{webhook} has a batch waiting to be accepted ({waiting.message_id}): resend "
            "it now and, once it was accepted, send the test event."
        )
    delivery = delivery_test_send(
        webhook_id=webhook_id,
        min_interval=timedelta(seconds=settings.WEBHOOK_TEST_INTERVAL),
        api_key_id=actor.api_key_id,
    )
    webhook_action_record(
        webhook_id=webhook_id, actor=actor, action="test",
        outcome=f"Test event {delivery.message_id} queued: it goes out within a few seconds.",
    )
    return delivery


def partner_scope_change(
    *, webhook_id: int, institute_ids: list[int] | None, objects: str, actor: Actor
) -> tuple[ScopeChanged, str]:
    """Replace the webhook's scope (deliveries.services.webhook_scope_change): what entered
    is imported and what left destroyed; a change that imports is limited as a resync is,
    per webhook and per key (ScopeTooSoon). Returns what was queued, and it in words."""
    changed = webhook_scope_change(
        webhook_id=webhook_id, institute_ids=institute_ids, objects=objects,
        min_interval=timedelta(seconds=settings.WEBHOOK_RESYNC_INTERVAL),
        api_key_id=actor.api_key_id,
    )
    scope = "the whole catalogue" if institute_ids is None else (
        f"{len(institute_ids)} institute{'s' if len(institute_ids) != 1 else ''}"
    )
    message = (
        f"Scope set to {scope} ({objects}): queued an import of {changed.imported} and a "
        f"destroy of {changed.destroyed} institutes, after what already waits, coalesced "
        "with it."
    )
    webhook_action_record(webhook_id=webhook_id, actor=actor, action="change_scope",
                          outcome=message)
    return changed, message


def partner_resync(*, webhook_id: int, actor: Actor) -> int:
    """Queue the whole catalogue, at most once per WEBHOOK_RESYNC_INTERVAL per webhook and
    per key (raises ResyncTooSoon sooner). Returns the number of institutes queued."""
    count = webhook_resync(
        webhook_id=webhook_id,
        min_interval=timedelta(seconds=settings.WEBHOOK_RESYNC_INTERVAL),
        api_key_id=actor.api_key_id,
    )
    webhook_action_record(
        webhook_id=webhook_id, actor=actor, action="resync",
        outcome=f"Queued the whole catalogue: {count} institute{'s' if count != 1 else ''}.",
    )
    return count


def partner_pause(*, webhook_id: int, actor: Actor) -> str:
    _webhook(webhook_id)
    webhook_pause(webhook_id=webhook_id, reason=f"Paused by the partner ({actor.label}).")
    message = "Paused: nothing is sent; changes keep collecting and go out when you resume."
    webhook_action_record(webhook_id=webhook_id, actor=actor, action="pause", outcome=message)
    return message


def partner_resume(*, webhook_id: int, actor: Actor) -> str:
    _webhook(webhook_id)
    webhook_resume(webhook_id=webhook_id)
    message = "Resumed: what collected while paused goes out now, oldest first."
    webhook_action_record(webhook_id=webhook_id, actor=actor, action="resume", outcome=message)
    return message


def partner_secret_rotate(*, webhook_id: int, actor: Actor) -> SecretRotated:
    """A new signing secret, as staff rotation gives (the previous one keeps signing for
    SECRET_OVERLAP); the record for staff holds no secret."""
    _webhook(webhook_id)
    webhook = webhook_secret_rotate(webhook_id=webhook_id)
    hours = int(SECRET_OVERLAP.total_seconds() // 3600)
    message = (
        f"Rotated the signing secret. Every request now carries two signatures: one with "
        f"the new secret and one with the previous secret, for {hours} hours (until "
        f"{webhook.previous_secret_expires_at:%Y-%m-%d %H:%M} UTC). Switch your receiver "
        "to the new secret within that time."
    )
    webhook_action_record(
        webhook_id=webhook_id, actor=actor, action="rotate_secret", outcome=message
    )
    return SecretRotated(webhook=webhook, secret=webhook.secret, message=message)


def partner_url_change(*, webhook_id: int, url: str, actor: Actor) -> str:
    """Point the webhook at `url`, but only once `url` accepted a test event.

    The address guard applies (webhooks.validators), then a signed `{"changes": []}` is
    POSTed to `url` right away, signed with the webhook's current secrets, as any delivery.
    Only a 2xx answer changes the URL; otherwise UrlChangeRefused says what `url` answered,
    and the webhook keeps sending to its old URL. The test is not a delivery: it is not
    retried and not in the history."""
    webhook = _webhook(webhook_id)
    url = url.strip()
    try:
        webhook_url_validator(url)
    except ValidationError as error:
        raise UrlNotAllowed(" ".join(error.messages)) from None
    if url == webhook.url:
        raise UrlChangeRefused("That is the webhook's URL already.")
    # The test POST goes to an address the partner names: limited like test events.
    test_interval_take(
        webhook_id=webhook_id, api_key_id=actor.api_key_id,
        min_interval=timedelta(seconds=settings.WEBHOOK_TEST_INTERVAL),
    )
    message_id = message_id_generate()
    body = payload_render([]).encode("utf-8")
    timestamp = int(time.time())
    result = webhook_post(
        url=url,
        body=body,
        headers={
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "webhook-id": message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature_header(
                secrets=list(webhook_signing_secrets(webhook, timezone.now())),
                message_id=message_id, timestamp=timestamp, body=body,
            ),
        },
    )
    if not result.accepted:
        answer = (
            f"HTTP {result.status_code}" if result.status_code
            else result.error_message or result.error_kind or "no answer"
        )
        raise UrlChangeRefused(
            f"The new URL did not accept the test event ({answer}), so the URL was not "
            "changed: deliveries still go to the old one."
        )
    with transaction.atomic():
        updated = Webhook.objects.filter(pk=webhook_id).update(
            url=url, updated_at=timezone.now()
        )
    if not updated:
        raise DeliveryError(f"webhook {webhook_id} does not exist")
    # A test event asked for the old URL never goes to the new one.
    delivery_tests_drop(webhook_id=webhook_id, reason="the URL changed")
    message = (
        f"Changed the URL: the new one accepted a test event (HTTP {result.status_code}, "
        f"{round(result.duration * 1000)} ms), and every delivery from now on goes there."
    )
    webhook_action_record(webhook_id=webhook_id, actor=actor, action="change_url",
                          outcome=f"{message} New URL: {url}")
    return message
