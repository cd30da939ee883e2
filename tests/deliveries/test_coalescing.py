"""The coalescing rule is declared once (deliveries.coalescing), and every implementation
gives what it says: for every history of up to four changes of one object, collected in
every split into collector runs, the row waiting for a webhook and the batch taken from it
carry actions_fold of the history. On PostgreSQL that is the set-based fold in SQL, on
SQLite the Python fold (changes_fold); both merge into a waiting row with the SQL that
action_merge_sql generates from the rule's table."""

from itertools import combinations, product

import pytest
from django.db import connection, transaction
from django.utils import timezone

from changes.models import Action
from changes.services import ChangeEntry, changes_record
from deliveries.coalescing import ABSORBED, action_merge, action_merge_sql, actions_fold
from deliveries.services import batch_take
from tests.deliveries.helpers import collect, waiting
from webhooks.models import Webhook

ACTIONS = [Action.UPDATE, Action.DESTROY, Action.IMPORT]
LONGEST = 4


def histories():
    for length in range(1, LONGEST + 1):
        yield from product(ACTIONS, repeat=length)


def splits(history):
    """Every way of cutting the history into consecutive collector runs."""
    for cuts in range(len(history)):
        for points in combinations(range(1, len(history)), cuts):
            bounds = [0, *points, len(history)]
            yield [history[start:end] for start, end in zip(bounds, bounds[1:], strict=False)]


def test_the_rule():
    # The latest change wins; an import absorbs a later update; a destroy in between
    # ends that (the object was destroyed, then changed again).
    assert ABSORBED == {(Action.IMPORT, Action.UPDATE): Action.IMPORT}
    assert action_merge(Action.UPDATE, Action.DESTROY) == Action.DESTROY
    assert action_merge(Action.DESTROY, Action.UPDATE) == Action.UPDATE
    assert actions_fold([Action.IMPORT, Action.UPDATE, Action.UPDATE]) == Action.IMPORT
    assert actions_fold([Action.IMPORT, Action.DESTROY, Action.UPDATE]) == Action.UPDATE
    assert actions_fold([Action.UPDATE, Action.IMPORT, Action.DESTROY]) == Action.DESTROY


def test_the_generated_sql_is_the_rule_on_every_pair(db):
    with connection.cursor() as cursor:
        for earlier, later in product(ACTIONS, repeat=2):
            # The actions are the choices' constants: quoted as literals they stand for columns.
            cursor.execute(f"SELECT {action_merge_sql(repr(str(earlier)), repr(str(later)))}")
            assert cursor.fetchone()[0] == action_merge(earlier, later), (earlier, later)


@pytest.mark.parametrize("targeted", [False, True], ids=["the stream", "one webhook's own"])
def test_every_short_history_in_every_split_into_runs_folds_as_the_rule_says(
    db, fast_delivery, settings, targeted
):
    settings.WEBHOOK_BATCH_SIZE = 10_000  # every object in one batch
    webhook = Webhook.objects.create(name="Partner", url="http://127.0.0.1:9/hook")
    # One institute per (history, split): 777 of them, collected together in four rounds.
    scenarios = [(history, runs) for history in histories() for runs in splits(history)]
    for round_number in range(LONGEST):
        changes_record(
            entries=[
                ChangeEntry("institute", institute_id, action)
                for institute_id, (_, runs) in enumerate(scenarios, start=1)
                if round_number < len(runs)
                for action in runs[round_number]
            ],
            webhook_id=webhook.pk if targeted else None,
        )
        collect()
    expected = {
        ("institute", institute_id): actions_fold(history)
        for institute_id, (history, _) in enumerate(scenarios, start=1)
    }
    assert {key: action for key, (action, _) in waiting(webhook).items()} == expected
    with transaction.atomic():
        batch = batch_take(webhook=webhook, now=timezone.now(), force=True)
    assert {(entry.object_kind, entry.object_id): entry.action for entry in batch} == expected
