"""The coalescing rule, declared once: what a partner is told of an object after any
history of its changes.

Per (object kind, id), over the changes not delivered yet, the later action wins, except
for the pairs in ABSORBED: an institute's `import` absorbs a later `update` (the partner
re-reads the whole institute anyway). So a history's action is
`actions_fold(actions)` = the actions merged pairwise in order (action_merge), which makes
a `destroy` that is the latest change win over everything, and an `update` after a
`destroy` an update again (the object was re-created), whatever waited before.

Everything else is an implementation of this rule and is held to it:

- action_merge merges a batch's stream row and pending entry of one object
  (deliveries.services.batch), and changes_fold folds changes in Python (the SQLite
  collector, deliveries.services.collect);
- action_merge_sql is this table as SQL: the collectors' upsert into a row already
  waiting (deliveries.stream._merge_set) is generated from it;
- the PostgreSQL collector folds a chunk of changes set-based (from the ids of each
  object's last change, last destroy and last import; changes_fold_upsert in
  deliveries.stream): tests/deliveries/test_coalescing.py holds it, the Python collector
  and the batch equal to actions_fold over every history of up to four changes,
  collected in every split into runs.

A batch also folds training updates into their institute's import when both are in it
(deliveries.services.batch): a rule about what one batch carries, not about one object.
"""

from collections.abc import Iterable
from functools import reduce

from changes.models import Action

# (earlier, later) -> the action after both, where it is not simply `later`.
ABSORBED: dict[tuple[str, str], str] = {
    (Action.IMPORT, Action.UPDATE): Action.IMPORT,
}


def action_merge(earlier: str, later: str) -> str:
    """The action of one object after `earlier` and then `later`."""
    return ABSORBED.get((earlier, later), later)


def actions_fold(actions: Iterable[str]) -> str:
    """The action of one object after these actions, in order: the reference."""
    return reduce(action_merge, actions)


def action_merge_sql(earlier: str, later: str) -> str:
    """action_merge as a SQL expression over two column expressions."""
    cases = " ".join(
        f"WHEN {earlier} = '{first}' AND {later} = '{second}' THEN '{result}'"
        for (first, second), result in ABSORBED.items()
    )
    return f"CASE {cases} ELSE {later} END"
