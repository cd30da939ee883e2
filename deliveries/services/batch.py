"""Batching: a webhook's part of the change stream and its own pending entries become the
body of its next delivery."""

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import NamedTuple

from django.conf import settings
from django.db import connection
from django.db.models import Exists, OuterRef
from django.utils import timezone

from changes.models import Action
from deliveries.coalescing import action_merge
from deliveries.models import Delivery
from deliveries.scoping import stream_filter
from deliveries.stream import (
    WaitingEntry,
    aware_converter,
    cursors_and_pending_read,
    cursors_set,
    due_annotations,
    pending_batch_read,
    pending_delete,
    pending_training_updates_delete,
    scoped_backlogs_read,
    stream_batch_read,
    stream_head_read,
    unscoped_backlog_read,
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
    streams: dict[tuple, tuple[list[WaitingEntry], datetime | None]] = {}
    shared: dict[tuple, tuple[list[BatchEntry], int]] = {}
    taken: dict[int, list[BatchEntry]] = {}
    advances: dict[int, list[int]] = {}
    pending_taken: list[int] = []
    pending_folds: list[tuple[int, set[int]]] = []
    with connection.cursor() as cursor:
        cursors, with_pending = cursors_and_pending_read(cursor, ids)
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
                    streams[key] = stream_batch_read(cursor, position, batch_size, row_filter,
                                                     head)
                stream, stream_oldest = streams[key]
            pending, pending_oldest = (
                pending_batch_read(cursor, webhook.pk, batch_size)
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
        cursors_set(cursor, advances)
        pending_delete(cursor, pending_taken)
        for webhook_id, imported in pending_folds:
            # The partner re-reads the imported institutes' trainings: their updates waiting
            # for this webhook alone are carried by the import, also beyond this batch.
            pending_training_updates_delete(cursor, webhook_id=webhook_id, institute_ids=imported)
    return taken


def _entries_build(rows: list[WaitingEntry]) -> tuple[list[BatchEntry], set[int]]:
    """One entry per object (a stream row and a pending entry of one object merge, in seq
    order), ordered by their latest change, training updates folded into their
    institute's import; and the institutes imported."""
    merged: dict[tuple[str, int], WaitingEntry] = {}
    for row in rows:  # in seq order
        key = (row.object_kind, row.object_id)
        earlier = merged.pop(key, None)
        if earlier is not None:
            row = WaitingEntry(
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
        **due_annotations(batch_size=batch_size),
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
            to_aware = aware_converter()
            for key, (count, oldest, _) in zip(
                scoped, scoped_backlogs_read(cursor, scoped, head, limit=batch_size), strict=True
            ):
                streams[key] = (to_aware(oldest) if oldest is not None else None,
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
                    streams[key] = unscoped_backlog_read(cursor, webhook.cursor, batch_size)
                stream_oldest, stream_full = streams[key]
                full = full or stream_full
                if stream_oldest is not None and (oldest is None or stream_oldest < oldest):
                    oldest = stream_oldest
            if oldest is None:
                continue
            if full or oldest <= now - timedelta(seconds=bundle_delay(webhook)):
                due.append(webhook.pk)
    return due
