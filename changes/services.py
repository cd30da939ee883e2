"""Recording changes: the only way data enters the outbox.

Call these inside the transaction that changes the data. They write one plain INSERT per
change (no ORM object, no broker, no per-webhook fan-out), so that capturing costs a save
little and does not grow with the number of webhooks.
"""

from collections.abc import Callable, Collection, Iterable, Iterator
from typing import NamedTuple

from django.db import connections, router, transaction
from django.utils import timezone

from changes.models import Action, Change


class ChangeEntry(NamedTuple):
    object_kind: str
    object_id: int
    action: str
    parent_id: int | None = None


_INSERT_SQL = (
    f"INSERT INTO {Change._meta.db_table} "
    "(object_kind, object_id, parent_id, action, created_at, webhook_id) VALUES "
)
_ROW = "(%s, %s, %s, %s, %s, %s)"
_ROW_PARAMETERS = 6
# Rows per INSERT statement in the bulk path; 6 parameters each stays far below the
# parameter limits of SQLite (32,766) and PostgreSQL (65,535).
_BULK_CHUNK = 2000


def change_record(
    *, object_kind: str, object_id: int, action: str, parent_id: int | None = None
) -> None:
    """Record that one object changed. Joins the caller's transaction (or autocommits)."""
    _check_action(action)
    using = router.db_for_write(Change)
    connection = connections[using]
    with connection.cursor() as cursor:
        cursor.execute(
            _INSERT_SQL + _ROW,
            [object_kind, object_id, parent_id, action, _now(connection), None],
        )


def changes_record(*, entries: Iterable[ChangeEntry], webhook_id: int | None = None) -> int:
    """Record many changes at once: the path for bulk writes that bypass model signals.

    `QuerySet.update()`, `bulk_create()` and `bulk_update()` send no signals, so code that
    uses them must call this in the same transaction, one entry per object touched. With
    `webhook_id` the changes go to that webhook alone (a resync); otherwise to every
    webhook. Returns the number of changes recorded.
    """
    using = router.db_for_write(Change)
    connection = connections[using]
    now = _now(connection)
    if connection.vendor == "postgresql":
        return _changes_record_arrays(connection, entries, now, webhook_id)
    count = 0
    chunk: list[object] = []
    with connection.cursor() as cursor:
        for entry in entries:
            _check_action(entry.action)
            chunk.extend(
                (entry.object_kind, entry.object_id, entry.parent_id, entry.action, now,
                 webhook_id)
            )
            count += 1
            if len(chunk) >= _BULK_CHUNK * _ROW_PARAMETERS:
                rows = len(chunk) // _ROW_PARAMETERS
                cursor.execute(_INSERT_SQL + ", ".join([_ROW] * rows), chunk)
                chunk = []
        if chunk:
            rows = len(chunk) // _ROW_PARAMETERS
            cursor.execute(_INSERT_SQL + ", ".join([_ROW] * rows), chunk)
    return count


# PostgreSQL takes a chunk as four arrays, each sent as one array literal: one short
# statement instead of a VALUES list with five parameters per row (or an ARRAY[...] of
# 50,000 expressions), which the server would have to parse one by one.
_ARRAY_CHUNK = 50_000
_ARRAYS_SQL = (
    f"INSERT INTO {Change._meta.db_table} (object_kind, object_id, parent_id, action, "
    "created_at, webhook_id) SELECT kind, object_id, parent_id, action, %s, CAST(%s AS bigint) "
    "FROM unnest("
    "CAST(%s AS varchar[]), CAST(%s AS bigint[]), CAST(%s AS bigint[]), "
    "CAST(%s AS varchar[])) AS entry (kind, object_id, parent_id, action)"
)


def _changes_record_arrays(
    connection, entries: Iterable[ChangeEntry], now, webhook_id: int | None
) -> int:
    count = 0
    columns: tuple[list, list, list, list] = ([], [], [], [])
    with connection.cursor() as cursor:
        for entry in entries:
            _check_action(entry.action)
            columns[0].append(entry.object_kind)
            columns[1].append(entry.object_id)
            columns[2].append(entry.parent_id)
            columns[3].append(entry.action)
            count += 1
            if len(columns[0]) >= _ARRAY_CHUNK:
                cursor.execute(_ARRAYS_SQL, [now, webhook_id, *map(_array_literal, columns)])
                columns = ([], [], [], [])
        if columns[0]:
            cursor.execute(_ARRAYS_SQL, [now, webhook_id, *map(_array_literal, columns)])
    return count


def _array_literal(values: list) -> str:
    """A PostgreSQL array literal ('{1,NULL,"a"}') of ints, None and strings."""
    return "{" + ",".join(map(_array_element, values)) + "}"


def _array_element(value) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, int):
        return str(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _now(connection):
    # Raw SQL skips the ORM's conversion: store the time the way the backend's
    # DateTimeField does (naive UTC text on SQLite, timestamptz on PostgreSQL).
    return connection.ops.adapt_datetimefield_value(timezone.now())


_ACTIONS = frozenset(Action.values)


def _check_action(action: str) -> None:
    if action not in _ACTIONS:
        raise ValueError(f"unknown change action {action!r}; expected one of {Action.values}")


# --- The whole catalogue, for one webhook ---------------------------------------------------
# This app knows no catalogue model: the catalogue app registers, at startup, what "the
# whole catalogue" is, as a function that yields its entries (an `import` per institute),
# streamed rather than loaded at once.

# The source is called with the ids of the institutes wanted, or None for all of them.
CatalogueSource = Callable[[Collection[int] | None], Iterable[ChangeEntry]]
_catalogue_source: CatalogueSource | None = None


def catalogue_source_register(source: CatalogueSource) -> None:
    """Make `source` what catalogue_record records (catalog does it in its AppConfig)."""
    global _catalogue_source
    _catalogue_source = source


def catalogue_record(*, webhook_id: int, institute_ids: Collection[int] | None = None) -> int:
    """Record the whole catalogue, or the institutes `institute_ids` of it (a webhook's
    scope), for one webhook alone, in one transaction.

    Each entry the registered source yields becomes a change for `webhook_id` only; the
    collector folds them with everyone's changes in order, so they coalesce with what
    already waits for that webhook (an `import` absorbs a waiting `update`), and no other
    webhook receives anything. Entries are written in chunks as the source yields them,
    so memory stays flat however large the catalogue. Returns the number recorded.
    """
    if _catalogue_source is None:
        raise RuntimeError("no catalogue source registered (the catalog app does it)")
    with transaction.atomic(using=router.db_for_write(Change)):
        return changes_record(entries=_catalogue_source(institute_ids), webhook_id=webhook_id)


def catalogue_ids(*, institute_ids: Collection[int] | None = None) -> Iterator[int]:
    """The ids of the catalogue's institutes (of `institute_ids`, those that exist), in id
    order, read from the registered source."""
    if _catalogue_source is None:
        raise RuntimeError("no catalogue source registered (the catalog app does it)")
    for entry in _catalogue_source(institute_ids):
        yield entry.object_id
