"""Batching: a webhook's part of the change stream and its own pending entries become the
body of its next delivery."""

from collections.abc import Collection, Sequence
from datetime import UTC, datetime, timedelta
from itertools import starmap
from typing import NamedTuple

from django.conf import settings
from django.db import connection
from django.db.models import Exists, OuterRef, Subquery
from django.utils import timezone

from changes.models import Action
from deliveries.coalescing import action_merge
from deliveries.models import Delivery, PendingEntry, StreamEntry, WebhookCursor
from deliveries.scoping import StreamFilter, stream_filter
from deliveries.services.collect import aware_converter
from deliveries.services.scope import (
    scoped_backlogs_read,
    stream_head_read,
    stream_rows_sql,
)
from webhooks.models import Webhook


class BatchEntry(NamedTuple):
    # A named tuple, not a dataclass: a catching-up webhook builds 500 per batch.
    object_kind: str
    object_id: int
    action: str


def bundle_delay(webhook: Webhook) -> float:
    if webhook.bundle_delay is not None:
        return webhook.bundle_delay
    return settings.WEBHOOK_BUNDLE_DELAY


class _Waiting(NamedTuple):
    """A stream row (pending_id None) or a pending entry, as a batch reads it."""

    object_kind: str
    object_id: int
    parent_id: int | None
    action: str
    seq: int
    pending_id: int | None = None


# The oldest change _stream_read gives for a full batch, which is due whatever its age:
# "as old as can be", without reading it.
_FULL_BATCH_OLDEST = datetime.min.replace(tzinfo=UTC)


def batch_take(*, webhook: Webhook, now: datetime, force: bool = False) -> list[BatchEntry]:
    """Take the next batch of one webhook, if one is due; [] otherwise (see batches_take)."""
    taken = batches_take(webhooks=[webhook], now=now, force_ids={webhook.pk} if force else ())
    return taken.get(webhook.pk, [])


def batches_take(
    *, webhooks: Sequence[Webhook], now: datetime, force_ids: Collection[int] = ()
) -> dict[int, list[BatchEntry]]:
    """Take the next due batch of each of these webhooks: {webhook id: entries}, only for
    the webhooks that have one. `force_ids` skip the bundle delay (an operator's "retry
    now").

    Must run inside the caller's transaction with the webhooks' rows locked: the batch's
    stream rows are passed by moving the webhook's cursor, its pending entries are
    deleted, both belonging to the Delivery the caller creates in that transaction. A
    batch is due when its oldest change waited the bundle delay, or a full batch waits.
    It holds the webhook's stream rows after its cursor and its pending entries, merged
    in seq order (one entry per object), up to WEBHOOK_BATCH_SIZE; training updates of
    an institute imported in the same batch are folded into that import. Webhooks at the
    same cursor with no pending entries of their own share one list object, so that a
    caller renders each distinct batch once; the stream is read once per distinct cursor.
    """
    batch_size = settings.WEBHOOK_BATCH_SIZE
    ids = [webhook.pk for webhook in webhooks]
    if not ids:
        return {}
    streams: dict[tuple, tuple[list[_Waiting], datetime | None]] = {}
    shared: dict[tuple, tuple[list[BatchEntry], int]] = {}
    taken: dict[int, list[BatchEntry]] = {}
    advances: dict[int, list[int]] = {}
    pending_taken: list[int] = []
    pending_folds: list[tuple[int, set[int]]] = []
    with connection.cursor() as cursor:
        # Each webhook's cursor and whether it has entries of its own, in one round trip.
        cursor.execute(
            f"SELECT webhook.id, (SELECT seq FROM {WebhookCursor._meta.db_table} "
            f"WHERE webhook_id = webhook.id), EXISTS (SELECT 1 FROM "
            f"{PendingEntry._meta.db_table} WHERE webhook_id = webhook.id) "
            f"FROM {Webhook._meta.db_table} AS webhook "
            f"WHERE webhook.id IN ({', '.join(['%s'] * len(ids))})",
            ids,
        )
        cursors, with_pending = {}, set()
        for webhook_id, position, has_pending in cursor.fetchall():
            cursors[webhook_id] = position
            if has_pending:
                with_pending.add(webhook_id)
        head = None
        for webhook in webhooks:
            position = cursors.get(webhook.pk)
            row_filter = stream_filter(webhook)
            # Webhooks at one cursor that read the same part of the stream share its read.
            key = (position, row_filter)
            if position is None:
                stream, stream_oldest = [], None
            else:
                if key not in streams:
                    if row_filter is not None and head is None:
                        head = stream_head_read(cursor)
                    streams[key] = _stream_read(cursor, position, batch_size, row_filter, head)
                stream, stream_oldest = streams[key]
            pending, pending_oldest = (
                _pending_read(cursor, webhook.pk, batch_size)
                if webhook.pk in with_pending else ([], None)
            )
            oldest = min((at for at in (stream_oldest, pending_oldest) if at is not None),
                         default=None)
            if oldest is None:
                continue
            rows = (sorted(stream + pending, key=lambda row: row.seq)[:batch_size]
                    if pending else stream)  # the stream comes in seq order
            waited = webhook.pk in force_ids or oldest <= now - timedelta(
                seconds=bundle_delay(webhook)
            )
            if not waited and len(rows) < batch_size:
                continue
            stream_end = max((row.seq for row in rows if row.pending_id is None), default=None)
            if row_filter is not None and len(stream) < batch_size and (
                sum(1 for row in rows if row.pending_id is None) == len(stream)
            ):
                # Every row it reads up to the head is in the batch: the cursor passes the
                # rows of other institutes there too.
                stream_end = head
            if not pending and key in shared:
                entries, stream_end = shared[key]
            else:
                entries, imported = _entries_build(rows)
                if pending:
                    pending_taken.extend(row.pending_id for row in rows if row.pending_id)
                    if imported:
                        pending_folds.append((webhook.pk, imported))
                else:
                    shared[key] = (entries, stream_end)
            if stream_end is not None:
                advances.setdefault(stream_end, []).append(webhook.pk)
            if entries:
                taken[webhook.pk] = entries
        for seq, webhook_ids in advances.items():
            cursor.execute(
                f"UPDATE {WebhookCursor._meta.db_table} SET seq = %s "
                f"WHERE webhook_id IN ({', '.join(['%s'] * len(webhook_ids))})",
                [seq, *webhook_ids],
            )
        table = PendingEntry._meta.db_table
        for start in range(0, len(pending_taken), 5000):
            chunk = pending_taken[start : start + 5000]
            cursor.execute(
                f"DELETE FROM {table} WHERE id IN ({', '.join(['%s'] * len(chunk))})", chunk
            )
        for webhook_id, imported in pending_folds:
            # The partner re-reads the imported institutes' trainings: their updates waiting
            # for this webhook alone are carried by the import, also beyond this batch.
            cursor.execute(
                f"DELETE FROM {table} WHERE webhook_id = %s AND object_kind = 'training' "
                f"AND action = %s AND parent_id IN ({', '.join(['%s'] * len(imported))})",
                [webhook_id, Action.UPDATE, *imported],
            )
    return taken


_STREAM_COLUMNS = "object_kind, object_id, parent_id, action, seq"


def _stream_read(
    cursor, position: int, limit: int, row_filter: StreamFilter | None = None,
    head: int | None = None,
) -> tuple[list[_Waiting], datetime | None]:
    """The first `limit` stream rows after `position` (those the webhook's scope admits, up
    to `head`), and the oldest first change among them when fewer came (all that waits); a
    full batch is due anyway, and its oldest is _FULL_BATCH_OLDEST. A row stamped anew
    keeps its first change, so it is due however often it changes."""
    table = StreamEntry._meta.db_table
    if row_filter is not None:
        cursor.execute(*stream_rows_sql(
            position=position, head=head, stream_filter=row_filter, limit=limit,
            columns=_STREAM_COLUMNS + ", first_change_at",
        ))
        fetched = cursor.fetchall()
        if not fetched:
            return [], None
        return ([_Waiting(*row[:5]) for row in fetched],
                _aware(min(row[5] for row in fetched)))
    # No timestamp per row: converting 500 of them took as long as reading the rows
    # (0.62 ms against 0.36 for a batch, measured side by side; adding the oldest up in
    # the same statement, 0.65). A batch not full asks for its oldest in a second one.
    cursor.execute(
        f"SELECT {_STREAM_COLUMNS} FROM {table} WHERE seq > %s ORDER BY seq LIMIT %s",
        [position, limit],
    )
    rows = list(starmap(_Waiting, cursor.fetchall()))
    if not rows:
        return [], None
    if len(rows) == limit:
        return rows, _FULL_BATCH_OLDEST
    cursor.execute(
        f"SELECT min(first_change_at) FROM {table} WHERE seq > %s AND seq <= %s",
        [position, rows[-1].seq],
    )
    return rows, _aware(cursor.fetchone()[0])


def _pending_read(cursor, webhook_id: int, limit: int) -> tuple[list[_Waiting], datetime | None]:
    table = PendingEntry._meta.db_table
    cursor.execute(
        f"SELECT object_kind, object_id, parent_id, action, seq, id FROM {table} "
        f"WHERE webhook_id = %s ORDER BY seq LIMIT %s",
        [webhook_id, limit],
    )
    rows = list(starmap(_Waiting, cursor.fetchall()))
    if not rows:
        return [], None
    cursor.execute(
        f"SELECT first_change_at FROM {table} WHERE webhook_id = %s "
        f"ORDER BY first_change_at LIMIT 1",
        [webhook_id],
    )
    return rows, _aware(cursor.fetchone()[0])


def _aware(value):
    # SQLite answers raw SQL with naive text.
    return value if connection.vendor == "postgresql" else aware_converter()(value)


def _entries_build(rows: list[_Waiting]) -> tuple[list[BatchEntry], set[int]]:
    """One entry per object (a stream row and a pending entry of one object merge, in seq
    order), ordered by their latest change, training updates folded into their
    institute's import; and the institutes imported."""
    merged: dict[tuple[str, int], _Waiting] = {}
    for row in rows:  # in seq order
        key = (row.object_kind, row.object_id)
        earlier = merged.pop(key, None)
        if earlier is not None:
            row = _Waiting(
                row.object_kind, row.object_id,
                row.parent_id if row.parent_id is not None else earlier.parent_id,
                action_merge(earlier.action, row.action), row.seq,
            )
        merged[key] = row
    imported = {
        row.object_id for row in merged.values()
        if row.object_kind == "institute" and row.action == Action.IMPORT
    }
    if not imported:
        return [BatchEntry(row.object_kind, row.object_id, row.action)
                for row in merged.values()], imported
    entries = [
        BatchEntry(row.object_kind, row.object_id, row.action)
        for row in merged.values()
        if not (row.object_kind == "training" and row.action == Action.UPDATE
                and row.parent_id in imported)
    ]
    return entries, imported


def webhooks_due(*, now: datetime | None = None) -> list[int]:
    """Active webhooks with an attempt to make now: a retry that is due and not held, or,
    with no open delivery, stream rows after their cursor or pending entries of their own
    that waited the bundle delay or fill a batch. The stream is read once per distinct
    cursor, not once per webhook."""
    now = now or timezone.now()
    batch_size = settings.WEBHOOK_BATCH_SIZE
    rows = Webhook.objects.filter(is_active=True).annotate(
        open_due=Exists(Delivery.objects.due(now).filter(webhook=OuterRef("pk"))),
        has_open=Exists(Delivery.objects.open().filter(webhook=OuterRef("pk"))),
        cursor=Subquery(
            WebhookCursor.objects.filter(webhook=OuterRef("pk")).values("seq")[:1]
        ),
        oldest_pending=Subquery(
            PendingEntry.objects.filter(webhook=OuterRef("pk"))
            .order_by("first_change_at")
            .values("first_change_at")[:1]
        ),
        # Whether a full batch waits, in the same query (one query per tick, not one per
        # webhook): an entry at offset batch_size - 1 exists.
        full_batch=Exists(
            PendingEntry.objects.filter(webhook=OuterRef("pk")).order_by()[
                batch_size - 1 : batch_size
            ]
        ),
    )
    streams: dict[tuple, tuple[datetime | None, bool]] = {}
    due = []
    webhooks = list(rows.only("id", "bundle_delay", "scope_institutes", "scope_objects"))
    with connection.cursor() as cursor:
        # The scoped webhooks' backlogs, read together (one statement per set of kinds on
        # PostgreSQL): a tick does not cost a round trip per scoped webhook.
        scoped = list(dict.fromkeys(
            (webhook.cursor, row_filter) for webhook in webhooks
            if not webhook.open_due and not webhook.has_open and webhook.cursor is not None
            and (row_filter := stream_filter(webhook)) is not None
        ))
        if scoped:
            head = stream_head_read(cursor)
            for key, (count, oldest, _) in zip(
                scoped, scoped_backlogs_read(cursor, scoped, head, limit=batch_size), strict=True
            ):
                streams[key] = (_aware(oldest) if oldest is not None else None,
                                count >= batch_size)
        for webhook in webhooks:
            if webhook.open_due:
                due.append(webhook.pk)
                continue
            if webhook.has_open:
                continue
            oldest, full = webhook.oldest_pending, webhook.full_batch
            if webhook.cursor is not None:
                row_filter = stream_filter(webhook)
                key = (webhook.cursor, row_filter)
                if key not in streams:
                    streams[key] = _stream_backlog(cursor, webhook.cursor, batch_size)
                stream_oldest, stream_full = streams[key]
                full = full or stream_full
                if stream_oldest is not None and (oldest is None or stream_oldest < oldest):
                    oldest = stream_oldest
            if oldest is None:
                continue
            if full or oldest <= now - timedelta(seconds=bundle_delay(webhook)):
                due.append(webhook.pk)
    return due


def _stream_backlog(cursor, position: int, batch_size: int) -> tuple[datetime | None, bool]:
    """Whether a full batch waits after `position`, and the oldest first change there when
    not (then at most a batch waits: the minimum reads no more than the batch would).
    (A scoped webhook's: deliveries.services.scope.scoped_backlogs_read.)"""
    cursor.execute(
        f"SELECT count(*), min(first_change_at) FROM (SELECT first_change_at "
        f"FROM {StreamEntry._meta.db_table} WHERE seq > %s ORDER BY seq LIMIT %s) AS waiting",
        [position, batch_size],
    )
    waiting, oldest = cursor.fetchone()
    return (_aware(oldest) if oldest is not None else None), waiting >= batch_size
