"""Every statement on the change stream's tables, by what it does. The services decide
(what to append, which batch is due, where a cursor goes); this module holds how the
tables are read and written, so each statement and the index it needs are found here.

The tables (deliveries.models):

    StreamEntry    the stream: one row per object and institute, shared by every
                   webhook, stamped with the seq of its latest change
    PendingEntry   a webhook's own entries: changes meant for it alone (a resync), one
                   per object, stamped from the same numbering
    WebhookCursor  per webhook: the seq up to which it has taken the stream
    StreamHead     the last seq stamped (one row)

The verbs:

append       the collector's writes (deliveries.services.collect): folded changes
             upserted into the stream or a webhook's own entries (set-based in SQL on
             PostgreSQL, rows folded in Python on SQLite), new webhooks' cursors
read         what waits for a webhook: its stream rows after its cursor that its scope
             admits, and its own entries; for operators (webhooks_backlog,
             backlog_annotations) and for the tick (scoped_backlogs_read,
             unscoped_backlog_read); the institutes waiting, for a narrowed scope
due          the columns the tick's one query over the webhooks needs
             (due_annotations); deliveries.services.batch.webhooks_due decides
take         a batch's rows read (stream_batch_read, pending_batch_read), then its
             cursor set and its own entries deleted, in the claim's transaction
advance      scoped cursors moved past rows that are not theirs (forward only), and
             rows every cursor has passed pruned
the head     read by readers, made again if missing and moved by the collector

Raw SQL answers SQLite with naive text for datetimes: the reads convert what they give
(aware_converter), except scoped_backlogs_read, whose callers convert the oldest they use.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import starmap
from typing import NamedTuple

from django.db import connection
from django.db.models import (
    Count,
    Exists,
    Expression,
    F,
    Func,
    IntegerField,
    Min,
    OuterRef,
    QuerySet,
    Subquery,
)
from django.db.models.functions import Coalesce

from changes.models import Action, Change
from deliveries.coalescing import action_merge_sql
from deliveries.models import PendingEntry, StreamEntry, StreamHead, WebhookCursor
from deliveries.scoping import INSTITUTE_KEY_SQL, StreamFilter, stream_filter
from webhooks.models import ScopeObjects, Webhook

_STREAM = StreamEntry._meta.db_table
_PENDING = PendingEntry._meta.db_table
_CURSOR = WebhookCursor._meta.db_table
_HEAD = StreamHead._meta.db_table


def aware_converter():
    """A function that makes a datetime read with raw SQL aware (SQLite answers naive
    text; PostgreSQL's are aware already)."""
    if connection.vendor == "postgresql":
        return lambda value: value
    from django.utils.dateparse import parse_datetime
    from django.utils.timezone import make_aware

    def to_aware(value):
        parsed = parse_datetime(value) if isinstance(value, str) else value
        return make_aware(parsed) if parsed.tzinfo is None else parsed

    return to_aware


def _aware(value):
    return value if connection.vendor == "postgresql" else aware_converter()(value)


# --- Append: the collector's writes -----------------------------------------------------------


def cursors_webhook_ids(cursor) -> set[int]:
    """The webhooks that have a cursor."""
    cursor.execute(f"SELECT webhook_id FROM {_CURSOR}")
    return {row[0] for row in cursor.fetchall()}


def cursors_create(starts: Iterable[tuple[int, int]]) -> None:
    """Give these webhooks a cursor at these seqs, (webhook id, seq); one that has one
    keeps it."""
    WebhookCursor.objects.bulk_create(
        [WebhookCursor(webhook_id=webhook_id, seq=seq) for webhook_id, seq in starts],
        ignore_conflicts=True,
    )


def _merge_set(table: str) -> str:
    # How a folded change merges into the row already waiting for its object (a stream
    # row or a pending entry): by the coalescing rule (deliveries.coalescing); the first
    # change's time stays (the bundle delay counts from it); the row takes the new seq.
    return (
        f"action = {action_merge_sql(f'{table}.action', 'excluded.action')}, "
        f"parent_id = COALESCE(excluded.parent_id, {table}.parent_id), "
        f"last_change_at = excluded.last_change_at, seq = excluded.seq"
    )


def entries_upsert(cursor, rows: Sequence[tuple], *, webhook_id: int | None) -> None:
    """Upsert folded changes into the stream (webhook_id None) or one webhook's pending
    entries (portable SQL: SQLite). Each row is (institute id, object kind, object id,
    parent id, action, first change at, last change at, seq), the seq of its latest
    change; a webhook's own entries have no institute."""
    if webhook_id is None:
        columns = ("institute_id, object_kind, object_id, parent_id, action, first_change_at, "
                   "last_change_at, seq")
        head = "%s, "
        conflict, merge = "object_kind, object_id, institute_id", _merge_set(_STREAM)
        table = _STREAM
    else:
        columns = ("webhook_id, object_kind, object_id, parent_id, action, first_change_at, "
                   "last_change_at, seq")
        head, conflict = "%s, ", "webhook_id, object_kind, object_id"
        merge, table = _merge_set(_PENDING), _PENDING
    per_statement = 3000  # parameters per row: 8 at most; SQLite allows 32,766
    for start in range(0, len(rows), per_statement):
        chunk = rows[start : start + per_statement]
        params: list[object] = []
        for row in chunk:
            params.append(webhook_id if webhook_id is not None else row[0])
            params.extend(row[1:])
        values = ", ".join([f"({head}%s, %s, %s, %s, %s, %s, %s)"] * len(chunk))
        cursor.execute(
            f"INSERT INTO {table} ({columns}) VALUES {values} "
            f"ON CONFLICT ({conflict}) DO UPDATE SET {merge}",
            params,
        )


# PostgreSQL folds a chunk of changes set-based, straight from the outbox.
# Per object (and, for changes meant for one webhook, per webhook): its first and last
# change, the last destroy and import, the last change that named a parent, in one pass
# with no join back to the changes: max() over [id, parent] arrays picks the parent of the
# latest change that named one (an arg-max). The action is actions_fold of the object's
# changes (deliveries.coalescing), computed from those ids: the last change wins, except
# that updates after an import (with no destroy between) leave it an import. Held equal
# to actions_fold by tests/deliveries/test_coalescing.py.
def _folded(targeted: bool) -> str:
    # The stream keeps one row per object and institute; one webhook's own entries one
    # per object.
    institute = "0" if targeted else INSTITUTE_KEY_SQL
    return f"""
    SELECT {"webhook_id, " if targeted else ""}object_kind, object_id,
           {institute} AS institute_id, max(id) AS last_id,
           min(created_at) AS first_change_at, max(created_at) AS last_change_at,
           (max(ARRAY[id, parent_id]) FILTER (WHERE parent_id IS NOT NULL))[2] AS parent_id,
           max(id) FILTER (WHERE action = 'destroy') AS last_destroy_id,
           max(id) FILTER (WHERE action = 'import') AS last_import_id
    FROM {Change._meta.db_table}
    WHERE id BETWEEN %(low)s AND %(high)s AND webhook_id IS {"NOT " if targeted else ""}NULL
    GROUP BY {"webhook_id, " if targeted else ""}object_kind, object_id{
        "" if targeted else ", " + institute}
"""


_FOLDED_ACTION = """
           CASE WHEN folded.last_destroy_id = folded.last_id THEN 'destroy'
                WHEN folded.last_import_id = folded.last_id THEN 'import'
                WHEN COALESCE(folded.last_import_id, 0) > COALESCE(folded.last_destroy_id, 0)
                    THEN 'import'
                ELSE 'update' END"""
# A destroy followed by other changes resets the waiting row first: an import waiting
# from before must not absorb the update that follows the destroy.
_STREAM_RESET_SQL = f"""
    UPDATE {_STREAM} AS waiting SET action = 'destroy'
    FROM ({_folded(False)}) AS folded
    WHERE folded.last_destroy_id < folded.last_id
      AND waiting.object_kind = folded.object_kind AND waiting.object_id = folded.object_id
      AND waiting.institute_id = folded.institute_id AND waiting.action = 'import'
"""
_STREAM_UPSERT_SQL = f"""
    INSERT INTO {_STREAM} (institute_id, object_kind, object_id, parent_id, action,
                           first_change_at, last_change_at, seq)
    SELECT folded.institute_id, folded.object_kind, folded.object_id, folded.parent_id,
           {_FOLDED_ACTION}, folded.first_change_at, folded.last_change_at,
           %(base)s + folded.last_id
    FROM ({_folded(False)}) AS folded
    ON CONFLICT (object_kind, object_id, institute_id) DO UPDATE SET
        {_merge_set(_STREAM)}
"""
_PENDING_RESET_SQL = f"""
    UPDATE {_PENDING} AS pending SET action = 'destroy'
    FROM ({_folded(True)}) AS folded
    WHERE folded.last_destroy_id < folded.last_id
      AND pending.webhook_id = folded.webhook_id
      AND pending.object_kind = folded.object_kind AND pending.object_id = folded.object_id
      AND pending.action = 'import'
"""
# A change meant for a webhook that is gone joins no webhook: it is dropped.
_PENDING_UPSERT_SQL = f"""
    INSERT INTO {_PENDING} (webhook_id, object_kind, object_id, parent_id, action,
                            first_change_at, last_change_at, seq)
    SELECT webhook.id, folded.object_kind, folded.object_id, folded.parent_id,
           {_FOLDED_ACTION}, folded.first_change_at, folded.last_change_at,
           %(base)s + folded.last_id
    FROM ({_folded(True)}) AS folded
    JOIN {Webhook._meta.db_table} AS webhook ON webhook.id = folded.webhook_id
    ON CONFLICT (webhook_id, object_kind, object_id) DO UPDATE SET
        {_merge_set(_PENDING)}
"""


def changes_fold_upsert(
    cursor, *, low: int, high: int, head: int, has_destroy: bool, has_broadcast: bool,
    has_targeted: bool,
) -> None:
    """Fold the changes with ids in [low, high] into the stream (those for every webhook)
    and the pending entries (those for one webhook), set-based (PostgreSQL); a change's
    seq is head + (id - low + 1). The flags say what the range holds, so that no
    statement runs for nothing."""
    params = {"base": head - low + 1, "low": low, "high": high}
    if has_broadcast:
        if has_destroy:
            cursor.execute(_STREAM_RESET_SQL, params)
        cursor.execute(_STREAM_UPSERT_SQL, params)
    if has_targeted:
        if has_destroy:
            cursor.execute(_PENDING_RESET_SQL, params)
        cursor.execute(_PENDING_UPSERT_SQL, params)


# --- Read the backlog -------------------------------------------------------------------------


@dataclass
class Backlog:
    """What waits for one webhook: its stream rows after its cursor plus its own pending
    entries (an object in both counts twice), and the oldest change among them."""

    count: int = 0
    oldest: datetime | None = None


def webhooks_backlog(*, webhook_id: int | None = None) -> dict[int, Backlog]:
    """The backlog of every webhook (or one) that has one: the pending entries grouped in
    one query, the stream counted once per distinct cursor."""
    pending = PendingEntry.objects.order_by().values("webhook_id")
    cursors = WebhookCursor.objects.all()
    if webhook_id is not None:
        pending = pending.filter(webhook_id=webhook_id)
        cursors = cursors.filter(webhook_id=webhook_id)
    backlog = {
        row["webhook_id"]: Backlog(row["count"], row["oldest"])
        for row in pending.annotate(count=Count("id"), oldest=Min("first_change_at"))
    }
    streams: dict[tuple, dict] = {}
    for cursor in cursors.select_related("webhook"):
        # A scoped webhook counts only the rows its scope admits.
        row_filter = stream_filter(cursor.webhook)
        key = (cursor.seq, row_filter)
        if key not in streams:
            rows = StreamEntry.objects.filter(seq__gt=cursor.seq)
            if row_filter is not None:
                rows = rows.filter(row_filter.q())
            streams[key] = rows.aggregate(count=Count("id"), oldest=Min("first_change_at"))
        stream = streams[key]
        if not stream["count"]:
            continue
        waiting = backlog.setdefault(cursor.webhook_id, Backlog())
        waiting.count += stream["count"]
        if waiting.oldest is None or stream["oldest"] < waiting.oldest:
            waiting.oldest = stream["oldest"]
    return backlog


def backlog_annotations() -> dict[str, Expression]:
    """Expressions for a Webhook queryset, computed by the database in the list's one
    query: the number of entries waiting for each webhook (`pending_count`, as
    Backlog.count), and the oldest first change of its own entries
    (`oldest_pending_change_at`) and of its stream rows (`oldest_stream_change_at`). A
    webhook with a scope is counted over every stream row after its cursor, its scope's
    or not: use webhooks_backlog for those."""

    def counted(queryset: QuerySet) -> Expression:
        # COUNT as a plain function, not an aggregate: no GROUP BY in the subquery.
        total = queryset.order_by().values(n=Func(F("id"), function="COUNT"))
        return Coalesce(Subquery(total, output_field=IntegerField()), 0)

    def oldest(queryset: QuerySet) -> Expression:
        return Subquery(queryset.order_by().values(t=Func(F("first_change_at"), function="MIN")))

    own = PendingEntry.objects.filter(webhook=OuterRef("pk"))
    after_cursor = StreamEntry.objects.filter(seq__gt=OuterRef("stream_cursor__seq"))
    return {
        "pending_count": counted(own) + counted(after_cursor),
        "oldest_pending_change_at": oldest(own),
        "oldest_stream_change_at": oldest(after_cursor),
    }


def _scoped_rows_sql(
    *, position: int, head: int, stream_filter: StreamFilter, limit: int,
    columns: str,
) -> tuple[str, list]:
    """A query of the first `limit` stream rows in (position, head] that the filter admits,
    in seq order. On PostgreSQL each institute of the scope is read from the
    (institute_id, seq) index on its own, so the cost follows the rows admitted, not the
    length of the stream."""
    if connection.vendor == "postgresql" and stream_filter.institute_ids:
        kinds_sql, kinds_params = stream_filter._kinds_sql("row_.")
        kinds = f" AND {kinds_sql}" if kinds_sql else ""
        qualified = ", ".join(f"row_.{column.strip()}" for column in columns.split(","))
        return (
            f"SELECT {columns} FROM (SELECT {qualified} FROM unnest(%s::bigint[]) AS scope(id) "
            f"CROSS JOIN LATERAL (SELECT * FROM {_STREAM} AS row_ WHERE row_.institute_id = "
            f"scope.id AND row_.seq > %s AND row_.seq <= %s{kinds} ORDER BY row_.seq "
            f"LIMIT %s) AS row_) AS admitted ORDER BY seq LIMIT %s",
            [list(stream_filter.institute_ids), position, head, *kinds_params, limit, limit],
        )
    conditions, params = stream_filter.sql()
    return (
        f"SELECT {columns} FROM {_STREAM} WHERE seq > %s AND seq <= %s{conditions} "
        f"ORDER BY seq LIMIT %s",
        [position, head, *params, limit],
    )


def scoped_backlogs_read(
    cursor, reads: list[tuple[int, StreamFilter]], head: int, limit: int,
) -> list[tuple[int, object, int | None]]:
    """For each (position, filter), what waits in (position, head] that the filter admits,
    counted up to `limit` rows: (rows, oldest first change, first seq); rows is `limit`
    or more when a full batch waits (the oldest is then of those read). The oldest is as
    the database answers it (naive text on SQLite: see aware_converter).

    On PostgreSQL the reads of webhooks with some institutes go out as one statement per
    set of object kinds, each institute read from the (institute_id, seq) index on its
    own (at most `limit` rows each), so that a tick costs in proportion to what the
    scoped webhooks receive and not one round trip each; other reads go one by one."""
    answers: list[tuple[int, object, int | None]] = [(0, None, None)] * len(reads)
    one_by_one = list(range(len(reads)))
    if connection.vendor == "postgresql":
        by_kinds: dict[tuple[str, ...], list[int]] = {}
        for number, (_, row_filter) in enumerate(reads):
            if row_filter.institute_ids:
                by_kinds.setdefault(row_filter.object_kinds, []).append(number)
        for kinds, numbers in by_kinds.items():
            kinds_sql, kinds_params = StreamFilter(None, kinds)._kinds_sql("row_.")
            pairs = [(number, reads[number][0], institute_id) for number in numbers
                     for institute_id in reads[number][1].institute_ids]
            cursor.execute(
                f"SELECT pair.number, count(*), min(row_.first_change_at), min(row_.seq) "
                f"FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[]) "
                f"AS pair(number, position, institute_id) CROSS JOIN LATERAL (SELECT "
                f"row_.seq, row_.first_change_at FROM {_STREAM} AS row_ "
                f"WHERE row_.institute_id = pair.institute_id AND row_.seq > pair.position "
                f"AND row_.seq <= %s{' AND ' + kinds_sql if kinds_sql else ''} "
                f"ORDER BY row_.seq LIMIT %s) AS row_ GROUP BY pair.number",
                [[pair[0] for pair in pairs], [pair[1] for pair in pairs],
                 [pair[2] for pair in pairs], head, *kinds_params, limit],
            )
            for number, count, oldest, first in cursor.fetchall():
                answers[number] = (count, oldest, first)
        one_by_one = [number for number, (_, row_filter) in enumerate(reads)
                      if not row_filter.institute_ids]
    for number in one_by_one:
        position, row_filter = reads[number]
        sql, params = _scoped_rows_sql(position=position, head=head, stream_filter=row_filter,
                                       limit=limit, columns="seq, first_change_at")
        cursor.execute(
            f"SELECT count(*), min(first_change_at), min(seq) FROM ({sql}) AS waiting", params
        )
        answers[number] = cursor.fetchone()
    return answers


def unscoped_backlog_read(cursor, position: int, limit: int) -> tuple[datetime | None, bool]:
    """Whether a full batch (`limit` rows) waits after `position`, and the oldest first
    change there when not (then at most a batch waits: the minimum reads no more than the
    batch would). (A scoped webhook's: scoped_backlogs_read.)"""
    cursor.execute(
        f"SELECT count(*), min(first_change_at) FROM (SELECT first_change_at "
        f"FROM {_STREAM} WHERE seq > %s ORDER BY seq LIMIT %s) AS waiting",
        [position, limit],
    )
    waiting, oldest = cursor.fetchone()
    return (_aware(oldest) if oldest is not None else None), waiting >= limit


def institutes_waiting(*, webhook_id: int) -> set[int]:
    """The institutes of the stream rows after the webhook's cursor and of the changes for
    every webhook not collected yet, in one statement (one snapshot: a change the
    collector moves into the stream meanwhile is seen in one place or the other)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT institute_id FROM {_STREAM} WHERE seq > (SELECT seq "
            f"FROM {_CURSOR} WHERE webhook_id = %s) "
            f"UNION SELECT {INSTITUTE_KEY_SQL} FROM {Change._meta.db_table} "
            f"WHERE webhook_id IS NULL",
            [webhook_id],
        )
        # 0: a training change that named no institute, which no scope holds.
        return {row[0] for row in cursor.fetchall()} - {0}


# --- What is due ------------------------------------------------------------------------------


def due_annotations(*, batch_size: int) -> dict[str, Expression]:
    """Expressions for a Webhook queryset, so that the tick reads every webhook in one
    query (not one per webhook): its cursor's seq (`cursor`), the oldest first change of
    its own entries (`oldest_pending`), and whether a full batch of them waits
    (`full_batch`). Its stream rows are read once per distinct cursor:
    unscoped_backlog_read, scoped_backlogs_read."""
    return {
        "cursor": Subquery(
            WebhookCursor.objects.filter(webhook=OuterRef("pk")).values("seq")[:1]
        ),
        "oldest_pending": Subquery(
            PendingEntry.objects.filter(webhook=OuterRef("pk"))
            .order_by("first_change_at")
            .values("first_change_at")[:1]
        ),
        # An entry at offset batch_size - 1 exists.
        "full_batch": Exists(
            PendingEntry.objects.filter(webhook=OuterRef("pk")).order_by()[
                batch_size - 1 : batch_size
            ]
        ),
    }


# --- Take: a batch's rows read, its cursor set, its own entries deleted -----------------------


class WaitingEntry(NamedTuple):
    """A stream row (pending_id None) or a pending entry, as a batch reads it."""

    object_kind: str
    object_id: int
    parent_id: int | None
    action: str
    seq: int
    pending_id: int | None = None


# The oldest change stream_batch_read gives for a full batch, which is due whatever its
# age: "as old as can be", without reading it.
_FULL_BATCH_OLDEST = datetime.min.replace(tzinfo=UTC)
_STREAM_COLUMNS = "object_kind, object_id, parent_id, action, seq"


def cursors_and_pending_read(
    cursor, webhook_ids: list[int]
) -> tuple[dict[int, int | None], set[int]]:
    """Each webhook's cursor (None: it has none yet) and the webhooks that have entries of
    their own, in one round trip."""
    cursor.execute(
        f"SELECT webhook.id, (SELECT seq FROM {_CURSOR} "
        f"WHERE webhook_id = webhook.id), EXISTS (SELECT 1 FROM "
        f"{_PENDING} WHERE webhook_id = webhook.id) "
        f"FROM {Webhook._meta.db_table} AS webhook "
        f"WHERE webhook.id IN ({', '.join(['%s'] * len(webhook_ids))})",
        webhook_ids,
    )
    cursors, with_pending = {}, set()
    for webhook_id, position, has_pending in cursor.fetchall():
        cursors[webhook_id] = position
        if has_pending:
            with_pending.add(webhook_id)
    return cursors, with_pending


def stream_batch_read(
    cursor, position: int, limit: int, row_filter: StreamFilter | None = None,
    head: int | None = None,
) -> tuple[list[WaitingEntry], datetime | None]:
    """The first `limit` stream rows after `position` (those the webhook's scope admits, up
    to `head`), and the oldest first change among them when fewer came (all that waits); a
    full batch is due anyway, and its oldest is _FULL_BATCH_OLDEST. A row stamped anew
    keeps its first change, so it is due however often it changes."""
    if row_filter is not None:
        cursor.execute(*_scoped_rows_sql(
            position=position, head=head, stream_filter=row_filter, limit=limit,
            columns=_STREAM_COLUMNS + ", first_change_at",
        ))
        fetched = cursor.fetchall()
        if not fetched:
            return [], None
        return ([WaitingEntry(*row[:5]) for row in fetched],
                _aware(min(row[5] for row in fetched)))
    # No timestamp per row: converting 500 of them took as long as reading the rows
    # (0.62 ms against 0.36 for a batch, measured side by side; adding the oldest up in
    # the same statement, 0.65). A batch not full asks for its oldest in a second one.
    cursor.execute(
        f"SELECT {_STREAM_COLUMNS} FROM {_STREAM} WHERE seq > %s ORDER BY seq LIMIT %s",
        [position, limit],
    )
    rows = list(starmap(WaitingEntry, cursor.fetchall()))
    if not rows:
        return [], None
    if len(rows) == limit:
        return rows, _FULL_BATCH_OLDEST
    cursor.execute(
        f"SELECT min(first_change_at) FROM {_STREAM} WHERE seq > %s AND seq <= %s",
        [position, rows[-1].seq],
    )
    return rows, _aware(cursor.fetchone()[0])


def pending_batch_read(
    cursor, webhook_id: int, limit: int
) -> tuple[list[WaitingEntry], datetime | None]:
    """The webhook's first `limit` own entries in seq order, and the oldest first change
    of all its own entries."""
    cursor.execute(
        f"SELECT object_kind, object_id, parent_id, action, seq, id FROM {_PENDING} "
        f"WHERE webhook_id = %s ORDER BY seq LIMIT %s",
        [webhook_id, limit],
    )
    rows = list(starmap(WaitingEntry, cursor.fetchall()))
    if not rows:
        return [], None
    cursor.execute(
        f"SELECT first_change_at FROM {_PENDING} WHERE webhook_id = %s "
        f"ORDER BY first_change_at LIMIT 1",
        [webhook_id],
    )
    return rows, _aware(cursor.fetchone()[0])


def cursors_set(cursor, webhook_ids_by_seq: dict[int, list[int]]) -> None:
    """Set the cursors of these webhooks (locked by the caller) to these seqs, {seq:
    webhook ids}: one statement per seq."""
    for seq, webhook_ids in webhook_ids_by_seq.items():
        cursor.execute(
            f"UPDATE {_CURSOR} SET seq = %s "
            f"WHERE webhook_id IN ({', '.join(['%s'] * len(webhook_ids))})",
            [seq, *webhook_ids],
        )


def pending_delete(cursor, pending_ids: list[int]) -> None:
    """Delete these pending entries (5000 to a statement)."""
    for start in range(0, len(pending_ids), 5000):
        chunk = pending_ids[start : start + 5000]
        cursor.execute(
            f"DELETE FROM {_PENDING} WHERE id IN ({', '.join(['%s'] * len(chunk))})", chunk
        )


def pending_training_updates_delete(cursor, *, webhook_id: int, institute_ids: set[int]) -> None:
    """Delete the training updates of these institutes waiting for this webhook alone."""
    cursor.execute(
        f"DELETE FROM {_PENDING} WHERE webhook_id = %s AND object_kind = 'training' "
        f"AND action = %s AND parent_id IN ({', '.join(['%s'] * len(institute_ids))})",
        [webhook_id, Action.UPDATE, *institute_ids],
    )


# --- Advance and prune ------------------------------------------------------------------------


def scoped_cursors_read() -> list[tuple[int, list[int] | None, str, int]]:
    """Every webhook with a scope that has a cursor: (webhook id, scope institutes, scope
    objects, seq)."""
    return list(
        Webhook.objects.exclude(scope_institutes__isnull=True, scope_objects=ScopeObjects.ALL)
        .filter(stream_cursor__isnull=False)
        .values_list("id", "scope_institutes", "scope_objects", "stream_cursor__seq")
    )


def cursors_move_forward(cursor, targets: list[tuple[int, int]]) -> int:
    """Move these cursors forward to their targets, (webhook id, seq), never back; one that
    a claim holds is skipped on PostgreSQL. Returns how many moved."""
    if not targets:
        return 0
    if connection.vendor != "postgresql":
        moved = 0
        for webhook_id, target in targets:
            cursor.execute(
                f"UPDATE {_CURSOR} SET seq = %s WHERE webhook_id = %s AND seq < %s",
                [target, webhook_id, target],
            )
            moved += cursor.rowcount
        return moved
    # One statement; SKIP LOCKED: it never waits for (nor deadlocks with) a claim that
    # holds some of these cursors.
    cursor.execute(
        f"UPDATE {_CURSOR} AS moving SET seq = target.seq "
        f"FROM unnest(%s::bigint[], %s::bigint[]) AS target(webhook_id, seq) "
        f"WHERE moving.webhook_id = target.webhook_id AND moving.seq < target.seq "
        f"AND moving.webhook_id IN (SELECT webhook_id FROM {_CURSOR} "
        f"WHERE webhook_id = ANY(%s::bigint[]) FOR UPDATE SKIP LOCKED)",
        [[webhook_id for webhook_id, _ in targets], [seq for _, seq in targets],
         [webhook_id for webhook_id, _ in targets]],
    )
    return cursor.rowcount


def stream_prune(cursor, head: int) -> None:
    """Delete the rows every cursor has passed: they were delivered to every webhook (a
    paused webhook's cursor holds them); a webhook with no cursor yet starts at the head
    or later."""
    cursor.execute(
        f"DELETE FROM {_STREAM} WHERE seq <= (SELECT COALESCE(min(seq), %s) FROM {_CURSOR})",
        [head],
    )


# --- The head ---------------------------------------------------------------------------------


def stream_head_read(cursor) -> int:
    """The last seq stamped and committed: every row at or below it is visible."""
    cursor.execute(f"SELECT seq FROM {_HEAD} WHERE id = 1")
    row = cursor.fetchone()
    return row[0] if row is not None else 0


def stream_head_get_or_create(cursor) -> int:
    """The last seq stamped, for the collector. Its row is made by the migration; a
    database emptied since (a flushed test database) starts again above whatever still
    waits."""
    cursor.execute(f"SELECT seq FROM {_HEAD} WHERE id = 1")
    row = cursor.fetchone()
    if row is not None:
        return row[0]
    cursor.execute(
        f"SELECT COALESCE(max(seq), 0) FROM (SELECT max(seq) AS seq FROM {_STREAM} "
        f"UNION ALL SELECT max(seq) FROM {_PENDING}) AS waiting"
    )
    seq = cursor.fetchone()[0]
    cursor.execute(f"INSERT INTO {_HEAD} (id, seq) VALUES (1, %s)", [seq])
    return seq


def stream_head_set(cursor, seq: int) -> None:
    """The collector's last step: `seq` is the last one it stamped."""
    cursor.execute(f"UPDATE {_HEAD} SET seq = %s WHERE id = 1", [seq])
