"""Collecting folds any history of changes exactly as the coalescing rules say.

PostgreSQL folds in SQL and SQLite in Python (deliveries.services.collect): both must give the
entries that the coalescing rule (deliveries.coalescing.actions_fold) gives, for random
histories of trainings and institutes split into random collector runs, including a destroy
that resets an import waiting from an earlier run.
"""

import random

import pytest

from changes.models import Change
from changes.services import ChangeEntry, changes_record
from deliveries.coalescing import actions_fold
from tests.deliveries.helpers import collect, pass_everything, record, waiting
from webhooks.models import Webhook


def expected_entries(runs):
    """The model: per object, the coalescing rule over its whole history (whatever the
    runs), and the parent its latest change named."""
    actions, parents = {}, {}
    for action, kind, object_id, parent_id in (change for run in runs for change in run):
        key = (kind, object_id)
        actions.setdefault(key, []).append(action)
        if parent_id is not None:
            parents[key] = parent_id
        else:
            parents.setdefault(key, None)
    return {key: (actions_fold(history), parents[key]) for key, history in actions.items()}


def random_change(rng):
    if rng.random() < 0.3:
        return (rng.choice(["update", "import", "import", "destroy"]), "institute",
                rng.randint(1, 3), None)
    return (rng.choice(["update", "update", "destroy"]), "training", rng.randint(1, 6),
            rng.choice([1, 2, None]))


# "outer transaction": the test's transaction wraps the collector (it compares counts);
# "own transaction": on PostgreSQL the collector reads and deletes under one REPEATABLE
# READ snapshot, with no copy of the changes. The same rules must hold in both.
@pytest.mark.parametrize(
    ("database", "seed"),
    [("db", seed) for seed in range(12)] + [("transactional_db", seed) for seed in range(3)],
    ids=lambda value: {"db": "outer transaction", "transactional_db": "own transaction"}.get(
        value, value
    ),
)
def test_collecting_random_histories_matches_the_model(request, fast_delivery, database, seed):
    request.getfixturevalue(database)
    rng = random.Random(seed)
    webhook = Webhook.objects.create(name="Partner", url="http://127.0.0.1:9/hook")
    runs = [[random_change(rng) for _ in range(rng.randint(1, 12))] for _ in range(4)]
    for run in runs:
        for change in run:
            record(*change)
        collect()

    assert waiting(webhook) == expected_entries(runs)


def test_a_destroy_then_update_in_one_run_resets_an_import_waiting_from_before(
    db, fast_delivery
):
    webhook = Webhook.objects.create(name="Partner", url="http://127.0.0.1:9/hook")
    record("import", "institute", 10)
    collect()
    record("destroy", "institute", 10)
    record("update", "institute", 10)
    collect()
    assert waiting(webhook) == {("institute", 10): ("update", None)}


def test_a_large_bulk_backlog_is_collected_whole(db, fast_delivery):
    # More changes than one statement of the bulk path holds, for fewer objects.
    webhook = Webhook.objects.create(name="Partner", url="http://127.0.0.1:9/hook")
    changes_record(
        entries=(ChangeEntry("training", 1 + n % 700, "update", n % 7) for n in range(60_000))
    )
    collect()
    entries = waiting(webhook)
    assert len(entries) == 700
    assert {parent_id for _, parent_id in entries.values()} == set(range(7))


def test_a_collected_change_is_applied_once_even_inside_an_outer_transaction(
    db, fast_delivery
):
    # The test runs inside a transaction: the collector's own never commits here.
    webhook = Webhook.objects.create(name="Partner", url="http://127.0.0.1:9/hook")
    record("update", "training", 1, 10)
    collect()
    pass_everything()  # as if it went out in a batch
    record("update", "training", 2, 10)
    collect()
    assert list(waiting(webhook)) == [("training", 2)]


def test_changes_for_one_webhook_reach_that_webhook_alone(db, fast_delivery):
    target = Webhook.objects.create(name="Resynced", url="http://127.0.0.1:9/a")
    other = Webhook.objects.create(name="Other", url="http://127.0.0.1:9/b")
    changes_record(
        entries=[ChangeEntry("institute", n, "import") for n in (1, 2)], webhook_id=target.pk
    )
    record("update", "training", 5, 1)
    collect()
    assert {key: action for key, (action, _) in waiting(target).items()} == {
        ("institute", 1): "import", ("institute", 2): "import", ("training", 5): "update"
    }
    assert {key: action for key, (action, _) in waiting(other).items()} == {
        ("training", 5): "update"
    }


def test_a_targeted_import_folds_in_order_with_everyones_changes(db, fast_delivery):
    # In one collector run: the institute is destroyed after the targeted import (destroy
    # wins), and another is updated after its targeted import (the import absorbs it).
    target = Webhook.objects.create(name="Resynced", url="http://127.0.0.1:9/a")
    changes_record(
        entries=[ChangeEntry("institute", n, "import") for n in (1, 2)], webhook_id=target.pk
    )
    record("destroy", "institute", 1)
    record("update", "institute", 2)
    collect()
    assert {key: action for key, (action, _) in waiting(target).items()} == {
        ("institute", 1): "destroy", ("institute", 2): "import"
    }


def test_changes_for_a_deleted_webhook_are_dropped(db, fast_delivery):
    gone = Webhook.objects.create(name="Gone", url="http://127.0.0.1:9/a")
    other = Webhook.objects.create(name="Other", url="http://127.0.0.1:9/b")
    changes_record(entries=[ChangeEntry("institute", 1, "import")], webhook_id=gone.pk)
    gone.delete()
    collect()
    assert not waiting(other)
    assert not Change.objects.exists()
