"""The dispatch loop's steps, shared by the embedded dispatcher and the Celery tasks.

`webhook_deliver` sends one webhook's batches one after the other in the calling thread:
the simple path for tests and scripts. The dispatcher and the Celery workers run the
delivery engine (deliveries.engine) instead, many webhooks at once."""

import time

from deliveries.periodic import TICK_TASK
from deliveries.services.batch import webhooks_due
from deliveries.services.claim import delivery_claim
from deliveries.services.periodic import periodic_jobs_run
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


def dispatch_tick(*, time_budget: float | None = None) -> list[int]:
    """One tick, as the Celery beat runs it: the tick's periodic jobs (heartbeat, collect
    for up to `time_budget` seconds, notify: deliveries.services.periodic), then the
    webhooks with an attempt due."""
    periodic_jobs_run(task=TICK_TASK, time_budget=time_budget)
    return webhooks_due()
