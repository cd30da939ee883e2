"""Writes to the catalogue that go beyond a single model save: the import and bulk edits.

Single saves and deletes record their change through signals (catalog.signals). The
functions here use bulk SQL, which sends no signals, so each records its changes itself
through changes.services in the same transaction.
"""

import json
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.db import connections, router, transaction
from django.db.models import QuerySet
from django.utils import timezone

from catalog.models import Institute, Training
from changes.kinds import INSTITUTE, TRAINING
from changes.models import Action
from changes.services import ChangeEntry, change_record, changes_record

FEED_FIELDS = {"reference", "name", "description", "price"}
_TEXT_LIMIT = 255
_BULK_BATCH = 1000


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
    """Parse and validate a whole feed before anything is written.

    A feed is a JSON array of objects with a non-empty `reference` and `name`, and optional
    `description` (string) and `price` (a non-negative number with at most two decimals,
    or null). Unknown fields are refused rather than ignored, so that a misspelt field
    never silently drops data. Raises FeedError naming the record and the field.
    """
    max_bytes = settings.IMPORT_MAX_FEED_BYTES
    if len(raw) > max_bytes:
        raise FeedError(f"feed is {len(raw)} bytes, more than the limit of {max_bytes} bytes")
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise FeedError(
                f"feed is not valid UTF-8 (byte {error.start}: {error.reason})"
            ) from None
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as error:
        raise FeedError(
            f"feed is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}"
        ) from None
    except RecursionError:
        raise FeedError("feed is nested too deeply to be a list of trainings") from None
    if not isinstance(data, list):
        raise FeedError(f"feed must be a JSON array of trainings, got {_json_type(data)}")

    records: list[FeedRecord] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(data):
        record = _feed_record(index, item)
        if record.reference in seen:
            raise FeedError(
                f"duplicate reference {record.reference!r} (first used by record "
                f"{seen[record.reference] + 1})",
                index=index,
                field="reference",
            )
        seen[record.reference] = index
        records.append(record)
    return records


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
    return value


def _price(index: int, value: object) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise FeedError(
            f"must be a number or null, got {_json_type(value)}", index=index, field="price"
        )
    try:
        price = Decimal(str(value).strip())
    except InvalidOperation:
        raise FeedError(f"must be a number, got {value!r}", index=index, field="price") from None
    if not price.is_finite() or price < 0:
        raise FeedError(f"must be zero or more, got {value!r}", index=index, field="price")
    if price.as_tuple().exponent < -2 or price >= Decimal("100000000"):
        raise FeedError(
            f"must have at most 8 digits before and 2 after the point, got {value!r}",
            index=index,
            field="price",
        )
    return price


def _json_type(value: object) -> str:
    return {
        dict: "an object",
        list: "an array",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def import_run(*, institute_id: int, records: list[FeedRecord]) -> ImportResult:
    """Make the institute's trainings exactly the feed, in one transaction.

    Trainings are matched by reference: new ones are created, changed ones updated,
    missing ones deleted. Records one `import` change for the institute and one `destroy`
    per deleted training, and no per-training `update` (the partner re-reads the
    institute's trainings). Either all of it commits or nothing does; two imports of one
    institute run one after the other (the institute row is locked).
    """
    using = router.db_for_write(Training)
    with transaction.atomic(using=using):
        institute = Institute.objects.select_for_update().filter(pk=institute_id).first()
        if institute is None:
            raise ImportTargetMissing(f"institute {institute_id} does not exist")
        existing = {
            training.reference: training
            for training in Training.objects.filter(institute=institute).only(
                "id", "reference", "name", "description", "price"
            )
        }
        now = timezone.now()
        to_create: list[Training] = []
        to_update: list[Training] = []
        unchanged = 0
        for record in records:
            training = existing.pop(record.reference, None)
            if training is None:
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
            elif (training.name, training.description, training.price) != (
                record.name,
                record.description,
                record.price,
            ):
                training.name = record.name
                training.description = record.description
                training.price = record.price
                training.updated_at = now
                to_update.append(training)
            else:
                unchanged += 1
        removed_ids = [training.pk for training in existing.values()]

        Training.objects.bulk_create(to_create, batch_size=_BULK_BATCH)
        Training.objects.bulk_update(
            to_update, ["name", "description", "price", "updated_at"], batch_size=_BULK_BATCH
        )
        _delete_rows(using, Training._meta.db_table, removed_ids)
        changes_record(
            entries=(
                ChangeEntry(TRAINING.name, training_id, Action.DESTROY, institute.pk)
                for training_id in removed_ids
            )
        )
        change_record(object_kind=INSTITUTE.name, object_id=institute.pk, action=Action.IMPORT)
    return ImportResult(
        created=len(to_create),
        updated=len(to_update),
        unchanged=unchanged,
        deleted=len(removed_ids),
    )


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
        changes_record(
            entries=(
                ChangeEntry(TRAINING.name, training_id, Action.UPDATE, institute_id)
                for training_id, institute_id in rows
            )
        )
    return len(rows)


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
