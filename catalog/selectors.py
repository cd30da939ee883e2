"""Reads of the catalogue: for the Trainings API (each in a fixed number of queries), and
the whole catalogue as change entries for a resync."""

from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Q, QuerySet

from catalog.models import Institute, Training
from changes.kinds import INSTITUTE, TRAINING
from changes.models import Action
from changes.services import ChangeEntry


class PageOutOfRange(LookupError):
    """A page number past the last page of a listing."""

    def __init__(self, page: int, last_page: int):
        self.page = page
        self.last_page = last_page
        super().__init__(f"page {page} does not exist; the last page is {last_page}")


@dataclass(frozen=True)
class TrainingsPage:
    """One page of an institute's trainings, in id order."""

    count: int
    page: int
    page_size: int
    trainings: list[Training]

    @property
    def has_next(self) -> bool:
        return self.page * self.page_size < self.count

    @property
    def has_previous(self) -> bool:
        return self.page > 1


def training_get(*, training_id: int) -> Training | None:
    """The training with this id, or None (one query)."""
    return Training.objects.filter(pk=training_id).first()


def institute_get(*, institute_id: int) -> Institute | None:
    """The institute with this id, or None (one query)."""
    return Institute.objects.filter(pk=institute_id).first()


def institute_trainings_page(
    *, institute_id: int, page: int, page_size: int
) -> TrainingsPage | None:
    """Page `page` (from 1) of the institute's trainings, `page_size` a page, by id.

    None if the institute does not exist. Page 1 always exists, empty for an institute
    without trainings; a later page past the end raises PageOutOfRange. Two queries: the
    institute with its training count, then the page (OFFSET over the (institute, id)
    index). The two are separate reads, so a training added in between can shift a page.
    """
    count = (
        Institute.objects.filter(pk=institute_id)
        .annotate(training_count=Count("trainings"))
        .order_by()
        .values_list("training_count", flat=True)
        .first()
    )
    if count is None:
        return None
    last_page = max(1, -(-count // page_size))
    if page > last_page:
        raise PageOutOfRange(page, last_page)
    offset = (page - 1) * page_size
    trainings = list(
        Training.objects.filter(institute_id=institute_id).order_by("id")[
            offset : offset + page_size
        ]
    )
    return TrainingsPage(count=count, page=page, page_size=page_size, trainings=trainings)


@dataclass(frozen=True)
class Position:
    """Where a list page starts or ends, in the lists' order (updated_at, id)."""

    updated_at: datetime
    id: int


@dataclass(frozen=True)
class ListPage:
    """One page of a list in (updated_at, id) order, with whether pages exist around it."""

    count: int
    objects: list
    has_next: bool
    has_previous: bool


def _listing(
    queryset: QuerySet,
    *,
    updated_since: datetime | None,
    after: Position | None,
    before: Position | None,
    page_size: int,
) -> ListPage:
    """A page of `queryset` in (updated_at, id) order: the first `page_size` objects after
    `after`, or the last ones before `before`, or the first page. Three queries over the
    (updated_at, id) index: the count, the page, and whether anything lies beyond it on
    the side the client came from.

    Positions are values, not offsets: an object changed while a client pages moves to
    the end (it is seen again there), and none shifts past the client unseen.
    """
    if updated_since is not None:
        queryset = queryset.filter(updated_at__gte=updated_since)
    count = queryset.order_by().count()
    if before is not None:
        rows = list(_before(queryset, before).order_by("-updated_at", "-id")[: page_size + 1])
        has_previous = len(rows) > page_size
        objects = rows[:page_size][::-1]
        # What follows the page: at least the object `before` named, unless it is gone.
        has_next = _after(queryset, _position(objects[-1]) if objects else before).exists()
        return ListPage(count, objects, has_next, has_previous)
    ordered = queryset if after is None else _after(queryset, after)
    rows = list(ordered.order_by("updated_at", "id")[: page_size + 1])
    objects = rows[:page_size]
    has_previous = after is not None and _before(
        queryset, _position(objects[0]) if objects else after
    ).exists()
    return ListPage(count, objects, len(rows) > page_size, has_previous)


def _position(obj) -> Position:
    return Position(obj.updated_at, obj.pk)


# (updated_at, id) > position, spelt so that the index serves it: the planner turns the
# plain range on updated_at into the index scan's start, and only the rows that share the
# position's updated_at go through the OR (without the range it filters from the start).
def _after(queryset: QuerySet, position: Position) -> QuerySet:
    return queryset.filter(updated_at__gte=position.updated_at).filter(
        Q(updated_at__gt=position.updated_at)
        | Q(updated_at=position.updated_at, id__gt=position.id)
    )


def _before(queryset: QuerySet, position: Position) -> QuerySet:
    return queryset.filter(updated_at__lte=position.updated_at).filter(
        Q(updated_at__lt=position.updated_at)
        | Q(updated_at=position.updated_at, id__lt=position.id)
    )


def institutes_page(
    *, updated_since: datetime | None, after: Position | None, before: Position | None,
    page_size: int, institute_ids: Collection[int] | None = None,
) -> ListPage:
    """A page of all institutes (or of those with `institute_ids`: a scope's) in
    (updated_at, id) order (see _listing)."""
    return _listing(
        scope_institutes(institute_ids=institute_ids), updated_since=updated_since,
        after=after, before=before, page_size=page_size,
    )


def trainings_page(
    *, updated_since: datetime | None, after: Position | None, before: Position | None,
    page_size: int, institute_ids: Collection[int] | None = None,
) -> ListPage:
    """A page of all trainings (or of those of the institutes `institute_ids`: a scope's)
    in (updated_at, id) order (see _listing)."""
    return _listing(
        scope_trainings(institute_ids=institute_ids), updated_since=updated_since,
        after=after, before=before, page_size=page_size,
    )


_CATALOGUE_CHUNK = 10_000


def scope_institutes(*, institute_ids: Collection[int] | None) -> QuerySet[Institute]:
    """The institutes a scope holds: those with these ids, or all of them for None (the
    whole catalogue). The one home of "what a webhook's scope holds" for the catalogue:
    the API's filters, the resync and whoever sums up a partner's part read it here."""
    institutes = Institute.objects.all()
    if institute_ids is not None:
        institutes = institutes.filter(pk__in=list(institute_ids))
    return institutes


def scope_trainings(*, institute_ids: Collection[int] | None) -> QuerySet[Training]:
    """The trainings a scope holds: those of its institutes (see scope_institutes)."""
    trainings = Training.objects.all()
    if institute_ids is not None:
        trainings = trainings.filter(institute_id__in=list(institute_ids))
    return trainings


def scope_contents(
    *, institute_ids: Collection[int] | None, object_kinds: Collection[str]
) -> tuple[QuerySet[Institute], QuerySet[Training]]:
    """What a partner's exact mirror of a scope holds: (its institutes, its trainings), each
    empty when the scope's object kinds leave it out."""
    institutes = scope_institutes(institute_ids=institute_ids)
    trainings = scope_trainings(institute_ids=institute_ids)
    if INSTITUTE.name not in object_kinds:
        institutes = institutes.none()
    if TRAINING.name not in object_kinds:
        trainings = trainings.none()
    return institutes, trainings


def catalogue_entries(institute_ids: Collection[int] | None = None) -> Iterator[ChangeEntry]:
    """The whole catalogue, or the part a scope holds (`institute_ids`), as change entries:
    an `import` of each of its institutes that exists, by id.

    What a resync sends (changes.services.catalogue_record; registered in CatalogConfig):
    each `import` makes the partner read the institute and all its trainings. The ids are
    read 10,000 at a time from the primary key, never all at once.
    """
    last_id = 0
    institutes = scope_institutes(institute_ids=institute_ids)
    while True:
        ids = list(
            institutes.filter(pk__gt=last_id)
            .order_by("id")
            .values_list("id", flat=True)[:_CATALOGUE_CHUNK]
        )
        if not ids:
            return
        for institute_id in ids:
            yield ChangeEntry(INSTITUTE.name, institute_id, Action.IMPORT)
        last_id = ids[-1]


# --- What a webhook's partner should hold ---------------------------------------------------
# One queryset per object kind: the objects a webhook's partner mirrors. The digest
# (catalog.digest) reads only these, so restricting a webhook to a part of the catalogue
# is done here, once per kind, and the digest follows.


def webhook_objects(webhook) -> dict[str, QuerySet]:
    """Per kind of object webhook `webhook` sends, what an exact mirror of its scope holds
    (the digest's sets). `webhook` is read for its scope only (`scope_institutes`,
    `scope_object_kinds`), so that this app needs no webhook model."""
    institutes, trainings = scope_contents(
        institute_ids=webhook.scope_institutes, object_kinds=webhook.scope_object_kinds
    )
    sets = {INSTITUTE.name: institutes, TRAINING.name: trainings}
    return {kind: sets[kind] for kind in sets if kind in webhook.scope_object_kinds}
