"""Batching: a webhook's pending entries become the body of its next delivery."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection

from changes.models import Action
from deliveries.models import PendingEntry
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
