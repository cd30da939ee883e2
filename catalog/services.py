"""Writes to the catalogue that go beyond a single model save: the import and bulk edits.

Single saves and deletes record their change through signals (catalog.signals). The
functions here use bulk SQL, which sends no signals, so each records its changes itself
through changes.services in the same transaction.
"""

import codecs
import io
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import BinaryIO

from django.conf import settings
from django.db import connections, router, transaction
from django.db.models import BooleanField, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.utils import timezone

from catalog.models import Institute, Training
from changes.kinds import INSTITUTE, TRAINING
from changes.models import Action
from changes.services import ChangeEntry, change_record, changes_record
from core.text import NOT_STORABLE

FEED_FIELDS = {"reference", "name", "description", "price"}
_TEXT_LIMIT = 255
_BULK_BATCH = 1000
# What an import writes to a training it updates.
_TRAINING_CONTENT_FIELDS = ("name", "description", "price", "updated_at")
# The feed is read and decoded this many bytes at a time.
_FEED_CHUNK_BYTES = 1024 * 1024
# A record that fails to decode this close to the end of the text read so far may only be
# cut off by the chunk boundary (a literal, an escape or a number's tail): read on and try
# again. Further back the error is the feed's own.
_FEED_CUT_HORIZON = 64
_JSON_WHITESPACE = re.compile(r"[ \t\n\r]*")
_CENT = Decimal("0.01")


class FeedError(ValueError):
    """A feed that cannot be imported; names the record and the field.

    `index` is the record's position in the array from 0; messages count records from 1,
    as people do: "record 2" is the second.
    """

    def __init__(self, message: str, *, index: int | None = None, field: str | None = None):
        self.index = index
        self.field = field
        where = []
        if index is not None:
            where.append(f"record {index + 1}")
        if field is not None:
            where.append(f"field {field!r}")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


class FeedTooLarge(FeedError):
    """The feed has more bytes than IMPORT_MAX_FEED_BYTES."""

    def __init__(self, limit: int):
        super().__init__(
            f"feed is larger than the limit of {limit} bytes (IMPORT_MAX_FEED_BYTES)"
        )


class ImportTargetMissing(ValueError):
    """The institute to import into does not exist."""


@dataclass(frozen=True)
class FeedRecord:
    reference: str
    name: str
    description: str
    price: Decimal | None


@dataclass(frozen=True)
class ImportResult:
    created: int
    updated: int
    unchanged: int
    deleted: int


def feed_parse(raw: bytes | str) -> list[FeedRecord]:
    """Parse and validate a whole feed held in memory; see feed_read for the rules.

    For small feeds (tests, callers that already hold the bytes). A feed file is imported
    with feed_read, which holds one record of it at a time.
    """
    max_bytes = settings.IMPORT_MAX_FEED_BYTES
    if len(raw) > max_bytes:
        raise FeedError(f"feed is {len(raw)} bytes, more than the limit of {max_bytes} bytes")
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    return list(feed_read(stream=io.BytesIO(raw)))


def feed_read(*, stream: BinaryIO) -> Iterator[FeedRecord]:
    """Read a feed from a binary stream and yield its records, validated, one at a time.

    A feed is a JSON array (UTF-8) of objects with a non-empty `reference` and `name`, and
    optional `description` (string) and `price` (a non-negative number with at most two
    decimals, or null). Unknown fields are refused rather than ignored, so that a misspelt
    field never silently drops data; so is text that no database can store (NUL, a lone
    surrogate escape). A reference used twice is refused by import_run, which keeps the
    references it has read in the database rather than in memory.

    The feed is never held whole: the stream is read and decoded a chunk at a time, and
    each record is decoded on its own, so memory holds the largest record and nothing
    that grows with the number of records. Numbers are read as Decimal, so a number of
    any length is a value to judge, never an exception. Raises FeedError naming the
    record and the field, at the first bad record: a caller that writes as it reads must
    do so in a transaction it rolls back (import_run does), and FeedTooLarge once more
    than IMPORT_MAX_FEED_BYTES bytes have been read.
    """
    for index, item in _feed_items(_FeedText(stream, settings.IMPORT_MAX_FEED_BYTES)):
        yield _feed_record(index, item)


@dataclass(frozen=True)
class _NumberOutOfRange:
    """A JSON number whose exponent no Decimal holds (`1E+999999999999999999999`): a value
    for the record's rules to refuse, naming its field, never an exception in the decoder."""

    text: str

    def __str__(self) -> str:
        return self.text


def _feed_number(text: str) -> Decimal | _NumberOutOfRange:
    try:
        return Decimal(text)
    except InvalidOperation:
        return _NumberOutOfRange(text)


# Integers and decimals as Decimal: int() refuses more than 4300 digits (a ValueError that
# is no JSONDecodeError), and float would turn 1e400 into infinity and 0.1 into 0.1000…01.
_FEED_DECODER = json.JSONDecoder(
    parse_int=_feed_number, parse_float=_feed_number, parse_constant=Decimal
)


class _FeedText:
    """The feed's text, decoded from UTF-8 a chunk at a time; only the unread part is held.

    `text` is the part not yet consumed; `consumed` characters came before it, of which
    `lines` were newlines and the last line started at character `line_start`, so that an
    error can say where it is in the whole feed.
    """

    def __init__(self, stream: BinaryIO, max_bytes: int):
        self._stream = stream
        self._max_bytes = max_bytes
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._bytes_read = 0
        self.text = ""
        self.eof = False
        self.consumed = 0
        self.lines = 0
        self.line_start = 0

    def read_more(self, pos: int, *, at_least: int = 1) -> int:
        """Drop the text before `pos`, read at least `at_least` more characters (unless the
        feed ends first) and return where `pos` is now."""
        self._drop(pos)
        pieces = [self.text]
        added = 0
        while added < at_least and not self.eof:
            chunk = self._read_chunk()
            pieces.append(chunk)
            added += len(chunk)
        self.text = "".join(pieces)
        return 0

    def skip_whitespace(self, pos: int) -> int:
        """The position of the next character that is not JSON whitespace, reading on as
        needed; len(text) only at the end of the feed."""
        while True:
            pos = _JSON_WHITESPACE.match(self.text, pos).end()
            if pos < len(self.text) or self.eof:
                return pos
            pos = self.read_more(pos)

    def read_rest(self, pos: int) -> str:
        """All the text from `pos` to the end (bounded by the limit): for error messages."""
        self.read_more(pos, at_least=self._max_bytes + 1)
        return self.text

    def where(self, pos: int) -> str:
        line_break = self.text.rfind("\n", 0, pos)
        if line_break >= 0:
            line = self.lines + self.text.count("\n", 0, pos) + 1
            column = pos - line_break
        else:
            line = self.lines + 1
            column = self.consumed + pos - self.line_start + 1
        return f"line {line}, column {column}"

    def _drop(self, pos: int) -> None:
        dropped = self.text[:pos]
        newlines = dropped.count("\n")
        if newlines:
            self.lines += newlines
            self.line_start = self.consumed + dropped.rfind("\n") + 1
        self.consumed += pos
        self.text = self.text[pos:]

    def _read_chunk(self) -> str:
        try:
            data = self._stream.read(_FEED_CHUNK_BYTES)
        except OSError as error:
            raise FeedError(f"cannot read the feed: {error.strerror or error}") from None
        pending = len(self._decoder.getstate()[0])
        self._bytes_read += len(data)
        if self._bytes_read > self._max_bytes:
            raise FeedTooLarge(self._max_bytes)
        try:
            if not data:
                self.eof = True
                return self._decoder.decode(b"", final=True)
            return self._decoder.decode(data)
        except UnicodeDecodeError as error:
            # error.start counts from the bytes held back from the previous chunk.
            position = self._bytes_read - len(data) - pending + error.start
            raise FeedError(
                f"feed is not valid UTF-8 (byte {position}: {error.reason})"
            ) from None


def _feed_items(feed: _FeedText) -> Iterator[tuple[int, object]]:
    """Yield (index, value) for each element of the feed's top-level array."""
    pos = feed.skip_whitespace(0)
    if feed.text[pos : pos + 1] != "[":
        _feed_not_an_array(feed, pos)
    pos = feed.skip_whitespace(pos + 1)
    index = 0
    if feed.text[pos : pos + 1] == "]":
        pos += 1
    else:
        while True:
            value, pos = _feed_value(feed, pos, index)
            yield index, value
            index += 1
            pos = feed.skip_whitespace(pos)
            separator = feed.text[pos : pos + 1]
            if separator == "]":
                pos += 1
                break
            if separator != ",":
                raise FeedError(
                    f"is not valid JSON: Expecting ',' delimiter ({feed.where(pos)})",
                    index=index - 1,
                )
            pos = feed.skip_whitespace(pos + 1)
    pos = feed.skip_whitespace(pos)
    if pos < len(feed.text):
        raise FeedError(f"feed is not valid JSON: Extra data ({feed.where(pos)})")


def _feed_value(feed: _FeedText, pos: int, index: int) -> tuple[object, int]:
    """Decode the array element at `pos`; return it and the position after it."""
    while True:
        try:
            value, end = _FEED_DECODER.raw_decode(feed.text, pos)
        except json.JSONDecodeError as error:
            cut_off = error.msg.startswith("Unterminated string") or (
                len(feed.text) - error.pos < _FEED_CUT_HORIZON
            )
            if cut_off and not feed.eof:
                # Read on until the record fits; doubling what is held keeps a long record
                # linear to read, not quadratic.
                pos = feed.read_more(pos, at_least=max(len(feed.text) - pos, 1))
                continue
            raise FeedError(
                f"is not valid JSON: {error.msg} ({feed.where(error.pos)})", index=index
            ) from None
        except RecursionError:
            raise FeedError("is nested too deeply to be a training", index=index) from None
        if end == len(feed.text) and not feed.eof:
            # A number can go on in the next chunk ("12" of "1234"): decode it again whole.
            pos = feed.read_more(pos, at_least=max(len(feed.text) - pos, 1))
            continue
        return value, end


def _feed_not_an_array(feed: _FeedText, pos: int) -> None:
    """Raise the FeedError for a feed that does not start with "[": what it is instead."""
    text = feed.read_rest(pos)
    try:
        value, end = _FEED_DECODER.raw_decode(text, 0)
    except json.JSONDecodeError as error:
        raise FeedError(
            f"feed is not valid JSON: {error.msg} ({feed.where(error.pos)})"
        ) from None
    except RecursionError:
        raise FeedError("feed is nested too deeply to be a list of trainings") from None
    end = _JSON_WHITESPACE.match(text, end).end()
    if end < len(text):
        raise FeedError(f"feed is not valid JSON: Extra data ({feed.where(end)})")
    raise FeedError(f"feed must be a JSON array of trainings, got {_json_type(value)}")


def _feed_record(index: int, item: object) -> FeedRecord:
    if not isinstance(item, dict):
        raise FeedError(f"must be a JSON object, got {_json_type(item)}", index=index)
    unknown = sorted(set(item) - FEED_FIELDS)
    if unknown:
        raise FeedError(
            f"unknown field (allowed: {', '.join(sorted(FEED_FIELDS))})",
            index=index,
            field=unknown[0],
        )
    reference = _required_text(index, item, "reference")
    name = _required_text(index, item, "name")
    description = item.get("description")
    if description is None:
        description = ""
    elif not isinstance(description, str):
        raise FeedError(
            f"must be a string, got {_json_type(description)}", index=index, field="description"
        )
    _storable_text(index, "description", description)
    return FeedRecord(
        reference=reference,
        name=name,
        description=description,
        price=_price(index, item.get("price")),
    )


def _required_text(index: int, item: dict, field: str) -> str:
    if field not in item:
        raise FeedError("is required", index=index, field=field)
    value = item[field]
    if not isinstance(value, str):
        raise FeedError(f"must be a string, got {_json_type(value)}", index=index, field=field)
    value = value.strip()
    if not value:
        raise FeedError("must not be empty", index=index, field=field)
    if len(value) > _TEXT_LIMIT:
        raise FeedError(
            f"is {len(value)} characters long, at most {_TEXT_LIMIT} allowed",
            index=index,
            field=field,
        )
    _storable_text(index, field, value)
    return value


def _storable_text(index: int, field: str, value: str) -> None:
    found = NOT_STORABLE.search(value)
    if found is None:
        return
    character = found.group()
    what = (
        "a NUL character" if character == "\x00"
        else "a lone surrogate escape, which is not a character"
    )
    raise FeedError(
        f"contains {what} (U+{ord(character):04X}) at position {found.start() + 1}",
        index=index,
        field=field,
    )


def _price(index: int, value: object) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            price = Decimal(value.strip())
        except InvalidOperation:
            raise FeedError(
                f"must be a number, got {_shown(value)}", index=index, field="price"
            ) from None
    elif isinstance(value, Decimal):
        price = value
    elif isinstance(value, _NumberOutOfRange):
        raise FeedError(
            f"must have at most 8 digits before and 2 after the point, got {_shown(value)}",
            index=index,
            field="price",
        )
    else:
        raise FeedError(
            f"must be a number or null, got {_json_type(value)}", index=index, field="price"
        )
    if not price.is_finite() or price < 0:
        raise FeedError(f"must be zero or more, got {_shown(value)}", index=index, field="price")
    if price.as_tuple().exponent < -2 or price >= Decimal("100000000"):
        raise FeedError(
            f"must have at most 8 digits before and 2 after the point, got {_shown(value)}",
            index=index,
            field="price",
        )
    # Two places, as the database stores it, so that 12.5 and "12.50" compare equal; abs()
    # turns "-0" into the zero the database gives back.
    return abs(price.quantize(_CENT))


def _shown(value: object) -> str:
    """A feed value for a message: as the feed spelt it, and never a page long."""
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else f"{text[:20]}…({len(text)} characters)"


def _json_type(value: object) -> str:
    return {
        dict: "an object",
        list: "an array",
        str: "a string",
        bool: "a boolean",
        Decimal: "a number",
        _NumberOutOfRange: "a number",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def import_run(*, institute_id: int, records: Iterable[FeedRecord]) -> ImportResult:
    """Make the institute's trainings exactly the feed, in one transaction.

    Trainings are matched by reference: new ones are created, changed ones updated,
    missing ones deleted; a reference used twice in the feed is a FeedError naming the
    second record. Records one `import` change for the institute and one `destroy` per
    deleted training, and no per-training `update` (the partner re-reads the institute's
    trainings). Either all of it commits or nothing does, also when `records` raises part
    way (feed_read at a bad record); two imports of one institute run one after the other
    (the institute row is locked).

    `records` is consumed once, as it comes, a chunk at a time (1,000 records, fewer when
    they hold more than a million characters): each chunk is compared with the trainings
    of those references, read by their index, and written; the references read so far
    wait in a temporary table of the transaction, and so do the ids of the trainings to
    delete. Memory holds one chunk, whatever the number of records in the feed or of
    trainings in the database.
    """
    using = router.db_for_write(Training)
    with transaction.atomic(using=using):
        institute = Institute.objects.select_for_update().filter(pk=institute_id).first()
        if institute is None:
            raise ImportTargetMissing(f"institute {institute_id} does not exist")
        seen = _ReferencesSeen(connections[using])
        now = timezone.now()
        created = updated = unchanged = 0
        for chunk in _record_chunks(records, seen):
            existing = {
                reference: (training_id, (name, description, price))
                for training_id, reference, name, description, price in (
                    Training.objects.filter(institute=institute)
                    .filter(_references_in(using, [record.reference for record in chunk]))
                    .order_by()
                    .values_list("id", "reference", "name", "description", "price")
                )
            }
            to_create: list[Training] = []
            to_update: list[Training] = []
            for record in chunk:
                known = existing.get(record.reference)
                if known is None:
                    to_create.append(
                        Training(
                            institute=institute,
                            reference=record.reference,
                            name=record.name,
                            description=record.description,
                            price=record.price,
                            created_at=now,
                            updated_at=now,
                        )
                    )
                elif known[1] != (record.name, record.description, record.price):
                    to_update.append(
                        Training(
                            pk=known[0],
                            name=record.name,
                            description=record.description,
                            price=record.price,
                            updated_at=now,
                        )
                    )
                else:
                    unchanged += 1
            created += _trainings_create(to_create)
            updated += _trainings_update(using, to_update)
        deleted = _trainings_unnamed_delete(using, institute.pk)
        seen.drop()
        change_record(object_kind=INSTITUTE.name, object_id=institute.pk, action=Action.IMPORT)
    return ImportResult(created=created, updated=updated, unchanged=unchanged, deleted=deleted)


def _references_in(using: str, references: list[str]) -> Q | RawSQL:
    """`reference IN (…)`; on PostgreSQL one array parameter, which Django need not prepare
    value by value (a third of the import's time for a feed of unchanged trainings)."""
    if connections[using].vendor == "postgresql":
        column = connections[using].ops.quote_name(Training._meta.get_field("reference").column)
        return RawSQL(f"{column} = ANY(%s)", [references], output_field=BooleanField())
    return Q(reference__in=references)


# Records an import holds at once (and trainings per INSERT, UPDATE batch and DELETE), and
# the text they may hold: fewer records when they are long, so that a chunk stays a few MiB
# (a record longer than that is a chunk of its own).
_IMPORT_CHUNK = _BULK_BATCH
_IMPORT_CHUNK_CHARACTERS = 1024 * 1024
# The references an import has read, and then the trainings it deletes, for the length of
# its transaction.
_SEEN_TABLE = "catalog_import_seen"
_GONE_TABLE = "catalog_import_gone"


class _ReferencesSeen:
    """The references an import has read so far, with the first record that used each, in
    a temporary table of the connection: what refuses a duplicate reference and tells which
    trainings the feed did not name, without memory that grows with the feed.

    Created inside the import's transaction, so that a rollback removes it with the rest.
    """

    def __init__(self, connection):
        self._connection = connection
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {_SEEN_TABLE}")
            cursor.execute(
                f"CREATE TEMPORARY TABLE {_SEEN_TABLE} "
                "(reference TEXT PRIMARY KEY, record_index BIGINT NOT NULL)"
            )

    def add(self, chunk: list[FeedRecord], start: int) -> None:
        """Note the references of `chunk` (records `start`, `start + 1`, …). Raises
        FeedError at the first of them that uses a reference already used, in this chunk
        or before it."""
        first_use: dict[str, int] = {}
        duplicates: list[tuple[int, str, int]] = []
        for index, record in enumerate(chunk, start):
            first = first_use.setdefault(record.reference, index)
            if first != index:
                duplicates.append((index, record.reference, first))
        if first_use and self._insert(first_use) < len(first_use):
            for reference, first in self._earlier(list(first_use), start):
                duplicates.append((first_use[reference], reference, first))
        if duplicates:
            index, reference, first = min(duplicates)
            raise FeedError(
                f"duplicate reference {reference!r} (first used by record {first + 1})",
                index=index,
                field="reference",
            )

    def drop(self) -> None:
        with self._connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE {_SEEN_TABLE}")

    def _insert(self, first_use: dict[str, int]) -> int:
        """Insert the references not there yet; return how many were new."""
        with self._connection.cursor() as cursor:
            if self._connection.vendor == "postgresql":
                cursor.execute(
                    f"INSERT INTO {_SEEN_TABLE} (reference, record_index) "
                    "SELECT * FROM unnest(%s::text[], %s::bigint[]) "
                    "ON CONFLICT (reference) DO NOTHING",
                    [list(first_use), list(first_use.values())],
                )
            else:
                rows = ", ".join(["(%s, %s)"] * len(first_use))
                cursor.execute(
                    f"INSERT INTO {_SEEN_TABLE} (reference, record_index) VALUES {rows} "
                    "ON CONFLICT (reference) DO NOTHING",
                    [value for item in first_use.items() for value in item],
                )
            return cursor.rowcount

    def _earlier(self, references: list[str], start: int) -> list[tuple[str, int]]:
        """Those of `references` first used before record `start`, with that record."""
        placeholders = ", ".join(["%s"] * len(references))
        with self._connection.cursor() as cursor:
            cursor.execute(
                f"SELECT reference, record_index FROM {_SEEN_TABLE} "
                f"WHERE reference IN ({placeholders}) AND record_index < %s",
                [*references, start],
            )
            return cursor.fetchall()


def _record_chunks(
    records: Iterable[FeedRecord], seen: _ReferencesSeen
) -> Iterator[list[FeedRecord]]:
    """`records` a chunk at a time, each chunk's references checked and noted in `seen`.

    When `records` raises part way (a bad record), the records before it are checked
    first: a duplicate among them is the feed's first error.
    """
    iterator = iter(records)
    start = 0
    while True:
        chunk: list[FeedRecord] = []
        try:
            held = 0
            for record in iterator:
                chunk.append(record)
                held += len(record.reference) + len(record.name) + len(record.description)
                if len(chunk) == _IMPORT_CHUNK or held >= _IMPORT_CHUNK_CHARACTERS:
                    break
        except FeedError:
            seen.add(chunk, start)
            raise
        if not chunk:
            return
        seen.add(chunk, start)
        yield chunk
        start += len(chunk)


def _trainings_unnamed_delete(using: str, institute_id: int) -> int:
    """Delete the institute's trainings whose reference the feed did not name, recording a
    `destroy` for each; return how many. Their ids are found in one statement into a
    temporary table, then deleted from it a chunk at a time in id order, so that neither
    memory nor the work per chunk grows with the institute."""
    connection = connections[using]
    table = connection.ops.quote_name(Training._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {_GONE_TABLE}")
        cursor.execute(f"CREATE TEMPORARY TABLE {_GONE_TABLE} (id BIGINT PRIMARY KEY)")
        cursor.execute(
            f"INSERT INTO {_GONE_TABLE} (id) SELECT t.id FROM {table} t "
            "WHERE t.institute_id = %s AND NOT EXISTS "
            f"(SELECT 1 FROM {_SEEN_TABLE} s WHERE s.reference = t.reference)",
            [institute_id],
        )
    deleted = 0
    after = 0
    while True:
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT id FROM {_GONE_TABLE} WHERE id > %s ORDER BY id "
                f"LIMIT {_IMPORT_CHUNK}",
                [after],
            )
            ids = [training_id for (training_id,) in cursor.fetchall()]
        if not ids:
            break
        _delete_rows(using, Training._meta.db_table, ids)
        changes_record(
            entries=(
                ChangeEntry(TRAINING.name, training_id, Action.DESTROY, institute_id)
                for training_id in ids
            )
        )
        deleted += len(ids)
        after = ids[-1]
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE {_GONE_TABLE}")
    return deleted


def _trainings_create(batch: list[Training]) -> int:
    """Insert the batch and empty it; return how many were inserted."""
    count = len(batch)
    if count:
        Training.objects.bulk_create(batch, batch_size=_BULK_BATCH)
        batch.clear()
    return count


def _trainings_update(using: str, batch: list[Training]) -> int:
    """Write the batch's content fields and empty it; return how many were updated.

    One parameterised UPDATE per training, sent with executemany: QuerySet.bulk_update
    builds a CASE expression per field and row in Python, which took 2 ms per training —
    a minute for a feed of 40,000 changed ones.
    """
    count = len(batch)
    if not count:
        return 0
    connection = connections[using]
    quote = connection.ops.quote_name
    fields = [Training._meta.get_field(name) for name in _TRAINING_CONTENT_FIELDS]
    assignments = ", ".join(f"{quote(field.column)} = %s" for field in fields)
    sql = (
        f"UPDATE {quote(Training._meta.db_table)} SET {assignments} "
        f"WHERE {quote(Training._meta.pk.column)} = %s"
    )
    rows = [
        [field.get_db_prep_save(getattr(training, field.attname), connection) for field in fields]
        + [training.pk]
        for training in batch
    ]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # psycopg2's executemany makes one round trip per statement; execute_batch
            # sends them a page at a time (three times faster for 40,000 trainings).
            from psycopg2.extras import execute_batch

            execute_batch(cursor.cursor, sql, rows, page_size=len(rows))
        else:
            cursor.executemany(sql, rows)
    batch.clear()
    return count


def _delete_rows(using: str, table: str, ids: list[int]) -> None:
    # A plain DELETE: Django's collector would load every training and send a post_delete
    # per row (one change each); the import records its destroys in bulk instead.
    with connections[using].cursor() as cursor:
        for start in range(0, len(ids), _BULK_BATCH):
            chunk = ids[start : start + _BULK_BATCH]
            placeholders = ", ".join(["%s"] * len(chunk))
            cursor.execute(f"DELETE FROM {table} WHERE id IN ({placeholders})", chunk)


def trainings_bulk_update(*, queryset: QuerySet[Training], **values: object) -> int:
    """`queryset.update(**values)` that records an `update` for every training it touches.

    Use it instead of `QuerySet.update()` on trainings: that sends no signals and would
    leave partners unaware of the change. Returns the number of trainings updated.
    """
    using = router.db_for_write(Training)
    with transaction.atomic(using=using):
        rows = list(queryset.select_for_update().values_list("id", "institute_id"))
        ids = [training_id for training_id, _ in rows]
        for start in range(0, len(ids), _BULK_BATCH):
            Training.objects.filter(pk__in=ids[start : start + _BULK_BATCH]).update(
                updated_at=timezone.now(), **values
            )
        moved_to = _institute_set(values)
        changes_record(
            entries=(
                entry
                for training_id, institute_id in rows
                for entry in _training_saved_entries(training_id, institute_id, moved_to)
            )
        )
    return len(rows)


def _institute_set(values: dict) -> int | None:
    """The institute an update's values move trainings to, or None when they move none."""
    if "institute_id" in values:
        return values["institute_id"]
    if "institute" in values:
        institute = values["institute"]
        return institute if isinstance(institute, int) else institute.pk
    return None


def _training_saved_entries(
    training_id: int, institute_id: int, moved_to: int | None
) -> tuple[ChangeEntry, ...]:
    """The changes of a training saved: its update, preceded by a leave (a destroy in its
    old institute) when it moved, as catalog.signals records them."""
    if moved_to is None or moved_to == institute_id:
        return (ChangeEntry(TRAINING.name, training_id, Action.UPDATE, institute_id),)
    return (
        ChangeEntry(TRAINING.name, training_id, Action.DESTROY, institute_id),
        ChangeEntry(TRAINING.name, training_id, Action.UPDATE, moved_to),
    )


def trainings_bulk_create(*, trainings: Iterable[Training]) -> list[Training]:
    """`bulk_create()` for trainings that records an `update` for each one created."""
    using = router.db_for_write(Training)
    with transaction.atomic(using=using):
        created = Training.objects.bulk_create(list(trainings), batch_size=_BULK_BATCH)
        changes_record(
            entries=(
                ChangeEntry(TRAINING.name, training.pk, Action.UPDATE, training.institute_id)
                for training in created
            )
        )
    return created
