"""Each coalescing rule (docs/contract.md), one test each (and across collector runs)."""


import pytest
from django.db import transaction
from django.utils import timezone

from deliveries.models import PendingEntry, StreamEntry, WebhookCursor
from deliveries.services import batches_take
from tests.deliveries.helpers import backdate, collect, keys, next_batch, record, waiting
from webhooks.models import Webhook


@pytest.fixture
def webhook(db, fast_delivery):
    return Webhook.objects.create(name="Partner", url="http://127.0.0.1:9/hook")


# Each rule runs twice: all changes in one collector run, and one collector run per change
# (the second merges into entries already waiting in the database).
@pytest.fixture(params=["one run", "run per change"])
def rec(request):
    def record_and_maybe_collect(*args):
        record(*args)
        if request.param == "run per change":
            collect()

    return record_and_maybe_collect


def test_many_changes_of_one_object_become_one_entry(webhook, rec):
    for _ in range(5):
        rec("update", "training", 1, 10)
    assert keys(next_batch(webhook)) == [("update", "training", 1)]


def test_update_then_destroy_is_destroy(webhook, rec):
    rec("update", "training", 1, 10)
    rec("destroy", "training", 1, 10)
    assert keys(next_batch(webhook)) == [("destroy", "training", 1)]


def test_destroy_then_update_is_update(webhook, rec):
    rec("destroy", "training", 1, 10)
    rec("update", "training", 1, 10)
    assert keys(next_batch(webhook)) == [("update", "training", 1)]


def test_several_imports_of_one_institute_are_one_import(webhook, rec):
    rec("import", "institute", 10)
    rec("import", "institute", 10)
    assert keys(next_batch(webhook)) == [("import", "institute", 10)]


@pytest.mark.parametrize("order", [("update", "import"), ("import", "update")])
def test_import_absorbs_an_update_of_the_institute(webhook, rec, order):
    for action in order:
        rec(action, "institute", 10)
    assert keys(next_batch(webhook)) == [("import", "institute", 10)]


def test_a_latest_destroy_wins_over_import_and_update(webhook, rec):
    rec("import", "institute", 10)
    rec("update", "institute", 10)
    rec("destroy", "institute", 10)
    assert keys(next_batch(webhook)) == [("destroy", "institute", 10)]


def test_import_then_destroy_then_update_is_update(webhook, rec):
    # The destroy resets what waited before it: the later update stands alone.
    rec("import", "institute", 10)
    rec("destroy", "institute", 10)
    rec("update", "institute", 10)
    assert keys(next_batch(webhook)) == [("update", "institute", 10)]


def test_a_training_update_folds_into_its_institutes_import(webhook, rec):
    rec("update", "training", 1, 10)
    rec("import", "institute", 10)
    rec("update", "training", 2, 10)
    rec("update", "training", 3, 99)  # another institute: not folded
    assert keys(next_batch(webhook)) == [
        ("import", "institute", 10),
        ("update", "training", 3),
    ]


def test_a_training_destroy_is_never_folded(webhook, rec):
    rec("destroy", "training", 1, 10)
    rec("import", "institute", 10)
    assert keys(next_batch(webhook)) == [
        ("destroy", "training", 1),
        ("import", "institute", 10),
    ]


def test_entries_are_ordered_by_their_latest_change(webhook, rec):
    rec("update", "training", 1, 10)
    rec("update", "training", 2, 10)
    rec("update", "training", 3, 10)
    rec("update", "training", 1, 10)
    assert keys(next_batch(webhook)) == [
        ("update", "training", 2),
        ("update", "training", 3),
        ("update", "training", 1),
    ]


def test_a_batch_waits_for_the_bundle_delay(webhook, settings):
    settings.WEBHOOK_BUNDLE_DELAY = 30
    record("update", "training", 1, 10)
    assert next_batch(webhook) is None
    backdate(31)
    assert keys(next_batch(webhook)) == [("update", "training", 1)]


def test_a_webhook_can_override_the_bundle_delay(webhook, settings):
    settings.WEBHOOK_BUNDLE_DELAY = 0
    webhook.bundle_delay = 60
    webhook.save()
    record("update", "training", 1, 10)
    assert next_batch(webhook) is None
    backdate(61)
    assert next_batch(webhook) is not None


def test_a_full_batch_goes_out_without_waiting(webhook, settings):
    settings.WEBHOOK_BUNDLE_DELAY = 3600
    settings.WEBHOOK_BATCH_SIZE = 3
    for training_id in range(1, 6):
        record("update", "training", training_id, 10)
    assert keys(next_batch(webhook)) == [("update", "training", n) for n in (1, 2, 3)]
    assert next_batch(webhook) is None, "two entries left: not a full batch, delay not over"


def test_a_backlog_goes_out_in_batches_of_the_batch_size(webhook, settings):
    settings.WEBHOOK_BATCH_SIZE = 2
    for training_id in range(1, 6):
        record("update", "training", training_id, 10)
    sizes = []
    while (batch := next_batch(webhook)) is not None:
        sizes.append(len(batch))
    assert sizes == [2, 2, 1]


def test_a_new_webhook_gets_only_changes_made_after_it_was_created(webhook, fast_delivery):
    record("update", "training", 1, 10)
    collect()
    newer = Webhook.objects.create(name="Newer", url="http://127.0.0.1:9/hook")
    record("update", "training", 2, 10)
    assert keys(next_batch(newer)) == [("update", "training", 2)]
    assert keys(next_batch(webhook)) == [("update", "training", 1), ("update", "training", 2)]


def test_a_webhook_created_within_one_collector_run_gets_the_later_changes(webhook):
    record("update", "training", 1, 10)
    newer = Webhook.objects.create(name="Newer", url="http://127.0.0.1:9/hook")
    record("update", "training", 2, 10)
    collect()  # both changes in one run
    assert keys(next_batch(newer)) == [("update", "training", 2)]


def test_a_paused_webhook_keeps_collecting_and_sends_when_resumed(webhook):
    webhook.is_active = False
    webhook.save()
    for _ in range(3):
        for training_id in range(1, 4):
            record("update", "training", training_id, 10)
    assert next_batch(webhook) is None
    assert len(waiting(webhook)) == 3
    assert StreamEntry.objects.count() == 3, "bounded by objects"
    webhook.is_active = True
    webhook.save()
    assert len(next_batch(webhook)) == 3


def test_deleting_a_webhook_drops_its_backlog(webhook):
    record("update", "training", 1, 10)
    collect()
    assert waiting(webhook)
    webhook.delete()
    assert not WebhookCursor.objects.exists() and not PendingEntry.objects.exists()
    collect()
    assert not StreamEntry.objects.exists(), "no cursor holds the stream"


def test_changes_recorded_without_any_webhook_are_not_kept(db, fast_delivery):
    record("update", "training", 1, 10)
    collect()
    webhook = Webhook.objects.create(name="Later", url="http://127.0.0.1:9/hook")
    assert next_batch(webhook) is None


def test_batches_take_answers_only_the_webhooks_with_a_due_batch(webhook, fast_delivery):
    waiting = Webhook.objects.create(name="Waits", url="http://127.0.0.1:9/w", bundle_delay=3600)
    record("update", "training", 1, 10)
    collect()
    with transaction.atomic():
        taken = batches_take(webhooks=[webhook, waiting], now=timezone.now())
    assert {pk: keys_of(entries) for pk, entries in taken.items()} == {
        webhook.pk: [("update", "training", 1)]
    }
    # "Retry now" skips the bundle delay.
    with transaction.atomic():
        forced = batches_take(webhooks=[waiting], now=timezone.now(), force_ids={waiting.pk})
    assert list(forced) == [waiting.pk]


def keys_of(entries):
    return [(entry.action, entry.object_kind, entry.object_id) for entry in entries]
