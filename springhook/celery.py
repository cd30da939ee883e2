"""The Celery app `springhook`: workers run the per-webhook tasks, beat the dispatch tick.

    celery -A springhook worker
    celery -A springhook beat      (exactly one; a second one only duplicates harmless ticks)
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "springhook.settings")

# How often old accepted deliveries are pruned (each run deletes for a few seconds at most).
PRUNE_SECONDS = 60.0

app = Celery("springhook")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_configure.connect
def beat_schedule(sender: Celery, **kwargs) -> None:
    from django.conf import settings

    tick = settings.WEBHOOK_TICK_SECONDS
    sender.add_periodic_task(
        tick, sender.signature("deliveries.dispatch_tick"), name="dispatch tick",
        # A tick nobody ran in time is superseded by the next one.
        expires=max(tick, 1.0),
    )
    # Retention: accepted deliveries older than WEBHOOK_RETENTION_DAYS, in small batches.
    sender.add_periodic_task(
        PRUNE_SECONDS, sender.signature("deliveries.prune"), name="prune deliveries",
        expires=PRUNE_SECONDS,
    )
