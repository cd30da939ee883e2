"""The digest of what a webhook's partner should hold, per object kind, by one rule a
partner computes over its own copy (docs/partners.md gives it in Python):

    hash(object)  = the first 16 hex digits of md5("<id>|<updated_at>") as an integer,
                    with updated_at exactly as the API renders it (apikeys.api.timestamp:
                    UTC, microseconds, "Z": 2026-11-29T19:49:52.123456Z)
    digest(set)   = the XOR of the hashes of its objects, as 16 lowercase hex digits
                    ("0000000000000000" for no object)

XOR does not depend on order, so the database combines the rows as it reads them. On
PostgreSQL each row keeps its hash in a `digest_hash` column that a trigger sets when the
row is written (migration catalog 0005, which spells the rule in SQL), so a digest is one
bit_xor over an index; on other databases the rows are read and hashed here with
`object_hash`, the partner's own function. A test holds the two spellings equal.

A range digest splits its id range into RANGE_PARTS sub-ranges of equal width with their
counts and digests, so a partner walks down only where its copy differs (a hash-range
walk); a range of at most RANGE_OBJECTS_MAX objects lists them instead, which ends a walk.
"""

import hashlib
from dataclasses import dataclass

from django.db import connections
from django.db.models import Aggregate, BigIntegerField, Count, F, Max, Min, QuerySet
from django.db.models.expressions import RawSQL

from apikeys.api import timestamp

DIGEST_RULE = "md5-xor-64"
RANGE_PARTS = 32
RANGE_OBJECTS_MAX = 1000
ID_MAX = 2**63 - 1
EMPTY_DIGEST = f"{0:016x}"

def object_hash(object_id: int, updated_at: str) -> int:
    """The hash of one object, from its id and its updated_at as the API renders it."""
    text = f"{object_id}|{updated_at}".encode()
    return int(hashlib.md5(text, usedforsecurity=False).hexdigest()[:16], 16)


def objects_hash(objects) -> int:
    """The combined hash of (id, updated_at as rendered) pairs."""
    value = 0
    for object_id, updated_at in objects:
        value ^= object_hash(object_id, updated_at)
    return value


def digest_text(value: int) -> str:
    """The combined hash as partners compare it: 16 lowercase hex digits, unsigned."""
    return f"{value & 0xFFFF_FFFF_FFFF_FFFF:016x}"


def _stored_hash(queryset: QuerySet) -> RawSQL:
    """The `digest_hash` column PostgreSQL keeps (migration catalog 0005: a trigger sets it,
    an index on (id) includes it), qualified with the queryset's table."""
    table = connections[queryset.db].ops.quote_name(queryset.model._meta.db_table)
    return RawSQL(f"{table}.digest_hash", (), output_field=BigIntegerField())


class _BitXor(Aggregate):
    function = "BIT_XOR"
    output_field = BigIntegerField()


@dataclass(frozen=True)
class Digest:
    count: int
    digest: str


@dataclass(frozen=True)
class KindDigest:
    count: int
    digest: str
    min_id: int | None
    max_id: int | None


@dataclass(frozen=True)
class RangePart:
    from_id: int
    to_id: int
    count: int
    digest: str


def _in_sql(queryset: QuerySet) -> bool:
    return connections[queryset.db].vendor == "postgresql"


def _hash_rows(queryset: QuerySet) -> tuple[int, int]:
    """(count, combined hash) of the queryset's objects, hashed here."""
    count = value = 0
    for object_id, updated_at in queryset.order_by().values_list("id", "updated_at").iterator(
        chunk_size=10_000
    ):
        count += 1
        value ^= object_hash(object_id, timestamp(updated_at))
    return count, value


def kind_digest(*, queryset: QuerySet) -> KindDigest:
    """Count, digest and id bounds of every object of `queryset` (one query on
    PostgreSQL)."""
    bounds = {"min_id": Min("id"), "max_id": Max("id")}
    if _in_sql(queryset):
        row = queryset.order_by().aggregate(
            count=Count("id"), value=_BitXor(_stored_hash(queryset)), **bounds
        )
        return KindDigest(row["count"], digest_text(row["value"] or 0), row["min_id"],
                          row["max_id"])
    row = queryset.order_by().aggregate(**bounds)
    count, value = _hash_rows(queryset)
    return KindDigest(count, digest_text(value), row["min_id"], row["max_id"])


def range_width(from_id: int, to_id: int) -> int:
    """The width of each of the RANGE_PARTS sub-ranges of [from_id, to_id] (the last may
    be narrower): ceil(size / RANGE_PARTS)."""
    return -(-(to_id - from_id + 1) // RANGE_PARTS)


def range_parts(*, queryset: QuerySet, from_id: int, to_id: int) -> list[RangePart]:
    """[from_id, to_id] cut into RANGE_PARTS sub-ranges of equal width (fewer when the
    range is narrower), each with its count and digest, empty ones included (one query on
    PostgreSQL)."""
    width = range_width(from_id, to_id)
    rows = queryset.order_by().filter(id__gte=from_id, id__lte=to_id)
    totals: dict[int, tuple[int, int]] = {}
    if _in_sql(queryset):
        grouped = (
            rows.annotate(part=(F("id") - from_id) / width)
            .values("part")
            .annotate(count=Count("id"), value=_BitXor(_stored_hash(queryset)))
        )
        totals = {row["part"]: (row["count"], row["value"]) for row in grouped}
    else:
        for object_id, updated_at in rows.values_list("id", "updated_at").iterator(
            chunk_size=10_000
        ):
            part = (object_id - from_id) // width
            count, value = totals.get(part, (0, 0))
            totals[part] = (count + 1, value ^ object_hash(object_id, timestamp(updated_at)))
    parts = []
    start = from_id
    index = 0
    while start <= to_id:
        end = min(to_id, start + width - 1)
        count, value = totals.get(index, (0, 0))
        parts.append(RangePart(start, end, count, digest_text(value)))
        start, index = end + 1, index + 1
    return parts


def range_objects(*, queryset: QuerySet, from_id: int, to_id: int) -> list[tuple[int, str]]:
    """(id, updated_at as rendered) of every object in [from_id, to_id], by id."""
    return [
        (object_id, timestamp(updated_at))
        for object_id, updated_at in queryset.filter(id__gte=from_id, id__lte=to_id)
        .order_by("id")
        .values_list("id", "updated_at")
    ]


def combine(parts: list[RangePart]) -> Digest:
    """The digest of a range from the digests of its parts."""
    value = 0
    for part in parts:
        value ^= int(part.digest, 16)
    return Digest(sum(part.count for part in parts), digest_text(value))
