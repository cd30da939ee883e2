"""Retention: accepted deliveries are deleted after WEBHOOK_RETENTION_DAYS, and with them
the bodies no delivery references any more."""

import logging
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from core.logfmt import logfmt
from deliveries.models import Delivery, DeliveryAttempt, DeliveryBody

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
        try:
            with transaction.atomic():
                rows = list(
                    Delivery.objects.filter(
                        state=Delivery.State.DELIVERED, delivered_at__lt=cutoff
                    )
                    .order_by("delivered_at")
                    .values_list("id", "body_id")[:batch_size]
                )
                if not rows:
                    break
                ids = [delivery_id for delivery_id, _ in rows]
                DeliveryAttempt.objects.filter(delivery_id__in=ids).delete()
                Delivery.objects.filter(id__in=ids).delete()
                bodies_prune(digests={digest for _, digest in rows})
        except IntegrityError:
            # A claim referenced one of these bodies again while this batch removed it
            # (see bodies_prune): the batch is rolled back whole; a later run retries it.
            logger.warning(logfmt("deliveries_prune_retry", deleted=deleted))
            break
        deleted += len(rows)
        if len(rows) < batch_size or time.monotonic() >= deadline:
            break
    if deleted:
        logger.info(logfmt("deliveries_pruned", deleted=deleted, before=cutoff.isoformat()))
    return deleted


def bodies_prune(*, digests: set[str]) -> int:
    """Delete those of these bodies that no delivery references (two statements whatever
    their number). Inside the caller's transaction.

    A claim storing a body that exists already locks it (DeliveryBody.objects.store) until
    its deliveries are committed; such a body is skipped here, not waited for. Should a
    claim lock it just after this read, the foreign key refuses the deletion at commit.
    """
    orphans = list(
        DeliveryBody.objects.filter(digest__in=digests)
        .exclude(Exists(Delivery.objects.filter(body_id=OuterRef("pk"))))
        .select_for_update(skip_locked=True)
        .values_list("digest", flat=True)
    )
    if orphans:
        DeliveryBody.objects.filter(digest__in=orphans).delete()
    return len(orphans)
