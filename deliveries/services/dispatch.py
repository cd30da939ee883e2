"""The dispatch loop's steps, shared by the embedded dispatcher and the Celery tasks.

`webhook_deliver` sends one webhook's batches one after the other in the calling thread:
the simple path for tests and scripts. The dispatcher and the Celery workers run the
delivery engine (deliveries.engine) instead, many webhooks at once."""

import time

from django.utils import timezone

from deliveries.models import DispatcherHeartbeat
from deliveries.services.batch import webhooks_due
from deliveries.services.claim import delivery_claim
from deliveries.services.collect import changes_collect
from deliveries.services.notify import webhooks_failure_notify
from deliveries.services.record import delivery_record
from deliveries.services.send import delivery_send


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


def dispatch_tick(*, time_budget: float = 5.0) -> list[int]:
    """One tick of the dispatcher: move recorded changes into the webhooks' pending entries
    (for up to `time_budget` seconds), tell staff about webhooks failing for over an hour,
    then return the webhooks with an attempt due."""
    dispatch_collect(time_budget=time_budget)
    return webhooks_due()


def dispatch_collect(*, time_budget: float = 5.0) -> None:
    """The tick's bookkeeping: the heartbeat, recorded changes collected (for up to
    `time_budget` seconds), staff told about webhooks failing for over an hour."""
    dispatcher_heartbeat_record()
    deadline = time.monotonic() + time_budget
    while changes_collect() and time.monotonic() < deadline:
        pass
    webhooks_failure_notify()


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
