"""Claiming: take a webhook's next attempt under a lease, in one short transaction.

The database is the queue of record. A delivery is claimed in a short transaction that
sets a lease; the HTTP request runs with no transaction and no row lock; the outcome is
recorded in a second short transaction (deliveries.services.record). A worker that dies
mid-send leaves its lease to expire, and the next claim takes the delivery over with the
same `webhook-id`.
"""

import secrets as secrets_module
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from deliveries.models import Delivery, DeliveryAttempt
from deliveries.payload import payload_render
from deliveries.services.batch import batch_take
from webhooks.models import Webhook

ErrorKind = DeliveryAttempt.ErrorKind


@dataclass(frozen=True)
class Claim:
    """What a worker needs to make one attempt, taken under a lease."""

    webhook_id: int
    delivery_id: int
    attempt_id: int
    attempt_number: int
    lease_token: str
    message_id: str
    url: str
    body: bytes
    secrets: tuple[str, ...]


def lease_seconds() -> float:
    # Longer than any attempt can take (connect + total timeout), so a live worker never
    # loses its lease; short enough that a dead worker's batch goes out again soon.
    return (
        settings.WEBHOOK_CONNECT_TIMEOUT + settings.WEBHOOK_TIMEOUT + settings.WEBHOOK_LEASE_MARGIN
    )


def message_id_generate() -> str:
    return "msg_" + secrets_module.token_hex(16)


def webhook_signing_secrets(webhook: Webhook, now: datetime) -> tuple[str, ...]:
    """The new secret, and the previous one while its overlap window lasts."""
    if webhook.previous_secret and (
        webhook.previous_secret_expires_at is None or webhook.previous_secret_expires_at > now
    ):
        return (webhook.secret, webhook.previous_secret)
    return (webhook.secret,)


def delivery_claim(*, webhook_id: int, force: bool = False) -> Claim | None:
    """Take the webhook's next attempt under a lease, or None when there is nothing to do.

    Returns the open delivery if its retry is due and nobody holds it; otherwise, when no
    delivery is open, builds the next batch from the pending entries if one is due. At
    most one delivery per webhook is open (a database constraint), and a claimed one is
    held by a lease, so no two workers ever send one webhook's batches at once.
    """
    now = timezone.now()
    with transaction.atomic():
        webhook = (
            Webhook.objects.select_for_update(skip_locked=True)
            .filter(pk=webhook_id, is_active=True)
            .first()
        )
        if webhook is None:  # paused, deleted, or another worker is claiming it right now
            return None
        delivery = (
            Delivery.objects.select_for_update()
            .filter(webhook=webhook)
            .exclude(state=Delivery.State.DELIVERED)
            .first()
        )
        if delivery is not None:
            if delivery.lease_expires_at is not None and delivery.lease_expires_at > now:
                return None  # in flight
            if delivery.next_attempt_at is not None and delivery.next_attempt_at > now:
                return None  # waiting for its retry
            if delivery.lease_token:
                # The last holder neither finished nor renewed: its worker died mid-send.
                DeliveryAttempt.objects.filter(
                    delivery=delivery, error_kind=ErrorKind.IN_PROGRESS
                ).update(
                    error_kind=ErrorKind.LEASE_EXPIRED,
                    error_message="the worker stopped before recording an answer",
                )
        else:
            delivery = delivery_open(webhook=webhook, now=now, force=force)
            if delivery is None:
                return None
        delivery.attempt_count += 1
        delivery.lease_token = uuid.uuid4().hex
        delivery.lease_expires_at = now + timedelta(seconds=lease_seconds())
        delivery.last_attempt_at = now
        delivery.save(
            update_fields=["attempt_count", "lease_token", "lease_expires_at", "last_attempt_at"]
        )
        attempt = DeliveryAttempt.objects.create(
            delivery=delivery,
            webhook_id=webhook.pk,
            number=delivery.attempt_count,
            started_at=now,
            error_kind=ErrorKind.IN_PROGRESS,
        )
        return Claim(
            webhook_id=webhook.pk,
            delivery_id=delivery.pk,
            attempt_id=attempt.pk,
            attempt_number=attempt.number,
            lease_token=delivery.lease_token,
            message_id=delivery.message_id,
            url=webhook.url,
            body=delivery.payload.encode("utf-8"),
            secrets=webhook_signing_secrets(webhook, now),
        )


def delivery_open(*, webhook: Webhook, now: datetime, force: bool) -> Delivery | None:
    # Inside the claim's transaction, with the webhook row locked.
    entries = batch_take(webhook=webhook, now=now, force=force)
    if not entries:
        return None
    return Delivery.objects.create(
        webhook=webhook,
        message_id=message_id_generate(),
        payload=payload_render(entries),
        entry_count=len(entries),
        next_attempt_at=now,
    )
