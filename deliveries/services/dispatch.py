"""The tick as the Celery beat runs it: the tick's periodic jobs, then the webhooks with an
attempt due.

The delivery engine (deliveries.engine) claims, sends and records those webhooks'
attempts, many at once: in each Celery send task, and in the embedded dispatcher, which
runs the same periodic jobs itself (deliveries.services.periodic.PeriodicRunner)."""

from deliveries.periodic import TICK_TASK
from deliveries.services.batch import webhooks_due
from deliveries.services.periodic import periodic_jobs_run


def dispatch_tick(*, time_budget: float | None = None) -> list[int]:
    """One tick, as the Celery beat runs it: the tick's periodic jobs (heartbeat, collect
    for up to `time_budget` seconds, notify: deliveries.services.periodic), then the
    webhooks with an attempt due."""
    periodic_jobs_run(task=TICK_TASK, time_budget=time_budget)
    return webhooks_due()
