"""The periodic jobs' runs (the table: deliveries.periodic): a Celery task's jobs, and the
embedded dispatcher's runner; and the two jobs that are no other module's service."""

import time

from django.utils import timezone

from deliveries import periodic
from deliveries.models import DispatcherHeartbeat
from deliveries.services.collect import changes_collect

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


def changes_collect_for(*, time_budget: float) -> None:
    """Collect recorded changes until none is left or `time_budget` seconds are spent."""
    deadline = time.monotonic() + time_budget
    while changes_collect() and time.monotonic() < deadline:
        pass


def periodic_jobs_run(*, task: str, time_budget: float | None = None) -> dict[str, object]:
    """Run the jobs of one Celery task, in table order (a budgeted one with `time_budget`
    if given, else its Celery budget); returns each job's result by name. A failure
    raises."""
    return {
        job.name: job.run(time_budget=job.celery_budget if time_budget is None else time_budget)
        for job in periodic.PERIODIC_JOBS
        if job.task == task
    }


class PeriodicRunner:
    """The embedded dispatcher's periodic jobs: at each call, every job whose period has
    passed since it last started runs (all of them at the first call). `periods` overrides
    a period setting (the dispatcher ticks at its own `tick_seconds`). A failure raises to
    the caller (the engine logs it and drops the connection); the failed job's next run
    is then a period away, the jobs after it run at the next call."""

    def __init__(self, *, periods: dict[str, float] | None = None) -> None:
        self.periods = periods or {}
        self.next_run_at = {job.name: 0.0 for job in periodic.PERIODIC_JOBS}

    def run_due(self, *, idle: bool = False) -> None:
        """`idle`: nothing is being sent, so jobs that can wait get their idle budget."""
        for job in periodic.PERIODIC_JOBS:
            now = time.monotonic()
            if now < self.next_run_at[job.name]:
                continue
            self.next_run_at[job.name] = now + self.periods.get(job.period_setting, job.period)
            budget = job.embedded_budget
            if idle and job.embedded_idle_budget is not None:
                budget = job.embedded_idle_budget
            job.run(time_budget=budget)
