"""The scope rule: which stream rows a webhook with a scope reads, in SQL and in Python
(tests/deliveries/test_scope.py holds the two equal). Plain reads of the webhook's fields,
so that selectors and services both use it; deliveries.services.scope changes scopes.
"""

from dataclasses import dataclass

from django.db import connection
from django.db.models import Q

from changes.kinds import INSTITUTE, OBJECT_KINDS
from changes.models import Action
from webhooks.models import Webhook

# Kinds owned by no other kind (institutes): such an object is its own scope key.
_ROOT_KINDS = tuple(sorted(name for name, kind in OBJECT_KINDS.items() if kind.parent is None))


def institute_key(object_kind: str, object_id: int, parent_id: int | None) -> int:
    """The institute a change belongs to, as the stream stores it (StreamEntry.institute_id):
    an institute's own id, a training's institute (0 when the change named none)."""
    if object_kind in _ROOT_KINDS:
        return object_id
    return parent_id if parent_id is not None else 0


# The same rule in SQL, over a change row's columns; tests/deliveries/test_scope.py holds
# the two equal.
INSTITUTE_KEY_SQL = (
    f"CASE WHEN object_kind IN ({', '.join(repr(kind) for kind in _ROOT_KINDS)}) "
    f"THEN object_id ELSE COALESCE(parent_id, 0) END"
)


@dataclass(frozen=True)
class StreamFilter:
    """The part of the stream one webhook reads: the rows of these institutes (None: of
    every institute) and of these kinds of object."""

    institute_ids: tuple[int, ...] | None
    object_kinds: tuple[str, ...]

    def sql(self, column_prefix: str = "") -> tuple[str, list]:
        """` AND …` conditions on a stream row, and their parameters."""
        conditions, params = [], []
        if self.institute_ids is not None:
            if not self.institute_ids:
                conditions.append("1 = 0")
            elif connection.vendor == "postgresql":
                conditions.append(f"{column_prefix}institute_id = ANY(%s)")
                params.append(list(self.institute_ids))
            else:
                placeholders = ", ".join(["%s"] * len(self.institute_ids))
                conditions.append(f"{column_prefix}institute_id IN ({placeholders})")
                params.extend(self.institute_ids)
        kinds_sql, kinds_params = self._kinds_sql(column_prefix)
        if kinds_sql:
            conditions.append(kinds_sql)
            params.extend(kinds_params)
        return "".join(f" AND {condition}" for condition in conditions), params

    def _kinds_sql(self, prefix: str) -> tuple[str, list]:
        if set(self.object_kinds) >= set(OBJECT_KINDS):
            return "", []
        if INSTITUTE.name not in self.object_kinds:
            # An institute's import and destroy stand for its trainings too.
            return (f"NOT ({prefix}object_kind = %s AND {prefix}action = %s)",
                    [INSTITUTE.name, Action.UPDATE])
        return f"{prefix}object_kind IN ({', '.join(['%s'] * len(self.object_kinds))})", list(
            self.object_kinds
        )

    def q(self) -> Q:
        """The same conditions for a StreamEntry queryset."""
        condition = Q()
        if self.institute_ids is not None:
            condition &= Q(institute_id__in=self.institute_ids)
        if set(self.object_kinds) >= set(OBJECT_KINDS):
            return condition
        if INSTITUTE.name not in self.object_kinds:
            return condition & ~Q(object_kind=INSTITUTE.name, action=Action.UPDATE)
        return condition & Q(object_kind__in=self.object_kinds)

    def admits(self, object_kind: str, institute_id: int, action: str) -> bool:
        """The same rule in Python, for one stream row (tests hold the two equal)."""
        if self.institute_ids is not None and institute_id not in self.institute_ids:
            return False
        if object_kind in self.object_kinds:
            return True
        return object_kind == INSTITUTE.name and action != Action.UPDATE


def stream_filter(webhook: Webhook) -> StreamFilter | None:
    """What part of the stream `webhook` reads; None when it reads all of it."""
    if not webhook.is_scoped:
        return None
    institutes = webhook.scope_institutes
    return StreamFilter(
        institute_ids=None if institutes is None else tuple(sorted(set(institutes))),
        object_kinds=webhook.scope_object_kinds,
    )
