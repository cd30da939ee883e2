"""The change stream (deliveries.services.collect, .batch): one row per object shared by
every webhook, each webhook reading it through its own cursor."""

import pytest
from django.db import connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from deliveries.models import PendingEntry, StreamEntry, WebhookCursor
from deliveries.services import batches_take
from tests.deliveries.helpers import backdate, collect, keys, next_batch, record, waiting
from webhooks.models import Webhook


@pytest.fixture
def first(db, fast_delivery):
    return Webhook.objects.create(name="First", url="http://127.0.0.1:9/a")


@pytest.fixture
def second(db, fast_delivery):
    return Webhook.objects.create(name="Second", url="http://127.0.0.1:9/b")


def test_a_change_is_one_row_whatever_the_number_of_webhooks(first, second):
    for n in range(3):
        Webhook.objects.create(name=f"More {n}", url=f"http://127.0.0.1:9/{n}")
    record("update", "training", 1, 10)
    record("update", "training", 1, 10)
    collect()
    assert StreamEntry.objects.count() == 1
    assert not PendingEntry.objects.exists()


def test_two_webhooks_at_different_cursors_each_get_their_own_batches(first, second):
    record("update", "training", 1, 10)
    record("update", "training", 2, 10)
    assert keys(next_batch(first)) == [("update", "training", 1), ("update", "training", 2)]
    record("update", "training", 3, 10)
    assert keys(next_batch(first)) == [("update", "training", 3)]
    assert keys(next_batch(second)) == [
        ("update", "training", 1), ("update", "training", 2), ("update", "training", 3)
    ]
    assert next_batch(first) is None and next_batch(second) is None


def test_an_object_is_not_sent_again_unless_it_changed_after_the_webhook_got_it(first, second):
    second.is_active = False  # holds the stream: the rows stay
    second.save()
    record("update", "training", 1, 10)
    record("update", "training", 2, 10)
    assert keys(next_batch(first)) == [("update", "training", 1), ("update", "training", 2)]
    record("update", "training", 3, 10)
    assert keys(next_batch(first)) == [("update", "training", 3)], "1 and 2 not again"
    record("destroy", "training", 1, 10)  # stamped anew, after first's cursor
    assert keys(next_batch(first)) == [("destroy", "training", 1)], "changed: sent again"
    second.is_active = True
    second.save()
    # Second never got 1: once, at its latest change, with the merged action.
    assert keys(next_batch(second)) == [
        ("update", "training", 2), ("update", "training", 3), ("destroy", "training", 1)
    ]


def test_a_webhook_created_mid_stream_starts_at_the_head(first):
    record("update", "training", 1, 10)
    collect()
    later = Webhook.objects.create(name="Later", url="http://127.0.0.1:9/later")
    record("update", "training", 2, 10)
    record("update", "training", 1, 10)  # changed again after later's creation
    assert keys(next_batch(later)) == [("update", "training", 2), ("update", "training", 1)]
    assert keys(next_batch(first)) == [("update", "training", 2), ("update", "training", 1)]


def test_rows_every_cursor_passed_are_pruned_and_a_paused_webhook_holds_them(first, second):
    record("update", "training", 1, 10)
    collect()
    second.is_active = False
    second.save()
    next_batch(first)
    collect()
    assert StreamEntry.objects.count() == 1, "the paused webhook has not got it"
    second.is_active = True
    second.save()
    next_batch(second)
    collect()
    assert not StreamEntry.objects.exists()


def test_an_object_edited_without_pause_still_goes_out(first, settings):
    settings.WEBHOOK_BUNDLE_DELAY = 30
    record("update", "training", 1, 10)
    collect()
    backdate(31)
    record("update", "training", 1, 10)  # stamped anew: its first change stays
    assert keys(next_batch(first)) == [("update", "training", 1)]


def test_a_row_every_webhook_got_starts_afresh_when_the_object_changes_again(first, settings):
    record("import", "institute", 10)
    assert keys(next_batch(first)) == [("import", "institute", 10)]
    settings.WEBHOOK_BUNDLE_DELAY = 30
    record("update", "institute", 10)
    assert next_batch(first) is None, "a new first change: the bundle delay counts again"
    backdate(31)
    assert keys(next_batch(first)) == [("update", "institute", 10)], "not the old import"


def test_webhooks_at_one_cursor_share_one_batch_list(first, second):
    record("update", "training", 1, 10)
    collect()
    third = Webhook.objects.create(name="Third", url="http://127.0.0.1:9/c")
    with transaction.atomic():
        taken = batches_take(webhooks=[first, second, third], now=timezone.now())
    assert set(taken) == {first.pk, second.pk}
    assert taken[first.pk] is taken[second.pk]
    assert set(WebhookCursor.objects.values_list("seq", flat=True)) == {
        StreamEntry.objects.get().seq
    }


def test_a_webhooks_own_entries_merge_with_the_stream_in_order(first, second):
    from changes.services import ChangeEntry, changes_record

    record("update", "training", 1, 10)
    changes_record(entries=[ChangeEntry("institute", 10, "import")], webhook_id=first.pk)
    record("update", "training", 2, 10)
    record("update", "institute", 10)
    # One import for the institute (it absorbs the later update), the trainings folded.
    assert keys(next_batch(first)) == [("import", "institute", 10)]
    assert keys(next_batch(second)) == [
        ("update", "training", 1), ("update", "training", 2), ("update", "institute", 10)
    ]


@pytest.mark.django_db(transaction=True)
def test_pending_entries_waiting_at_the_upgrade_are_kept(fast_delivery):
    executor = MigrationExecutor(connection)
    before = [("deliveries", "0003_operators_group")]
    executor.migrate(before)
    try:
        old = executor.loader.project_state(before).apps
        webhook = old.get_model("webhooks", "Webhook").objects.create(
            name="Old", url="http://127.0.0.1:9/old", secret="whsec_x",
        )
        now = timezone.now()
        old.get_model("deliveries", "PendingEntry").objects.create(
            webhook_id=webhook.pk, object_kind="training", object_id=7, action="update",
            first_change_at=now, last_change_at=now, last_change_id=41,
        )
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())  # 0004_change_stream and on
    webhook = Webhook.objects.get(pk=webhook.pk)
    record("update", "training", 8, 10)  # collected after the upgrade: goes out after
    assert keys(next_batch(webhook)) == [("update", "training", 7), ("update", "training", 8)]
    assert not waiting(webhook)


def test_taking_the_batches_of_many_webhooks_at_one_cursor_reads_the_stream_once(first):
    from django.test.utils import CaptureQueriesContext

    many = [first] + [
        Webhook.objects.create(name=f"Many {n}", url=f"http://127.0.0.1:9/m{n}")
        for n in range(20)
    ]
    for training_id in range(1, 4):
        record("update", "training", training_id, 10)
    collect()
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        taken = batches_take(webhooks=many, now=timezone.now())
    assert len(taken) == 21 and len({id(entries) for entries in taken.values()}) == 1
    # Cursors and own entries, the stream once (its rows, then, as the batch is not full,
    # their oldest change), the cursors moved once.
    assert len(queries) == 4
