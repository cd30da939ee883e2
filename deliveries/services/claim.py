"""Claiming: take the next attempts of many webhooks under leases, in one short transaction.

The database is the queue of record. A delivery is claimed in a short transaction that
sets a lease; the HTTP request runs with no transaction and no row lock; the outcome is
recorded in a second short transaction (deliveries.services.record). A worker that dies
mid-send leaves its lease to expire, and the next claim takes the delivery over with the
same `webhook-id`.
"""

import secrets as secrets_module
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from deliveries.models import Delivery, DeliveryAttempt, DeliveryBody
from deliveries.payload import payload_render
from deliveries.services.batch import BatchEntry, batches_take, webhooks_due
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
    """Take one webhook's next attempt under a lease, or None when there is nothing to do
    (see deliveries_claim)."""
    claims = deliveries_claim(
        limit=1, webhook_ids=[webhook_id], force_ids=(webhook_id,) if force else ()
    )
    return claims[0] if claims else None


def deliveries_claim(
    *,
    limit: int,
    webhook_ids: Collection[int] | None = None,
    force_ids: Collection[int] = (),
    idle_locked: Sequence[Webhook] = (),
) -> list[Claim]:
    """Take the next attempts of up to `limit` webhooks under leases, in one transaction.

    The candidates are `webhook_ids`, or the webhooks with an attempt due (webhooks_due).
    Their rows are locked in id order, skipping those another claim holds right now. A
    webhook's open delivery is taken if its retry is due and nobody holds it; a webhook
    with no open delivery gets its next batch if one is due (`force_ids` skip the bundle
    delay). At most one delivery per webhook is open (a database constraint), and a claimed
    one is held by a lease, so no two workers ever send one webhook's batches at once.

    Locks are taken in one order everywhere: webhook rows by id, then their deliveries;
    `FOR NO KEY UPDATE`, since no key changes, so the collector's foreign-key checks on
    the webhook rows never wait for a claim.

    `idle_locked`: webhooks whose rows the caller's transaction holds already and that it
    knows to have no open delivery (deliveries_record_and_claim, whose batches it just
    recorded as accepted). They come first, and are neither locked nor read again.
    """
    if limit <= 0:
        return []
    now = timezone.now()
    idle_locked = [webhook for webhook in idle_locked if webhook.is_active][:limit]
    known = {webhook.pk for webhook in idle_locked}
    if webhook_ids is None:
        webhook_ids = webhooks_due(now=now)
    others = [webhook_id for webhook_id in webhook_ids if webhook_id not in known]
    if not others and not idle_locked:
        return []
    # No savepoint inside a caller's transaction (deliveries_record_and_claim): a failure
    # fails the caller's whole transaction, which is what it wants, at two round trips less.
    with transaction.atomic(savepoint=False):
        webhooks = list(
            Webhook.objects.filter(pk__in=others, is_active=True)
            .order_by("pk")
            .select_for_update(skip_locked=True, no_key=True)[: limit - len(idle_locked)]
        ) if others and limit > len(idle_locked) else []
        if not webhooks and not idle_locked:
            return []  # paused, deleted, or being claimed by another worker right now
        by_id = {webhook.pk: webhook for webhook in [*idle_locked, *webhooks]}
        open_deliveries = {
            delivery.webhook_id: delivery
            for delivery in Delivery.objects.open()
            .filter(webhook_id__in=[webhook.pk for webhook in webhooks])
            .select_related("body")
            .order_by("pk")
            .select_for_update(no_key=True, of=("self",))
        } if webhooks else {}
        # Not the ones in flight or waiting for their retry.
        retries = [delivery for delivery in open_deliveries.values() if delivery.is_due(now)]
        lapsed = [delivery.pk for delivery in retries if delivery.lease_token]
        if lapsed:
            # The last holder neither finished nor renewed: its worker died mid-send.
            DeliveryAttempt.objects.filter(
                delivery_id__in=lapsed, error_kind=ErrorKind.IN_PROGRESS
            ).update(
                error_kind=ErrorKind.LEASE_EXPIRED,
                error_message="the worker stopped before recording an answer",
            )
        idle = [*idle_locked,
                *(webhook for webhook in webhooks if webhook.pk not in open_deliveries)]
        opened = _deliveries_open(webhooks=idle, now=now, force_ids=force_ids) if idle else []
        lease_expires_at = now + timedelta(seconds=lease_seconds())
        for delivery in retries:
            delivery.lease(now=now, until=lease_expires_at)
        if retries:
            Delivery.objects.bulk_update(retries, Delivery.LEASE_FIELDS)
        claimed = sorted([*retries, *opened], key=lambda delivery: delivery.webhook_id)
        attempts = DeliveryAttempt.objects.bulk_create(
            DeliveryAttempt(
                delivery_id=delivery.pk,
                webhook_id=delivery.webhook_id,
                number=delivery.attempt_count,
                # A delivery opened here got its created_at (auto_now_add) a moment after
                # `now`: its first attempt starts then, never before it existed.
                started_at=max(now, delivery.created_at),
                error_kind=ErrorKind.IN_PROGRESS,
            )
            for delivery in claimed
        )
    bodies: dict[int, bytes] = {}
    claims = []
    for delivery, attempt in zip(claimed, attempts, strict=True):
        webhook = by_id[delivery.webhook_id]
        body = bodies.get(delivery.body_id)
        if body is None:
            body = bodies[delivery.body_id] = delivery.payload.encode("utf-8")
        claims.append(
            Claim(
                webhook_id=webhook.pk,
                delivery_id=delivery.pk,
                attempt_id=attempt.pk,
                attempt_number=attempt.number,
                lease_token=delivery.lease_token,
                message_id=delivery.message_id,
                url=webhook.url,
                body=body,
                secrets=webhook_signing_secrets(webhook, now),
            )
        )
    return claims


def _deliveries_open(
    *, webhooks: list[Webhook], now: datetime, force_ids: Collection[int]
) -> list[Delivery]:
    """The webhooks' next batches as new deliveries, already leased for their first
    attempt: one statement for all of them. Inside the claim's transaction, with the
    webhook rows locked."""
    taken = batches_take(webhooks=webhooks, now=now, force_ids=force_ids)
    if not taken:
        return []
    # Webhooks with the same entries share one list: render each distinct batch once, and
    # store each distinct body once (one statement), whatever the number of webhooks.
    rendered: dict[int, str] = {}
    for entries in taken.values():
        if id(entries) not in rendered:
            rendered[id(entries)] = payload_render(entries)
    bodies = DeliveryBody.objects.store(rendered.values())
    lease_expires_at = now + timedelta(seconds=lease_seconds())
    deliveries = []
    for webhook_id, entries in sorted(taken.items()):
        delivery = Delivery(
            webhook_id=webhook_id,
            message_id=message_id_generate(),
            body=bodies[rendered[id(entries)]],
            entry_count=len(entries),
            next_attempt_at=now,
        )
        delivery.lease(now=now, until=lease_expires_at)
        deliveries.append(delivery)
    return Delivery.objects.bulk_create(deliveries)


def delivery_open(*, webhook: Webhook, now: datetime, force: bool) -> Delivery | None:
    """Open the webhook's next batch as a delivery due now, without claiming it (an
    operator's "retry now"). Inside the caller's transaction, with the webhook row locked."""
    taken = batches_take(webhooks=[webhook], now=now, force_ids=(webhook.pk,) if force else ())
    entries: list[BatchEntry] = taken.get(webhook.pk, [])
    if not entries:
        return None
    return Delivery.objects.create(
        webhook=webhook,
        message_id=message_id_generate(),
        payload=payload_render(entries),
        entry_count=len(entries),
        next_attempt_at=now,
    )
