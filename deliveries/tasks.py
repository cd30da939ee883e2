"""Celery tasks: thin wrappers that take ids and call one service each.

Beat runs `dispatch_tick_task` every WEBHOOK_TICK_SECONDS; it enqueues one
`webhook_deliver_task` per webhook with an attempt due. A duplicate task (two beats, a
slow queue) is harmless: the claim's row lock and lease let only one send.
"""

from functools import cache

import redis
from celery import shared_task
from django.conf import settings

from deliveries.services import deliveries_prune, dispatch_tick, webhook_deliver

# Marks a webhook whose delivery task is queued and has not started yet.
_QUEUED_KEY = "springhook:deliver-queued:{}"


@shared_task(name="deliveries.dispatch_tick")
def dispatch_tick_task() -> int:
    due = dispatch_tick()
    # A task still queued after a few ticks is stale: a later tick has enqueued anew.
    expires = max(5.0, 10 * settings.WEBHOOK_TICK_SECONDS)
    for webhook_id in _not_queued_yet(due, expires=expires):
        webhook_deliver_task.apply_async((webhook_id,), expires=expires)
    return len(due)


@shared_task(name="deliveries.webhook_deliver")
def webhook_deliver_task(webhook_id: int) -> int:
    _queued_clear(webhook_id)
    return webhook_deliver(webhook_id=webhook_id)


@shared_task(name="deliveries.prune")
def deliveries_prune_task() -> int:
    return deliveries_prune()


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


def _queued_clear(webhook_id: int) -> None:
    broker = _broker()
    if broker is not None:
        broker.delete(_QUEUED_KEY.format(webhook_id))
