"""The dispatch loop's steps, shared by the embedded dispatcher and the Celery tasks."""

import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Exists, OuterRef, Q, Subquery
from django.utils import timezone

from deliveries.models import Delivery, DispatcherHeartbeat, PendingEntry
from deliveries.services.batch import bundle_delay
from deliveries.services.claim import delivery_claim
from deliveries.services.collect import changes_collect
from deliveries.services.notify import webhooks_failure_notify
from deliveries.services.record import delivery_record
from deliveries.services.send import delivery_send
from webhooks.models import Webhook


def webhook_deliver(*, webhook_id: int, time_budget: float = 10.0) -> int:
    """Send the webhook's due batches one after the other until none is due, one fails, or
    the time budget is spent (so that one busy webhook does not hold a worker forever).
    Returns the number of attempts made."""
    deadline = time.monotonic() + time_budget
    attempts = 0
    while True:
        claim = delivery_claim(webhook_id=webhook_id)
        if claim is None:
            return attempts
        result = delivery_send(claim)
        attempts += 1
        if not delivery_record(claim, result) or time.monotonic() >= deadline:
            return attempts


def webhooks_due(*, now: datetime | None = None) -> list[int]:
    """Active webhooks with an attempt to make now: a retry that is due and not held, or,
    with no open delivery, pending entries that waited the bundle delay or fill a batch."""
    now = now or timezone.now()
    open_deliveries = Delivery.objects.filter(webhook=OuterRef("pk")).exclude(
        state=Delivery.State.DELIVERED
    )
    rows = Webhook.objects.filter(is_active=True).annotate(
        open_due=Exists(
            open_deliveries.filter(
                Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now),
                Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lte=now),
            )
        ),
        has_open=Exists(open_deliveries),
        oldest_pending=Subquery(
            PendingEntry.objects.filter(webhook=OuterRef("pk"))
            .order_by("first_change_at")
            .values("first_change_at")[:1]
        ),
        # Whether a full batch waits, in the same query (one query per tick, not one per
        # webhook): an entry at offset batch_size - 1 exists.
        full_batch=Exists(
            PendingEntry.objects.filter(webhook=OuterRef("pk")).order_by()[
                settings.WEBHOOK_BATCH_SIZE - 1 : settings.WEBHOOK_BATCH_SIZE
            ]
        ),
    )
    due = []
    for webhook in rows.only("id", "bundle_delay"):
        if webhook.open_due:
            due.append(webhook.pk)
        elif not webhook.has_open and webhook.oldest_pending is not None:
            waited = webhook.oldest_pending <= now - timedelta(seconds=bundle_delay(webhook))
            if waited or webhook.full_batch:
                due.append(webhook.pk)
    return due


def dispatch_tick(*, time_budget: float = 5.0) -> list[int]:
    """One tick of the dispatcher: move recorded changes into the webhooks' pending entries
    (for up to `time_budget` seconds), tell staff about webhooks failing for over an hour,
    then return the webhooks with an attempt due."""
    dispatcher_heartbeat_record()
    deadline = time.monotonic() + time_budget
    while changes_collect() and time.monotonic() < deadline:
        pass
    webhooks_failure_notify()
    return webhooks_due()


# The heartbeat row is written at most this often, however fast the dispatcher ticks.
HEARTBEAT_INTERVAL = 1.0
_heartbeat_written_at = 0.0


def dispatcher_heartbeat_record(*, force: bool = False) -> None:
    """Record that the dispatcher ticks now (for /healthz), at most once a second per
    process unless `force`: one tiny UPDATE, never a row lock held beyond it."""
    global _heartbeat_written_at
    if not force and time.monotonic() - _heartbeat_written_at < HEARTBEAT_INTERVAL:
        return
    now = timezone.now()
    if not DispatcherHeartbeat.objects.filter(pk=1).update(ticked_at=now):
        DispatcherHeartbeat.objects.get_or_create(pk=1, defaults={"ticked_at": now})
    _heartbeat_written_at = time.monotonic()
