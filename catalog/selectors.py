"""Reads of the catalogue for the Trainings API: each answers in a fixed number of queries."""

from dataclasses import dataclass

from django.db.models import Count

from catalog.models import Institute, Training


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
