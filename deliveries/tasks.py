"""Celery tasks: thin wrappers that take ids and call the services or the engine.

Beat runs `dispatch_tick_task` every WEBHOOK_TICK_SECONDS (the tick's periodic jobs, then
the webhooks with an attempt due) and `deliveries_prune_task` every WEBHOOK_PRUNE_SECONDS,
both from the table in deliveries.periodic. The tick shares the webhooks with an
attempt due among `deliveries_send_task`s of at most WEBHOOKS_PER_TASK each, and each task
runs the delivery engine (deliveries.engine) over its webhooks: their batches are claimed
together, sent concurrently on the worker process's send loop and recorded together, until
none of them has an attempt due.
A duplicate task (two beats, a slow queue) is harmless: the claim's row locks and leases
let only one send.
"""

from functools import cache

import redis
from celery import shared_task
from django.conf import settings

from deliveries.engine import Engine
from deliveries.periodic import PRUNE_TASK, TICK_TASK
from deliveries.services import dispatch_tick, periodic_jobs_run

# Marks a webhook whose delivery task is queued and has not started yet.
_QUEUED_KEY = "springhook:deliver-queued:{}"
# Webhooks per send task at most: a task's claims and records are shared by its webhooks,
# so fewer, larger tasks spend less per batch. Measured (python -m bench --only delivery,
# 100 webhooks on two worker processes, three alternated runs): 50 per task sent at
# 0.58-0.66 of a bare loop, 20 per task at 0.39-0.42 (five tasks on two processes leave
# one running alone at the end). The due webhooks are split into as few tasks as that
# allows, of equal size, so the last task is not a small remainder.
WEBHOOKS_PER_TASK = 50
# A task claims for this long at most (seconds), then finishes its sends in flight: a busy
# webhook never holds a worker for ever, and the next tick queues its work anew.
TASK_TIME_BUDGET = 10.0


# Beat schedules the periodic tasks from one table (deliveries.services.periodic), the one
# the embedded dispatcher runs too.
@shared_task(name=TICK_TASK)
def dispatch_tick_task() -> int:
    due = dispatch_tick()
    # A task still queued after a few ticks is stale: a later tick has enqueued anew.
    expires = max(5.0, 10 * settings.WEBHOOK_TICK_SECONDS)
    queued = _not_queued_yet(due, expires=expires)
    for share in _shares(queued):
        deliveries_send_task.apply_async((share,), expires=expires)
    return len(due)


def _shares(webhook_ids: list[int]) -> list[list[int]]:
    """The webhooks in as few tasks as WEBHOOKS_PER_TASK allows, their sizes within one of
    each other (120 webhooks, 50 at most: three of 40, not 50, 50 and 20)."""
    count = -(-len(webhook_ids) // WEBHOOKS_PER_TASK)
    return [webhook_ids[number::count] for number in range(count)]


# Acknowledged when it starts, not when it ends (CELERY_TASK_ACKS_LATE): the database's
# leases are the queue of record, so a task lost with its worker only delays its webhooks
# until their mark expires and a tick queues them again. An unacknowledged message held
# while the broker goes away makes kombu end the whole worker ("Unrecoverable error",
# restoring it over the closed connection), and this task runs for seconds.
@shared_task(name="deliveries.send", acks_late=False)
def deliveries_send_task(webhook_ids: list[int]) -> int:
    """Send the webhooks' due batches (the engine, limited to these webhooks); the number
    of attempts recorded."""
    _queued_clear(webhook_ids)
    # The worker process's send loop (deliveries.http.send_loop), started by its first
    # task after the fork and kept: its connections to partners stay alive between tasks.
    engine = Engine(
        sends_in_flight=len(webhook_ids), webhook_ids=webhook_ids, close_connection=False,
    )
    return engine.run(until_idle=True, time_budget=TASK_TIME_BUDGET)


@shared_task(name=PRUNE_TASK)
def deliveries_prune_task() -> int:
    return periodic_jobs_run(task=PRUNE_TASK)["prune"]


# A webhook stays due until its task has run, so without this every tick queued another
# task for it: with a backlog, the queue grew by one task per due webhook per tick, far
# faster than workers ran them, and workers spent their time discarding expired tasks.
# The mark is taken when the task is queued and dropped when it starts (so work that
# arrives meanwhile is queued by a later tick); it expires with the task, so a lost task
# only delays. It lives in the broker, the one store every beat and worker shares.


@cache
def _broker() -> redis.Redis | None:
    url = settings.CELERY_BROKER_URL
    return redis.Redis.from_url(url) if url.startswith(("redis://", "rediss://")) else None


def _not_queued_yet(webhook_ids: list[int], *, expires: float) -> list[int]:
    """The webhooks among `webhook_ids` with no task queued, each marked as having one now."""
    broker = _broker()
    if broker is None or not webhook_ids:
        return webhook_ids
    pipeline = broker.pipeline(transaction=False)
    for webhook_id in webhook_ids:
        pipeline.set(_QUEUED_KEY.format(webhook_id), 1, nx=True, px=int(expires * 1000))
    marked = pipeline.execute()
    return [webhook_id for webhook_id, was_set in zip(webhook_ids, marked, strict=True) if was_set]


def _queued_clear(webhook_ids: list[int]) -> None:
    broker = _broker()
    if broker is not None and webhook_ids:
        broker.delete(*(_QUEUED_KEY.format(webhook_id) for webhook_id in webhook_ids))
