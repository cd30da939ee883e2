"""Celery tasks: thin wrappers that take ids and call one service each.

Beat runs `dispatch_tick_task` every WEBHOOK_TICK_SECONDS; it enqueues one
`webhook_deliver_task` per webhook with an attempt due. A duplicate task (two beats, a
slow queue) is harmless: the claim's row lock and lease let only one send.
"""

from celery import shared_task
from django.conf import settings

from deliveries.services import deliveries_prune, dispatch_tick, webhook_deliver


@shared_task(name="deliveries.dispatch_tick")
def dispatch_tick_task() -> int:
    due = dispatch_tick()
    # A task still queued after a few ticks is stale: a later tick has enqueued anew.
    expires = max(5.0, 10 * settings.WEBHOOK_TICK_SECONDS)
    for webhook_id in due:
        webhook_deliver_task.apply_async((webhook_id,), expires=expires)
    return len(due)


@shared_task(name="deliveries.webhook_deliver")
def webhook_deliver_task(webhook_id: int) -> int:
    return webhook_deliver(webhook_id=webhook_id)


@shared_task(name="deliveries.prune")
def deliveries_prune_task() -> int:
    return deliveries_prune()
