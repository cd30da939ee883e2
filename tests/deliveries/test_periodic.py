"""deliveries.periodic: one table of periodic jobs, run by the embedded dispatcher
(deliveries.services.periodic.PeriodicRunner) and scheduled by Celery beat alike."""

import time

import pytest

from deliveries import periodic
from deliveries.periodic import PERIODIC_JOBS, PeriodicJob, periodic_task_periods
from deliveries.services import PeriodicRunner
from deliveries.tasks import deliveries_prune_task, dispatch_tick_task
from springhook.celery import app

CALLS: list[tuple[str, dict]] = []


def heartbeat(**kwargs):
    CALLS.append(("heartbeat", kwargs))


def collect(**kwargs):
    CALLS.append(("collect", kwargs))


def notify(**kwargs):
    CALLS.append(("notify", kwargs))


def index(**kwargs):
    CALLS.append(("index", kwargs))


def prune(**kwargs):
    CALLS.append(("prune", kwargs))


def test_the_table_holds_its_jobs_and_their_services_exist():
    assert [job.name for job in PERIODIC_JOBS] == [
        "heartbeat", "collect", "notify", "index", "prune"]
    from django.utils.module_loading import import_string

    for job in PERIODIC_JOBS:
        assert callable(import_string(job.service))


def test_beat_schedules_every_task_of_the_table_at_its_period(settings):
    app.loader.import_default_modules()
    schedule = {
        entry["task"]: entry["schedule"] for entry in app.conf.beat_schedule.values()
    }
    periods = periodic_task_periods()
    # Stable task names: tasks queued by the previous release still run after an upgrade.
    assert set(periods) == {"deliveries.dispatch_tick", "deliveries.prune"}
    assert periods["deliveries.dispatch_tick"] == settings.WEBHOOK_TICK_SECONDS
    assert periods["deliveries.prune"] == settings.WEBHOOK_PRUNE_SECONDS
    for task, period in periods.items():
        assert schedule[task] == period
    # The tasks that beat schedules are the Celery tasks that run the jobs.
    assert {dispatch_tick_task.name, deliveries_prune_task.name} == set(periods)


@pytest.fixture
def recorded_jobs(monkeypatch):
    """The table's jobs, each calling a recorder of this module instead of its service."""
    CALLS.clear()
    monkeypatch.setattr(periodic, "PERIODIC_JOBS", tuple(
        PeriodicJob(job.name, job.period_setting, job.task, f"{__name__}.{job.name}",
                    job.embedded_budget, job.celery_budget, job.embedded_idle_budget)
        for job in PERIODIC_JOBS
    ))
    return CALLS


def test_the_embedded_runner_runs_each_job_when_its_period_has_passed(recorded_jobs, settings):
    settings.WEBHOOK_PRUNE_SECONDS = 3600
    runner = PeriodicRunner(periods={"WEBHOOK_TICK_SECONDS": 0.05})
    runner.run_due()
    # All of them at the first call, in table order, budgeted ones with their embedded budget.
    assert recorded_jobs == [("heartbeat", {}), ("collect", {"time_budget": 0.5}),
                             ("notify", {}), ("index", {"time_budget": 0.02}),
                             ("prune", {"time_budget": 2.0})]
    recorded_jobs.clear()
    runner.run_due()
    assert recorded_jobs == []  # no period has passed
    time.sleep(0.06)
    runner.run_due()
    # The tick's jobs again; prune waits for its hour.
    assert [name for name, _ in recorded_jobs] == ["heartbeat", "collect", "notify", "index"]


def test_a_celery_task_runs_its_jobs_with_their_celery_budget(recorded_jobs):
    from deliveries.services import periodic_jobs_run

    periodic_jobs_run(task="deliveries.dispatch_tick")
    assert recorded_jobs == [("heartbeat", {}), ("collect", {"time_budget": 5.0}),
                             ("notify", {}), ("index", {"time_budget": 0.25})]
    recorded_jobs.clear()
    periodic_jobs_run(task="deliveries.prune")
    assert recorded_jobs == [("prune", {"time_budget": 5.0})]


def test_work_that_can_wait_gets_its_idle_budget_while_nothing_is_sent(recorded_jobs):
    runner = PeriodicRunner(periods={"WEBHOOK_TICK_SECONDS": 3600})
    runner.run_due(idle=True)
    budgets = dict(recorded_jobs)
    assert budgets["index"] == {"time_budget": 0.25}  # its idle budget
    assert budgets["collect"] == {"time_budget": 0.5}  # no idle budget: the same as busy
    assert budgets["prune"] == {"time_budget": 2.0}


def test_the_dispatcher_ticks_idle_only_while_nothing_is_in_flight(recorded_jobs):
    from deliveries.dispatcher import Dispatcher

    dispatcher = Dispatcher(sends_in_flight=2, tick_seconds=3600)
    dispatcher.engine.in_flight = 1  # a send on the wire
    dispatcher.tick()
    assert dict(recorded_jobs)["index"] == {"time_budget": 0.02}
    recorded_jobs.clear()
    dispatcher.periodic.next_run_at = dict.fromkeys(dispatcher.periodic.next_run_at, 0.0)
    dispatcher.engine.in_flight = 0
    dispatcher.tick()
    assert dict(recorded_jobs)["index"] == {"time_budget": 0.25}
