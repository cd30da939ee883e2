"""The periodic jobs: one table, read by both runners.

The embedded dispatcher (deliveries.dispatcher) runs them through a PeriodicRunner
(deliveries.services.periodic) at its ticks; with Celery, beat (springhook.celery)
schedules each job's task every period and the task (deliveries.tasks) runs that task's
jobs. Task names never change: tasks queued by the previous release still run after an
upgrade. Services are named by their dotted path, so that this module imports no model:
beat reads the table while it configures, before Django's apps are loaded.
"""

from dataclasses import dataclass

from django.conf import settings
from django.utils.module_loading import import_string

# The Celery tasks that run the jobs (beat schedules them; the names are stable).
TICK_TASK = "deliveries.dispatch_tick"
PRUNE_TASK = "deliveries.prune"


@dataclass(frozen=True)
class PeriodicJob:
    name: str
    # The setting that holds the job's period, in seconds.
    period_setting: str
    # The Celery task that runs it; jobs of one task share its period, in table order.
    task: str
    # The service it calls (dotted path).
    service: str
    # For a service that works in rounds: the seconds it may take per run. The embedded
    # dispatcher runs its jobs in the thread that records and claims, so it gives them less
    # than a Celery task, which has a worker process to itself. None: not budgeted.
    embedded_budget: float | None = None
    celery_budget: float | None = None
    # For work that can wait (the search index): the embedded dispatcher's budget when no
    # send is in flight; embedded_budget applies while it sends. None: embedded_budget.
    embedded_idle_budget: float | None = None

    @property
    def period(self) -> float:
        return float(getattr(settings, self.period_setting))

    def run(self, *, time_budget: float | None) -> object:
        service = import_string(self.service)
        if self.embedded_budget is None:
            return service()
        return service(time_budget=time_budget)


PERIODIC_JOBS: tuple[PeriodicJob, ...] = (
    PeriodicJob("heartbeat", "WEBHOOK_TICK_SECONDS", TICK_TASK,
                "deliveries.services.periodic.dispatcher_heartbeat_record"),
    # Recorded changes into the stream; briefly in the embedded dispatcher, so that
    # recording finished attempts and claiming new ones never waits long behind an import.
    PeriodicJob("collect", "WEBHOOK_TICK_SECONDS", TICK_TASK,
                "deliveries.services.periodic.changes_collect_for",
                embedded_budget=0.5, celery_budget=5.0),
    # Staff told about webhooks failing for over an hour.
    PeriodicJob("notify", "WEBHOOK_TICK_SECONDS", TICK_TASK,
                "deliveries.services.notify.webhooks_failure_notify"),
    # The search index over bodies stored since the last run (PostgreSQL): off the claims'
    # path, where it cost a catching-up partner 1-2 ms a batch. In the embedded
    # dispatcher, whose claims wait meanwhile, 20 ms of a tick while it sends and a
    # quarter of a second when nothing is in flight (some 90 bodies of 500 entries a
    # second; a change arriving then waits that long at most): a catch-up is indexed once
    # it is done. A quarter of a second in Celery's tick task too, which queues the send
    # tasks after it.
    PeriodicJob("index", "WEBHOOK_TICK_SECONDS", TICK_TASK,
                "deliveries.services.bodies.bodies_index",
                embedded_budget=0.02, celery_budget=0.25, embedded_idle_budget=0.25),
    # Retention: accepted deliveries older than WEBHOOK_RETENTION_DAYS, in small batches.
    PeriodicJob("prune", "WEBHOOK_PRUNE_SECONDS", PRUNE_TASK,
                "deliveries.services.retention.deliveries_prune",
                embedded_budget=2.0, celery_budget=5.0),
)


def periodic_task_periods() -> dict[str, float]:
    """Each Celery task of the table and its period (what beat schedules)."""
    return {job.task: job.period for job in PERIODIC_JOBS}
