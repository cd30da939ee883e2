"""Collecting: recorded changes become coalesced pending entries for every webhook.

The coalescing rules, per (object kind, id), over changes not yet delivered:
- the latest of `update` and `destroy` wins;
- for an institute, `import` absorbs `update`, several imports are one, and a `destroy`
  that is the latest change wins over both;
- when a batch is built, a training `update` whose institute has an `import` in that
  batch is folded into the import; a `destroy` never is.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db import connection, transaction

from changes.models import Action, Change
from deliveries.models import PendingEntry
from webhooks.models import Webhook

COLLECT_CHUNK = 10_000
# Any constant: the key of the PostgreSQL advisory lock that lets one collector run at a time.
_COLLECT_LOCK_KEY = 0x5350_4843  # "SPHC"


def action_merge(earlier: str, later: str) -> str:
    """The action of one object after `earlier` and then `later` (see the module docstring)."""
    if later == Action.UPDATE and earlier == Action.IMPORT:
        return Action.IMPORT
    return later


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


def changes_fold(rows: Iterable[Sequence]) -> list[FoldedChange]:
    """Coalesce change rows (id, kind, object_id, parent_id, action, created_at), in id order."""
    folded: dict[tuple[str, int], FoldedChange] = {}
    for change_id, kind, object_id, parent_id, action, created_at in rows:
        entry = folded.get((kind, object_id))
        if entry is None:
            folded[(kind, object_id)] = FoldedChange(
                kind, object_id, parent_id, action, created_at, created_at, change_id
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


def _upsert_sql(vendor: str, rows: int, webhook_ids: int) -> str:
    table = PendingEntry._meta.db_table
    cast_time = "CAST(%s AS TIMESTAMP WITH TIME ZONE)" if vendor == "postgresql" else "%s"
    values = ", ".join([f"(%s, CAST(%s AS BIGINT), CAST(%s AS BIGINT), %s, {cast_time}, "
                        f"{cast_time}, CAST(%s AS BIGINT))"] * rows)
    webhooks = ", ".join(["%s"] * webhook_ids)
    # One statement fans the folded changes out to every webhook and merges each with the
    # entry already waiting for that object. "WHERE" before ON CONFLICT also keeps
    # SQLite's parser from reading ON as a join clause.
    return (
        f"WITH folded (object_kind, object_id, parent_id, action, first_change_at, "
        f"last_change_at, last_change_id) AS (VALUES {values}) "
        f"INSERT INTO {table} (webhook_id, object_kind, object_id, parent_id, action, "
        f"first_change_at, last_change_at, last_change_id) "
        f"SELECT webhook.id, folded.object_kind, folded.object_id, folded.parent_id, "
        f"folded.action, folded.first_change_at, folded.last_change_at, folded.last_change_id "
        f"FROM folded CROSS JOIN {Webhook._meta.db_table} AS webhook "
        f"WHERE webhook.id IN ({webhooks}) "
        f"ON CONFLICT (webhook_id, object_kind, object_id) DO UPDATE SET "
        f"action = CASE WHEN excluded.action = 'update' AND {table}.action = 'import' "
        f"THEN 'import' ELSE excluded.action END, "
        f"parent_id = COALESCE(excluded.parent_id, {table}.parent_id), "
        f"last_change_at = excluded.last_change_at, "
        f"last_change_id = excluded.last_change_id"
    )


def _entries_upsert(cursor, webhook_ids: list[int], entries: list[FoldedChange]) -> None:
    # Parameters per row: 7; keep each statement under SQLite's limit of 32,766.
    per_statement = 4000
    for start in range(0, len(entries), per_statement):
        chunk = entries[start : start + per_statement]
        params: list[object] = []
        for entry in chunk:
            params.extend(
                (
                    entry.object_kind,
                    entry.object_id,
                    entry.parent_id,
                    entry.action,
                    entry.first_change_at,
                    entry.last_change_at,
                    entry.last_change_id,
                )
            )
        params.extend(webhook_ids)
        cursor.execute(_upsert_sql(connection.vendor, len(chunk), len(webhook_ids)), params)


def _collect_lock(cursor) -> bool:
    if connection.vendor == "postgresql":
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [_COLLECT_LOCK_KEY])
        return cursor.fetchone()[0]
    # SQLite transactions start IMMEDIATE (see settings): this one already holds the
    # database's only write lock.
    return True


def changes_collect(*, limit: int | None = None) -> int:
    """Move up to `limit` recorded changes into every webhook's pending entries.

    Runs in one short transaction: the changes read are deleted in it, so each change is
    applied exactly once, and a change whose writer has not committed yet is simply
    picked up by a later call (rows are claimed, never skipped by a high-water mark).
    Only one collector runs at a time, so changes apply to entries in order. A webhook
    receives the changes recorded after it was created, and those recorded for it alone
    (`Change.webhook`, a resync). Returns the number of changes collected (0 also when
    another collector is busy).
    """
    change_table = Change._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        if not _collect_lock(cursor):
            return 0
        if connection.vendor == "postgresql":
            return _collect_in_sql(cursor, limit or COLLECT_CHUNK_POSTGRESQL)
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
            _fan_out(cursor, rows, webhooks)
        _delete_changes(cursor, change_table, [row[0] for row in rows])
    return len(rows)


# --- PostgreSQL: the same fold, set-based --------------------------------------------------
# Python folding moved every change through the driver twice and wrote one entry per change
# per chunk; in SQL the chunk can be much larger, so one object's many changes fold into one
# entry write. A chunk of this size still commits in well under a second.
COLLECT_CHUNK_POSTGRESQL = 1_000_000
# The claimed chunk, private to this connection and emptied at commit.
_CLAIMED = "springhook_claimed_changes"


def _collect_in_sql(cursor, limit: int) -> int:
    change_table = Change._meta.db_table
    cursor.execute(
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {_CLAIMED} (id bigint, object_kind "
        f"varchar(32), object_id bigint, parent_id bigint, action varchar(16), "
        f"created_at timestamptz, webhook_id bigint) ON COMMIT DELETE ROWS"
    )
    # Empty already after a commit; not when this runs inside an outer transaction (then
    # the last call's claimed rows would be folded again).
    cursor.execute(f"DELETE FROM {_CLAIMED}")
    # One statement, one snapshot: the rows copied are exactly the rows deleted. The first
    # `limit` committed changes in id order form a range; a change of a transaction still
    # in flight inside it is invisible here, stays, and is collected by a later call.
    cursor.execute(
        f"WITH claimed AS (DELETE FROM {change_table} WHERE id <= (SELECT max(id) FROM "
        f"(SELECT id FROM {change_table} ORDER BY id LIMIT %s) AS chunk) "
        f"RETURNING id, object_kind, object_id, parent_id, action, created_at, webhook_id) "
        f"INSERT INTO {_CLAIMED} SELECT * FROM claimed",
        [limit],
    )
    count = cursor.rowcount
    if count <= 0:
        return 0
    webhooks = list(Webhook.objects.values_list("id", "created_at"))
    if not webhooks:
        return count
    # A temporary table has no statistics until analysed: without them the planner guesses
    # a few hundred groups, sorts on disk, and compiles the query with JIT for a second.
    cursor.execute(f"ANALYZE {_CLAIMED}")
    cursor.execute("SET LOCAL work_mem = '64MB'")
    cursor.execute("SET LOCAL jit = off")
    cursor.execute(
        f"SELECT min(created_at), bool_or(action = %s) FROM {_CLAIMED}", [Action.DESTROY]
    )
    oldest, has_destroy = cursor.fetchone()
    cursor.execute(f"SELECT DISTINCT webhook_id FROM {_CLAIMED} WHERE webhook_id IS NOT NULL")
    targets = {row[0] for row in cursor.fetchall()}
    for (since, target), webhook_ids in _fold_groups(webhooks, oldest, targets).items():
        params = {"since": since, "target": target, "webhooks": webhook_ids}
        if has_destroy:
            cursor.execute(_RESET_SQL, params)
        cursor.execute(_FOLD_UPSERT_SQL, params)
    return count


# Per object: its first and last change, the last destroy and import, the last change that
# named a parent, in one pass with no join back to the changes: max() over [id, value]
# arrays picks the value of the latest change (an arg-max). Times travel as integer
# microseconds, exactly. The actions follow changes_fold: the last change wins, except
# that updates after an import (with no destroy between) leave it an import.
_MICROS = "CAST(EXTRACT(EPOCH FROM created_at) * 1000000 AS bigint)"
_FOLDED = f"""
    SELECT object_kind, object_id, max(id) AS last_id,
           (min(ARRAY[id, {_MICROS}]))[2] AS first_micros,
           (max(ARRAY[id, {_MICROS}]))[2] AS last_micros,
           (max(ARRAY[id, parent_id]) FILTER (WHERE parent_id IS NOT NULL))[2] AS parent_id,
           max(id) FILTER (WHERE action = 'destroy') AS last_destroy_id,
           max(id) FILTER (WHERE action = 'import') AS last_import_id
    FROM {_CLAIMED}
    WHERE (CAST(%(since)s AS timestamptz) IS NULL OR created_at >= %(since)s)
      AND (webhook_id IS NULL OR webhook_id = CAST(%(target)s AS bigint))
    GROUP BY object_kind, object_id
"""
_EPOCH = "TIMESTAMP WITH TIME ZONE 'epoch'"
_PENDING = PendingEntry._meta.db_table
# A destroy followed by other changes resets the waiting entry first: an import waiting
# from before must not absorb the update that follows the destroy.
_RESET_SQL = f"""
    UPDATE {_PENDING} AS pending SET action = 'destroy'
    FROM ({_FOLDED}) AS folded
    WHERE folded.last_destroy_id < folded.last_id
      AND pending.webhook_id = ANY(%(webhooks)s)
      AND pending.object_kind = folded.object_kind AND pending.object_id = folded.object_id
      AND pending.action = 'import'
"""
_FOLD_UPSERT_SQL = f"""
    INSERT INTO {_PENDING} (webhook_id, object_kind, object_id, parent_id, action,
                            first_change_at, last_change_at, last_change_id)
    SELECT webhook.id, folded.object_kind, folded.object_id, folded.parent_id,
           CASE WHEN folded.last_destroy_id = folded.last_id THEN 'destroy'
                WHEN folded.last_import_id = folded.last_id THEN 'import'
                WHEN COALESCE(folded.last_import_id, 0) > COALESCE(folded.last_destroy_id, 0)
                    THEN 'import'
                ELSE 'update' END,
           {_EPOCH} + folded.first_micros * INTERVAL '1 microsecond',
           {_EPOCH} + folded.last_micros * INTERVAL '1 microsecond',
           folded.last_id
    FROM ({_FOLDED}) AS folded
    JOIN {Webhook._meta.db_table} AS webhook ON webhook.id = ANY(%(webhooks)s)
    ON CONFLICT (webhook_id, object_kind, object_id) DO UPDATE SET
        action = CASE WHEN excluded.action = 'update' AND {_PENDING}.action = 'import'
                      THEN 'import' ELSE excluded.action END,
        parent_id = COALESCE(excluded.parent_id, {_PENDING}.parent_id),
        last_change_at = excluded.last_change_at,
        last_change_id = excluded.last_change_id
"""


def _fold_groups(
    webhooks: list[tuple[int, datetime]], oldest: datetime, targets: set[int]
) -> dict[tuple[datetime | None, int | None], list[int]]:
    """The webhooks that share one fold of a chunk, keyed by (since, target).

    Most webhooks predate every change in the chunk and share one fold; a webhook created
    in the middle of it gets only the changes made after its creation (`since`), and a
    webhook that has changes of its own in the chunk (`target`) gets those too, folded
    with everyone's in one pass so that the order between them holds.
    """
    groups: dict[tuple[datetime | None, int | None], list[int]] = {}
    for webhook_id, webhook_created_at in webhooks:
        since = None if webhook_created_at <= oldest else webhook_created_at
        target = webhook_id if webhook_id in targets else None
        groups.setdefault((since, target), []).append(webhook_id)
    return groups


def _fan_out(cursor, rows: list[Sequence], webhooks: list[tuple[int, datetime]]) -> None:
    to_aware = aware_converter()
    created = [to_aware(row[5]) for row in rows]
    targets = {row[6] for row in rows if row[6] is not None}
    for (since, target), webhook_ids in _fold_groups(webhooks, min(created), targets).items():
        selected = [
            row[:6]
            for row, at in zip(rows, created, strict=True)
            if (since is None or at >= since) and row[6] in (None, target)
        ]
        folded = changes_fold(selected)
        resets = [
            FoldedChange(
                entry.object_kind, entry.object_id, entry.parent_id, Action.DESTROY,
                entry.first_change_at, entry.last_change_at, entry.last_change_id,
            )
            for entry in folded
            if entry.resets
        ]
        if resets:
            _entries_upsert(cursor, webhook_ids, resets)
        if folded:
            _entries_upsert(cursor, webhook_ids, folded)


def aware_converter():
    if connection.vendor == "postgresql":
        return lambda value: value
    from django.utils.dateparse import parse_datetime
    from django.utils.timezone import make_aware

    def to_aware(value):
        parsed = parse_datetime(value) if isinstance(value, str) else value
        return make_aware(parsed) if parsed.tzinfo is None else parsed

    return to_aware


def _delete_changes(cursor, table: str, ids: list[int]) -> None:
    if connection.vendor == "postgresql":
        cursor.execute(f"DELETE FROM {table} WHERE id = ANY(%s)", [ids])
        return
    for start in range(0, len(ids), 5000):
        chunk = ids[start : start + 5000]
        cursor.execute(f"DELETE FROM {table} WHERE id IN ({', '.join(['%s'] * len(chunk))})", chunk)
