"""Scopes: which part of the change stream a webhook receives, and what a changed scope
sends so that the partner's mirror of its part stays exact.

Every stream row carries the institute it belongs to (`StreamEntry.institute_id`: an
institute's own id, a training's institute), and a training that moves is recorded as a
leave of its old institute (a destroy there) followed by its update in the new one, each
in its own row. A webhook whose scope holds some institutes reads only the rows of those
institutes, in SQL; so the leave reaches the webhooks that hold the old institute and
not the new one (a destroy), the update those that hold the new one, and a webhook that
holds both merges the two into the update.

Which kinds of object a webhook receives narrows it further: an institute's `update`
reaches only webhooks that receive institutes, a training's entries only those that
receive trainings; an institute's `import` and `destroy` reach both, since they also
stand for the institute's trainings.

The statements that read the stream by scope and move cursors are in deliveries.stream;
this module decides where the scoped cursors go and what a changed scope records.
"""

import logging
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta

from django.db import connection, transaction
from django.utils import timezone

from changes.kinds import INSTITUTE
from changes.models import Action
from changes.services import ChangeEntry, catalogue_ids, changes_record
from core.logfmt import logfmt
from deliveries.scoping import (  # noqa: F401 - the rule, re-exported with its services
    INSTITUTE_KEY_SQL,
    StreamFilter,
    institute_key,
)
from deliveries.services.errors import ResyncTooSoon
from deliveries.services.limits import partner_limit_take
from deliveries.stream import (
    cursors_move_forward,
    institutes_waiting,
    scoped_backlogs_read,
    scoped_cursors_read,
    stream_head_read,
)
from webhooks.models import SCOPE_OBJECT_KINDS, ScopeObjects, Webhook

logger = logging.getLogger("springhook.deliveries")


def scoped_cursors_advance() -> int:
    """Move the cursor of every scoped webhook past the stream rows it does not read, up to
    its first row that it does (or the head): so that rows of other institutes neither
    hold back the pruning of the stream nor get read again at each tick. A cursor only
    ever moves forward; one that a claim holds is skipped (the claim moves it). Returns
    how many moved."""
    scoped = scoped_cursors_read()
    with connection.cursor() as cursor:
        head = stream_head_read(cursor)
        lagging = [
            (webhook_id, position, StreamFilter(
                institute_ids=None if institutes is None else tuple(sorted(set(institutes))),
                object_kinds=SCOPE_OBJECT_KINDS[objects],
            ))
            for webhook_id, institutes, objects, position in scoped
            if position < head
        ]
        firsts = [
            first for _, _, first in scoped_backlogs_read(
                cursor, [(position, row_filter) for _, position, row_filter in lagging], head,
                limit=1,
            )
        ]
        targets = [
            (webhook_id, head if first is None else first - 1)
            for (webhook_id, position, _), first in zip(lagging, firsts, strict=True)
            if (head if first is None else first - 1) > position
        ]
        return cursors_move_forward(cursor, targets)


# --- Changing a scope -------------------------------------------------------------------------


class ScopeError(Exception):
    """A scope that cannot be set: unknown institutes or object kinds."""


class UnknownInstitutes(ScopeError):
    def __init__(self, institute_ids: list[int]):
        self.institute_ids = institute_ids
        super().__init__(
            "unknown institute" + ("s " if len(institute_ids) > 1 else " ")
            + ", ".join(str(institute_id) for institute_id in institute_ids)
        )


class ScopeTooSoon(ResyncTooSoon, ScopeError):
    """A widening asked for sooner than the resync interval after the last resync or
    replay (it sends imports, as they do)."""


@dataclass(frozen=True)
class ScopeChanged:
    """What a scope change queued for the partner: imports of the institutes that entered
    (or of the whole new scope when the kinds changed) and destroys of those that left."""

    imported: int
    destroyed: int


def webhook_scope_change(
    *,
    webhook_id: int,
    institute_ids: Collection[int] | None,
    objects: str,
    min_interval: timedelta | None = None,
    api_key_id: int | None = None,
) -> ScopeChanged:
    """Set the webhook's scope and queue, for it alone and through the ordered channel of
    a resync, what keeps the partner's mirror exact: an `import` of each institute that
    entered the scope and a `destroy` of each one that left. When the kinds of object
    change, every institute of the new scope is imported instead (the partner re-reads
    what its scope now holds of it). They coalesce with what already waits.

    `institute_ids` must all exist (UnknownInstitutes names the others) unless they are
    already in the scope (an institute deleted since stays until it is taken out). With
    `min_interval` (a partner's request, by `api_key_id`), a change that imports anything
    is limited as a resync is, per webhook and per key, and raises ScopeTooSoon; staff are
    not limited, and start no partner's interval.
    """
    if objects not in SCOPE_OBJECT_KINDS:
        raise ScopeError(f"unknown objects {objects!r}; expected one of {ScopeObjects.values}")
    wanted = None if institute_ids is None else sorted(set(institute_ids))
    with transaction.atomic():
        webhook = Webhook.objects.select_for_update(no_key=True).filter(pk=webhook_id).first()
        if webhook is None:
            raise ScopeError(f"webhook {webhook_id} does not exist")
        had = None if webhook.scope_institutes is None else set(webhook.scope_institutes)
        if wanted is not None:
            new = [institute for institute in wanted if had is None or institute not in had]
            existing = set(catalogue_ids(institute_ids=new)) if new else set()
            unknown = [institute for institute in new if institute not in existing]
            if unknown:
                raise UnknownInstitutes(unknown)
        kinds_changed = objects != webhook.scope_objects
        now = timezone.now()
        imports = _imports(had, wanted, kinds_changed)
        if imports is not None and min_interval is not None:
            partner_limit_take(
                webhook=webhook, api_key_id=api_key_id, field="last_resync_at",
                min_interval=min_interval, now=now,
                what="a resync, replay or widened scope", too_soon=ScopeTooSoon,
            )
        webhook.scope_institutes = wanted
        webhook.scope_objects = objects
        webhook.save(update_fields=["scope_institutes", "scope_objects", "updated_at"])
        destroyed = changes_record(
            entries=(
                ChangeEntry(INSTITUTE.name, institute_id, Action.DESTROY)
                for institute_id in _left(webhook.pk, had, wanted)
            ),
            webhook_id=webhook.pk,
        )
        imported = 0
        if imports is not None:
            imported = changes_record(
                entries=(ChangeEntry(INSTITUTE.name, institute_id, Action.IMPORT)
                         for institute_id in imports),
                webhook_id=webhook.pk,
            )
    logger.info(logfmt("webhook_scope_changed", webhook=webhook_id, imported=imported,
                       destroyed=destroyed, objects=objects,
                       institutes="all" if wanted is None else len(wanted)))
    return ScopeChanged(imported=imported, destroyed=destroyed)


def _imports(
    had: set[int] | None, wanted: list[int] | None, kinds_changed: bool
) -> Iterable[int] | None:
    """The institutes to import (existing ones, streamed), or None when none are."""
    if kinds_changed:
        return catalogue_ids(institute_ids=wanted)
    if wanted is None:
        if had is None:
            return None
        return (institute for institute in catalogue_ids() if institute not in had)
    entered = [institute for institute in wanted if had is not None and institute not in had]
    return catalogue_ids(institute_ids=entered) if entered else None


def _left(webhook_id: int, had: set[int] | None, wanted: list[int] | None) -> Iterator[int]:
    if wanted is None:
        return iter(())
    keep = set(wanted)
    if had is None:
        # From the whole catalogue: every institute the partner may hold leaves, and that
        # is not only those that exist. One deleted whose destroy has not reached the
        # partner yet (in the stream after its cursor, or not collected yet) is held
        # still, and the new scope would no longer read that destroy. The catalogue is
        # read first: a delete committed after that read is then in the second.
        existing = set(catalogue_ids())
        return iter(sorted((existing | institutes_waiting(webhook_id=webhook_id)) - keep))
    return iter(sorted(had - keep))
