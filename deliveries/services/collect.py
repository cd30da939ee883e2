"""Collecting: recorded changes become the coalesced change stream every webhook reads.

Each object has one row in the stream (StreamEntry), stamped with the seq of its latest
change; each webhook reads the stream through its cursor (WebhookCursor). Changes meant
for one webhook alone become that webhook's pending entries (PendingEntry), folded the
same way and stamped from the same numbering.

The stream keeps one row per object and institute (a training that moved has a row in
its old institute, a destroy there, besides the one in its new institute: see
deliveries.services.scope); a webhook's batch merges one object's rows in seq order.

The coalescing rule (deliveries.coalescing) says what an object's row holds after any
history of changes; changes_fold and the PostgreSQL fold (changes_fold_upsert in
deliveries.stream) implement it, and tests/deliveries/test_coalescing.py holds them to it.
When a batch is built, a training `update` whose institute has an `import` in that batch
is folded into the import; a `destroy` never is.

This module decides what is appended, where a new cursor starts, and when; the
statements that write the stream's tables are in deliveries.stream.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db import OperationalError, connection, transaction

from changes.models import Action, Change
from deliveries.coalescing import action_merge
from deliveries.services.scope import institute_key, scoped_cursors_advance
from deliveries.stream import (
    aware_converter,
    changes_fold_upsert,
    cursors_create,
    cursors_webhook_ids,
    entries_upsert,
    stream_head_get_or_create,
    stream_head_set,
    stream_prune,
)
from webhooks.models import Webhook

COLLECT_CHUNK = 10_000
# Any constant: the key of the PostgreSQL advisory lock that lets one collector run at a time.
_COLLECT_LOCK_KEY = 0x5350_4843  # "SPHC"


@dataclass
class FoldedChange:
    object_kind: str
    object_id: int
    parent_id: int | None
    action: str
    first_change_at: object
    last_change_at: object
    last_change_id: int
    # True when the changes contained a destroy followed by others: the entry already
    # waiting for the object must be reset by that destroy before this action applies.
    resets: bool = False
    # The institute of the stream row (deliveries.services.scope.institute_key).
    institute_id: int = 0


def changes_fold(rows: Iterable[Sequence], *, by_institute: bool = True) -> list[FoldedChange]:
    """Coalesce change rows (id, kind, object_id, parent_id, action, created_at), in id order:
    one entry per object and institute (a moved training's leave and update stay apart,
    as the stream keeps them), or per object alone without `by_institute` (one webhook's
    own entries)."""
    folded: dict[tuple[str, int, int], FoldedChange] = {}
    for change_id, kind, object_id, parent_id, action, created_at in rows:
        institute_id = institute_key(kind, object_id, parent_id)
        key = (kind, object_id, institute_id if by_institute else 0)
        entry = folded.get(key)
        if entry is None:
            folded[key] = FoldedChange(
                kind, object_id, parent_id, action, created_at, created_at, change_id,
                institute_id=institute_id,
            )
            continue
        if entry.action == Action.DESTROY and action != Action.DESTROY:
            entry.resets = True
        entry.action = action_merge(entry.action, action)
        if action == Action.DESTROY:
            entry.resets = False  # a destroy overrides whatever waited before, by itself
        if parent_id is not None:
            entry.parent_id = parent_id
        entry.last_change_at = created_at
        entry.last_change_id = change_id
    return list(folded.values())


def _collect_lock(cursor) -> bool:
    if connection.vendor == "postgresql":
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [_COLLECT_LOCK_KEY])
        return cursor.fetchone()[0]
    # SQLite transactions start IMMEDIATE (see settings): this one already holds the
    # database's only write lock.
    return True


def changes_collect(*, limit: int | None = None) -> int:
    """Move up to `limit` recorded changes into the change stream (and, for changes meant
    for one webhook alone, into that webhook's pending entries).

    Runs in one short transaction: the changes read are deleted in it, so each change is
    applied exactly once, and a change whose writer has not committed yet is simply
    picked up by a later call (rows are claimed, never skipped by a high-water mark).
    Only one collector runs at a time and it stamps the stream's seqs in its own
    transaction, so seqs become visible in order and a cursor over them skips nothing.
    A webhook receives the changes recorded after it was created (its cursor starts
    there), and those recorded for it alone (`Change.webhook`, a resync). Stream rows
    that every webhook's cursor has passed are deleted. Returns the number of changes
    collected (0 also when another collector is busy, or its run had to be rolled back
    and is left to the next call).

    Call it outside any transaction: on PostgreSQL it then reads and deletes under one
    REPEATABLE READ snapshot of its own. Inside an outer transaction it cannot choose
    its isolation, and rolls back (returning 0) whenever a writer commits a change into
    the range it claimed while it ran.
    """
    try:
        collected = _collect(limit)
    except _SnapshotMoved:
        return 0
    except OperationalError as error:
        # Under REPEATABLE READ a collector whose snapshot predates another collector's
        # commit fails on the rows that one changed, rolling back everything it did.
        if getattr(error.__cause__, "pgcode", None) == _SERIALIZATION_FAILURE:
            return 0
        raise
    if collected:
        # In statements of their own, after the collector's commit: a cursor moved here
        # never makes the collector's snapshot fail.
        scoped_cursors_advance()
    return collected


_SERIALIZATION_FAILURE = "40001"


class _SnapshotMoved(Exception):
    """Changes committed inside the claimed range while it was folded: roll back, retry."""


def _collect(limit: int | None) -> int:
    change_table = Change._meta.db_table
    outermost = not connection.in_atomic_block
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql" and outermost:
            # One snapshot for the whole run: the fold reads and the delete removes exactly
            # the same committed changes, with no copy of them in between.
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        if not _collect_lock(cursor):
            return 0
        head = stream_head_get_or_create(cursor)
        stream_prune(cursor, head)
        if connection.vendor == "postgresql":
            return _collect_in_sql(cursor, limit or COLLECT_CHUNK_POSTGRESQL, head)
        cursor.execute(
            f"SELECT id, object_kind, object_id, parent_id, action, created_at, webhook_id "
            f"FROM {change_table} ORDER BY id LIMIT %s",
            [limit or COLLECT_CHUNK],
        )
        rows = cursor.fetchall()
        if not rows:
            return 0
        webhooks = list(Webhook.objects.values_list("id", "created_at"))
        if webhooks:
            _collect_in_python(cursor, rows, webhooks, head)
        _delete_changes(cursor, change_table, [row[0] for row in rows])
    return len(rows)


# --- PostgreSQL: the same fold, set-based (deliveries.stream.changes_fold_upsert) ------------
# Folded in SQL straight from the outbox, the chunk can be large, so one object's many
# changes fold into one row write. A chunk of this size still commits in about a second.
COLLECT_CHUNK_POSTGRESQL = 1_000_000


def _collect_in_sql(cursor, limit: int, head: int) -> int:
    change_table = Change._meta.db_table
    # The first `limit` committed changes in id order form the range [low, high]; a change
    # of a transaction still in flight inside it is invisible here (to the fold and to the
    # delete alike), stays, and is collected by a later call. A change's seq is
    # head + (id - low + 1): the stream's order is the changes' order.
    cursor.execute(
        f"SELECT min(id), max(id), count(*), min(created_at), bool_or(action = %s), "
        f"bool_or(webhook_id IS NULL), bool_or(webhook_id IS NOT NULL) FROM (SELECT id, "
        f"created_at, action, webhook_id FROM {change_table} ORDER BY id LIMIT %s) AS chunk",
        [Action.DESTROY, limit],
    )
    low, high, count, oldest, has_destroy, has_broadcast, has_targeted = cursor.fetchone()
    if not count:
        return 0
    webhooks = list(Webhook.objects.values_list("id", "created_at"))
    if webhooks:
        cursor.execute("SET LOCAL work_mem = '64MB'")
        cursor.execute("SET LOCAL jit = off")
        _cursors_start(cursor, webhooks, oldest, head, low, high)
        changes_fold_upsert(
            cursor, low=low, high=high, head=head, has_destroy=has_destroy,
            has_broadcast=has_broadcast, has_targeted=has_targeted,
        )
        stream_head_set(cursor, head + high - low + 1)
    cursor.execute(f"DELETE FROM {change_table} WHERE id BETWEEN %s AND %s", [low, high])
    if cursor.rowcount != count:
        # Only inside an outer transaction (READ COMMITTED, no snapshot of our own): a
        # change committed in the range between the reads and the delete.
        raise _SnapshotMoved
    return count


def _cursors_start(cursor, webhooks, oldest, head: int, low: int, high: int) -> None:
    """Give each webhook without a cursor one just before the first change it receives.

    A webhook that predates the whole chunk starts at the head: it receives all of it. One
    created while the chunk was being recorded starts before the first change recorded
    after its creation; an object changed on both sides of that moment comes with its
    merged action, more than the partner needs, never less.
    """
    have = cursors_webhook_ids(cursor)
    starts = []
    for webhook_id, created in webhooks:
        if webhook_id in have:
            continue
        if created <= oldest:
            starts.append((webhook_id, head))
            continue
        cursor.execute(
            f"SELECT min(id) FROM {Change._meta.db_table} "
            f"WHERE id BETWEEN %s AND %s AND created_at >= %s",
            [low, high, created],
        )
        first = cursor.fetchone()[0]
        starts.append((webhook_id, head + (first - low if first is not None else high - low + 1)))
    cursors_create(starts)


def _collect_in_python(
    cursor, rows: list[Sequence], webhooks: list[tuple[int, datetime]], head: int
) -> None:
    """The SQLite collector: the same as _collect_in_sql, folded in Python."""
    to_aware = aware_converter()
    created = [to_aware(row[5]) for row in rows]
    seqs = {row[0]: head + pos for pos, row in enumerate(rows, start=1)}
    have = cursors_webhook_ids(cursor)
    starts = []
    for webhook_id, webhook_created_at in webhooks:
        if webhook_id in have:
            continue
        first = next(
            (pos for pos, at in enumerate(created, start=1) if at >= webhook_created_at), None
        )
        starts.append((webhook_id, head + (first - 1 if first is not None else len(rows))))
    cursors_create(starts)
    existing = {webhook_id for webhook_id, _ in webhooks}
    groups: dict[int | None, list[Sequence]] = {}
    for row in rows:
        if row[6] is None or row[6] in existing:
            groups.setdefault(row[6], []).append(row[:5] + (to_aware(row[5]),))
    for webhook_id, selected in groups.items():
        folded = changes_fold(selected, by_institute=webhook_id is None)
        # An entry that resets what waits (FoldedChange.resets) first writes its destroy.
        resets = [_stamped(entry, seqs, Action.DESTROY) for entry in folded if entry.resets]
        if resets:
            entries_upsert(cursor, resets, webhook_id=webhook_id)
        entries_upsert(cursor, [_stamped(entry, seqs, entry.action) for entry in folded],
                       webhook_id=webhook_id)
    stream_head_set(cursor, head + len(rows))


def _stamped(entry: FoldedChange, seqs: dict[int, int], action: str) -> tuple:
    # A folded change as entries_upsert writes it, with the seq of its latest change.
    return (entry.institute_id, entry.object_kind, entry.object_id, entry.parent_id, action,
            entry.first_change_at, entry.last_change_at, seqs[entry.last_change_id])


def _delete_changes(cursor, table: str, ids: list[int]) -> None:
    if connection.vendor == "postgresql":
        cursor.execute(f"DELETE FROM {table} WHERE id = ANY(%s)", [ids])
        return
    for start in range(0, len(ids), 5000):
        chunk = ids[start : start + 5000]
        cursor.execute(f"DELETE FROM {table} WHERE id IN ({', '.join(['%s'] * len(chunk))})", chunk)
