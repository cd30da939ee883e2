"""Batching: a webhook's pending entries become the body of its next delivery."""

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Exists, OuterRef, Q, Subquery
from django.utils import timezone

from changes.models import Action
from deliveries.models import Delivery, PendingEntry
from deliveries.services.collect import aware_converter
from webhooks.models import Webhook


@dataclass(frozen=True)
class BatchEntry:
    object_kind: str
    object_id: int
    action: str


def bundle_delay(webhook: Webhook) -> float:
    if webhook.bundle_delay is not None:
        return webhook.bundle_delay
    return settings.WEBHOOK_BUNDLE_DELAY


def batch_take(*, webhook: Webhook, now: datetime, force: bool = False) -> list[BatchEntry]:
    """Take the next batch of a webhook's pending entries, if one is due; [] otherwise.

    Must run inside the caller's transaction, with the webhook row locked: the entries
    taken are deleted, and belong to the Delivery the caller creates in that transaction.
    A batch is due when its oldest entry waited the bundle delay, or a full batch waits
    (`force` skips the delay: an operator's "retry now"). Entries come ordered by their
    latest change; training updates of an institute imported in the same batch are
    folded into that import.
    """
    batch_size = settings.WEBHOOK_BATCH_SIZE
    table = PendingEntry._meta.db_table
    with connection.cursor() as cursor:
        # Is a batch due? The oldest entry and whether a full batch waits, in one round
        # trip; both read the (webhook, ...) indexes, never the whole table.
        cursor.execute(
            f"SELECT (SELECT first_change_at FROM {table} WHERE webhook_id = %s "
            f"ORDER BY first_change_at LIMIT 1), (SELECT count(*) FROM (SELECT 1 FROM "
            f"{table} WHERE webhook_id = %s LIMIT %s) AS waiting)",
            [webhook.pk, webhook.pk, batch_size],
        )
        oldest, waiting = cursor.fetchone()
        if oldest is None:
            return []
        if connection.vendor != "postgresql":  # SQLite answers raw SQL with naive values
            oldest = aware_converter()(oldest)
        waited_enough = force or oldest <= now - timedelta(seconds=bundle_delay(webhook))
        if not waited_enough and waiting < batch_size:
            return []
        # Take the batch: delete its entries and get them back in one statement.
        cursor.execute(
            f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} WHERE webhook_id = %s "
            f"ORDER BY last_change_id LIMIT %s) "
            f"RETURNING object_kind, object_id, action, parent_id, last_change_id",
            [webhook.pk, batch_size],
        )
        rows = sorted(cursor.fetchall(), key=lambda row: row[4])
        imported = {
            object_id
            for kind, object_id, action, _, _ in rows
            if kind == "institute" and action == Action.IMPORT
        }
        if imported:
            # The partner re-reads the imported institutes' trainings: their updates are
            # carried by the import, including those beyond this batch's size.
            placeholders = ", ".join(["%s"] * len(imported))
            cursor.execute(
                f"DELETE FROM {table} WHERE webhook_id = %s AND object_kind = 'training' "
                f"AND action = %s AND parent_id IN ({placeholders})",
                [webhook.pk, Action.UPDATE, *imported],
            )
    return [
        BatchEntry(kind, object_id, action)
        for kind, object_id, action, parent_id, _ in rows
        if not (kind == "training" and action == Action.UPDATE and parent_id in imported)
    ]


def batches_take(
    *, webhooks: Sequence[Webhook], now: datetime, force_ids: Collection[int] = ()
) -> dict[int, list[BatchEntry]]:
    """Take the next due batch of each of these webhooks: {webhook id: entries}, only for
    the webhooks that have one. `force_ids` skip the bundle delay (an operator's "retry
    now").

    Must run inside the caller's transaction with the webhooks' rows locked, as
    `batch_take`. Webhooks with the same entries may share one list object, so that a
    caller renders each distinct batch once.
    """
    taken = {}
    for webhook in webhooks:
        entries = batch_take(webhook=webhook, now=now, force=webhook.pk in force_ids)
        if entries:
            taken[webhook.pk] = entries
    return taken


def webhooks_due(*, now: datetime | None = None) -> list[int]:
    """Active webhooks with an attempt to make now: a retry that is due and not held, or,
    with no open delivery, pending entries that waited the bundle delay or fill a batch."""
    now = now or timezone.now()
    open_deliveries = Delivery.objects.filter(webhook=OuterRef("pk")).exclude(
        state=Delivery.State.DELIVERED
    )
    rows = Webhook.objects.filter(is_active=True).annotate(
        open_due=Exists(
            open_deliveries.filter(
                Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now),
                Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lte=now),
            )
        ),
        has_open=Exists(open_deliveries),
        oldest_pending=Subquery(
            PendingEntry.objects.filter(webhook=OuterRef("pk"))
            .order_by("first_change_at")
            .values("first_change_at")[:1]
        ),
        # Whether a full batch waits, in the same query (one query per tick, not one per
        # webhook): an entry at offset batch_size - 1 exists.
        full_batch=Exists(
            PendingEntry.objects.filter(webhook=OuterRef("pk")).order_by()[
                settings.WEBHOOK_BATCH_SIZE - 1 : settings.WEBHOOK_BATCH_SIZE
            ]
        ),
    )
    due = []
    for webhook in rows.only("id", "bundle_delay"):
        if webhook.open_due:
            due.append(webhook.pk)
        elif not webhook.has_open and webhook.oldest_pending is not None:
            waited = webhook.oldest_pending <= now - timedelta(seconds=bundle_delay(webhook))
            if waited or webhook.full_batch:
                due.append(webhook.pk)
    return due


