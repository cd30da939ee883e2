"""Retention: accepted deliveries are deleted after WEBHOOK_RETENTION_DAYS."""

import logging
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.logfmt import logfmt
from deliveries.models import Delivery, DeliveryAttempt

logger = logging.getLogger("springhook.deliveries")


# Rows deleted per transaction by the retention sweep: short transactions, no long locks.
PRUNE_BATCH = 500


def deliveries_prune(
    *, now: datetime | None = None, batch_size: int = PRUNE_BATCH, time_budget: float = 5.0
) -> int:
    """Delete accepted deliveries (and their attempts) accepted more than
    WEBHOOK_RETENTION_DAYS ago, `batch_size` per transaction, for up to `time_budget`
    seconds. Pending and failing deliveries are never removed, however old. Returns the
    number of deliveries deleted; a later run continues where this one stopped."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.WEBHOOK_RETENTION_DAYS)
    deadline = time.monotonic() + time_budget
    deleted = 0
    while True:
        with transaction.atomic():
            ids = list(
                Delivery.objects.filter(state=Delivery.State.DELIVERED, delivered_at__lt=cutoff)
                .order_by("delivered_at")
                .values_list("id", flat=True)[:batch_size]
            )
            if not ids:
                break
            DeliveryAttempt.objects.filter(delivery_id__in=ids).delete()
            Delivery.objects.filter(id__in=ids).delete()
        deleted += len(ids)
        if len(ids) < batch_size or time.monotonic() >= deadline:
            break
    if deleted:
        logger.info(logfmt("deliveries_pruned", deleted=deleted, before=cutoff.isoformat()))
    return deleted
