"""Scopes (deliveries.services.scope): a webhook receives the part of the change stream its
institutes and object kinds call for, moves become a destroy where the training left and
an update where it arrived, and a changed scope sends what entered and what left."""

import random
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from catalog.models import Institute, Training
from catalog.services import trainings_bulk_update
from changes.models import Change
from deliveries.models import StreamEntry, WebhookCursor
from deliveries.scoping import INSTITUTE_KEY_SQL, institute_key
from deliveries.services import (
    ResyncTooSoon,
    ScopeTooSoon,
    StreamFilter,
    UnknownInstitutes,
    webhook_resync,
    webhook_scope_change,
)
from tests.deliveries.helpers import collect, keys, next_batch, pass_everything, record
from webhooks.models import ScopeObjects, Webhook


@pytest.fixture
def catalogue(db, fast_delivery) -> list[Institute]:
    institutes = [Institute.objects.create(name=f"Institute {n}") for n in range(4)]
    for institute in institutes:
        Training.objects.create(
            institute=institute, reference=f"T{institute.pk}", name=f"T of {institute}"
        )
    return institutes


def webhook(name: str, institutes=None, objects=ScopeObjects.ALL) -> Webhook:
    created = Webhook.objects.create(
        name=name, url=f"http://127.0.0.1:9/{name}",
        scope_institutes=None if institutes is None else [i.pk for i in institutes],
        scope_objects=objects,
    )
    collect()
    pass_everything()
    return created


def training_of(institute: Institute) -> Training:
    """The training the fixture made in `institute` (wherever it is now)."""
    return Training.objects.get(reference=f"T{institute.pk}")


def test_a_scoped_webhook_receives_only_its_institutes_and_their_trainings(catalogue):
    a, b, c, _ = catalogue
    scoped = webhook("scoped", [a, b])
    everything = webhook("everything")
    for institute in catalogue:
        institute.name += "!"
        institute.save()
        training = training_of(institute)
        training.name += "!"
        training.save()
    assert keys(next_batch(scoped)) == [
        ("update", "institute", a.pk), ("update", "training", training_of(a).pk),
        ("update", "institute", b.pk), ("update", "training", training_of(b).pk),
    ]
    assert len(next_batch(everything)) == 8
    assert next_batch(scoped) is None


def test_a_training_moved_out_is_a_destroy_and_moved_in_an_update(catalogue):
    a, b, c, _ = catalogue
    only_a, only_b, both = webhook("a", [a]), webhook("b", [b]), webhook("ab", [a, b])
    everything, only_c = webhook("all"), webhook("c", [c])
    moved = training_of(a)
    moved.institute = b
    moved.save()
    assert keys(next_batch(only_a)) == [("destroy", "training", moved.pk)]
    assert keys(next_batch(only_b)) == [("update", "training", moved.pk)]
    assert keys(next_batch(both)) == [("update", "training", moved.pk)]
    assert keys(next_batch(everything)) == [("update", "training", moved.pk)]
    assert next_batch(only_c) is None


def test_moves_in_bulk_are_recorded_as_saves_are(catalogue):
    a, b, _, _ = catalogue
    only_a, only_b = webhook("a", [a]), webhook("b", [b])
    moved = training_of(a)
    trainings_bulk_update(queryset=Training.objects.filter(pk=moved.pk), institute=b)
    assert keys(next_batch(only_a)) == [("destroy", "training", moved.pk)]
    assert keys(next_batch(only_b)) == [("update", "training", moved.pk)]


def test_several_moves_within_the_delay_end_as_the_entry_the_last_state_calls_for(catalogue):
    a, b, c, _ = catalogue
    only_a, only_b, only_c = webhook("a", [a]), webhook("b", [b]), webhook("c", [c])
    moved = training_of(a)
    for institute in (b, c, a, b):  # back in a once, and out again
        moved.institute = institute
        moved.save()
    assert keys(next_batch(only_a)) == [("destroy", "training", moved.pk)]
    assert keys(next_batch(only_b)) == [("update", "training", moved.pk)]
    # Never had it: a destroy it can ignore (more than needed, never less).
    assert keys(next_batch(only_c)) == [("destroy", "training", moved.pk)]
    moved.institute = a
    moved.save()
    assert keys(next_batch(only_a)) == [("update", "training", moved.pk)]
    assert keys(next_batch(only_b)) == [("destroy", "training", moved.pk)]
    assert next_batch(only_c) is None


def test_a_move_folds_into_an_import_of_the_institute_it_arrived_in(catalogue):
    a, b, _, _ = catalogue
    both = webhook("ab", [a, b])
    moved = training_of(a)
    moved.institute = b
    moved.save()
    record("import", "institute", b.pk)
    assert keys(next_batch(both)) == [("import", "institute", b.pk)]


def test_object_kinds_narrow_what_is_sent(catalogue):
    a, _, _, _ = catalogue
    institutes_only = webhook("i", objects=ScopeObjects.INSTITUTES)
    trainings_only = webhook("t", [a], objects=ScopeObjects.TRAININGS)
    a.name += "!"
    a.save()
    training = training_of(a)
    training.name += "!"
    training.save()
    record("import", "institute", 99)
    assert keys(next_batch(institutes_only)) == [
        ("update", "institute", a.pk), ("import", "institute", 99)
    ]
    assert keys(next_batch(trainings_only)) == [("update", "training", training.pk)]
    record("import", "institute", a.pk)  # stands for the institute's trainings too
    assert keys(next_batch(trainings_only)) == [("import", "institute", a.pk)]
    institute_id = a.pk
    a.delete()  # takes its trainings along
    assert keys(next_batch(trainings_only)) == [
        ("destroy", "training", training.pk), ("destroy", "institute", institute_id)
    ]


def test_an_import_reaches_only_the_webhooks_whose_scope_holds_it(catalogue):
    a, b, _, _ = catalogue
    only_a, only_b = webhook("a", [a]), webhook("b", [b])
    record("import", "institute", a.pk)
    assert keys(next_batch(only_a)) == [("import", "institute", a.pk)]
    assert next_batch(only_b) is None


def test_a_deleted_institute_stays_in_the_scope_so_its_destroy_arrives(catalogue):
    a, _, _, _ = catalogue
    only_a = webhook("a", [a])
    training, institute_id = training_of(a), a.pk
    a.delete()
    assert keys(next_batch(only_a)) == [
        ("destroy", "training", training.pk), ("destroy", "institute", institute_id)
    ]
    assert Webhook.objects.get(pk=only_a.pk).scope_institutes == [institute_id]


def test_a_widened_scope_imports_what_entered_and_a_narrowed_one_destroys_what_left(catalogue):
    a, b, c, d = catalogue
    partner = webhook("p", [a, b])
    other = webhook("other", [c])
    changed = webhook_scope_change(
        webhook_id=partner.pk, institute_ids=[b.pk, c.pk, d.pk], objects=ScopeObjects.ALL
    )
    assert (changed.imported, changed.destroyed) == (2, 1)
    assert keys(next_batch(partner)) == [
        ("destroy", "institute", a.pk), ("import", "institute", c.pk),
        ("import", "institute", d.pk),
    ]
    assert next_batch(other) is None
    # To the whole catalogue: what was outside enters.
    webhook_scope_change(webhook_id=partner.pk, institute_ids=None, objects=ScopeObjects.ALL)
    assert keys(next_batch(partner)) == [("import", "institute", a.pk)]
    # From the whole catalogue to a part: everything else leaves.
    webhook_scope_change(webhook_id=partner.pk, institute_ids=[c.pk], objects=ScopeObjects.ALL)
    assert sorted(keys(next_batch(partner))) == sorted(
        ("destroy", "institute", institute.pk) for institute in (a, b, d)
    )


def test_a_changed_scope_coalesces_with_what_waits(catalogue):
    a, b, _, _ = catalogue
    partner = webhook("p", [a])
    training = training_of(b)
    training.name += "!"
    training.save()
    record("update", "institute", a.pk)
    collect()
    webhook_scope_change(webhook_id=partner.pk, institute_ids=[b.pk], objects=ScopeObjects.ALL)
    # b's training update folds into b's import; a's update became its destroy.
    assert keys(next_batch(partner)) == [
        ("destroy", "institute", a.pk), ("import", "institute", b.pk)
    ]


def test_changed_object_kinds_import_the_whole_scope(catalogue):
    a, b, _, _ = catalogue
    partner = webhook("p", [a, b], objects=ScopeObjects.INSTITUTES)
    webhook_scope_change(
        webhook_id=partner.pk, institute_ids=[a.pk, b.pk], objects=ScopeObjects.TRAININGS
    )
    assert keys(next_batch(partner)) == [
        ("import", "institute", a.pk), ("import", "institute", b.pk)
    ]


def test_unknown_institutes_are_refused_and_named(catalogue):
    partner = webhook("p", [catalogue[0]])
    with pytest.raises(UnknownInstitutes) as refused:
        webhook_scope_change(
            webhook_id=partner.pk, institute_ids=[catalogue[1].pk, 98, 99],
            objects=ScopeObjects.ALL,
        )
    assert refused.value.institute_ids == [98, 99]
    assert Webhook.objects.get(pk=partner.pk).scope_institutes == [catalogue[0].pk]
    assert not Change.objects.filter(webhook=partner).exists()


def test_a_partners_widening_is_limited_as_a_resync_is_and_a_narrowing_is_not(catalogue):
    a, b, _, _ = catalogue
    partner = webhook("p", [a])
    interval = timedelta(minutes=10)
    webhook_scope_change(webhook_id=partner.pk, institute_ids=[a.pk, b.pk],
                         objects=ScopeObjects.ALL, min_interval=interval)
    webhook_scope_change(webhook_id=partner.pk, institute_ids=[b.pk],
                         objects=ScopeObjects.ALL, min_interval=interval)
    with pytest.raises(ScopeTooSoon) as refused:
        webhook_scope_change(webhook_id=partner.pk, institute_ids=[a.pk, b.pk],
                             objects=ScopeObjects.ALL, min_interval=interval)
    assert 0 < refused.value.retry_after <= 600
    with pytest.raises(ResyncTooSoon):
        webhook_resync(webhook_id=partner.pk, min_interval=interval)
    # Staff are not limited.
    webhook_scope_change(webhook_id=partner.pk, institute_ids=[a.pk, b.pk],
                         objects=ScopeObjects.ALL)


def test_a_resync_sends_the_scope_and_nothing_else(catalogue):
    a, _, c, _ = catalogue
    partner = webhook("p", [a, c])
    assert webhook_resync(webhook_id=partner.pk) == 2
    assert keys(next_batch(partner)) == [
        ("import", "institute", a.pk), ("import", "institute", c.pk)
    ]


def test_a_scoped_webhook_with_nothing_to_receive_does_not_hold_the_stream(catalogue):
    a, b, _, _ = catalogue
    only_a = webhook("a", [a])
    only_a.is_active = False  # paused: still passes what is not its own
    only_a.save()
    webhook("all")
    for _ in range(3):
        training = training_of(b)
        training.name += "!"
        training.save()
        collect()
        next_batch(Webhook.objects.get(name="all"))
        collect()
    cursor = WebhookCursor.objects.get(webhook=only_a)
    assert not StreamEntry.objects.filter(seq__lte=cursor.seq).exists(), "pruned"
    training = training_of(a)
    training.name += "!"
    training.save()
    collect()
    only_a.is_active = True
    only_a.save()
    assert keys(next_batch(only_a)) == [("update", "training", training.pk)]


def test_a_scoped_batch_reads_only_its_institutes_rows(catalogue):
    from django.test.utils import CaptureQueriesContext

    a, b, _, _ = catalogue
    only_a = webhook("a", [a])
    for n in range(50):
        record("update", "training", 1000 + n, b.pk)
    record("update", "training", 5000, a.pk)
    collect()
    with CaptureQueriesContext(connection) as queries:
        assert keys(next_batch(only_a)) == [("update", "training", 5000)]
    stream_reads = [q["sql"] for q in queries if "institute_id" in q["sql"]]
    assert stream_reads, "the scope is applied in SQL"


def test_the_filter_and_the_institute_key_say_the_same_in_python_and_sql(db):
    generator = random.Random(20)
    now = timezone.now()
    rows = []
    for _ in range(300):
        kind = generator.choice(["institute", "training"])
        parent = generator.choice([None, 1, 2, 3]) if kind == "training" else None
        rows.append((kind, generator.randint(1, 4), parent,
                     generator.choice(["update", "destroy", "import"])))
    table = StreamEntry._meta.db_table
    with connection.cursor() as cursor:
        for n, (kind, object_id, parent, action) in enumerate(rows):
            cursor.execute(
                f"INSERT INTO {table} (object_kind, object_id, parent_id, action, "
                f"institute_id, first_change_at, last_change_at, seq) "
                f"SELECT %s, %s, %s, %s, 0, %s, %s, %s",
                [kind, object_id + 10 * n, parent, action, now, now, n + 1],
            )
        cursor.execute(f"UPDATE {table} SET institute_id = {INSTITUTE_KEY_SQL}")
    stored = list(StreamEntry.objects.values_list(
        "object_kind", "object_id", "parent_id", "action", "institute_id", "seq"
    ))
    assert all(institute_key(kind, object_id, parent) == key
               for kind, object_id, parent, _, key, _ in stored)
    for institutes in (None, (), (1,), (2, 3), (1, 2, 3, 41)):
        for kinds in (("institute", "training"), ("institute",), ("training",)):
            row_filter = StreamFilter(institute_ids=institutes, object_kinds=kinds)
            conditions, params = row_filter.sql()
            with connection.cursor() as cursor:
                cursor.execute(f"SELECT seq FROM {table} WHERE 1 = 1{conditions}", params)
                in_sql = {row[0] for row in cursor.fetchall()}
            in_python = {seq for kind, _, _, action, key, seq in stored
                         if row_filter.admits(kind, key, action)}
            assert in_sql == in_python, (institutes, kinds)


def test_a_scoped_webhook_is_due_for_its_own_rows_only(catalogue, settings):
    from deliveries.services import webhooks_due

    a, b, c, _ = catalogue
    only_a, only_b = webhook("a", [a]), webhook("b", [b])
    trainings_only_c = webhook("c", [c], objects=ScopeObjects.TRAININGS)
    record("update", "training", 500, a.pk)
    record("update", "institute", c.pk)  # not for a trainings-only webhook
    collect()
    due = webhooks_due()
    assert only_a.pk in due and only_b.pk not in due and trainings_only_c.pk not in due
    # With a long delay, only a full batch of its own makes a scoped webhook due.
    assert keys(next_batch(only_a)) == [("update", "training", 500)]
    settings.WEBHOOK_BUNDLE_DELAY = 1000
    settings.WEBHOOK_BATCH_SIZE = 2
    record("update", "training", 501, a.pk)
    record("update", "training", 502, b.pk)
    record("update", "training", 503, b.pk)
    collect()
    due = webhooks_due()
    assert only_b.pk in due and only_a.pk not in due


def test_the_batched_backlog_read_says_what_each_filter_admits(db):
    from deliveries.stream import scoped_backlogs_read

    generator = random.Random(21)
    start = timezone.now()
    rows = []
    table = StreamEntry._meta.db_table
    with connection.cursor() as cursor:
        for seq in range(1, 201):
            kind = generator.choice(["institute", "training"])
            institute = generator.randint(1, 6)
            action = generator.choice(["update", "destroy", "import"])
            at = start - timedelta(seconds=generator.randint(0, 1000))
            rows.append((seq, kind, institute, action, at))
            cursor.execute(
                f"INSERT INTO {table} (object_kind, object_id, parent_id, action, "
                f"institute_id, first_change_at, last_change_at, seq) "
                f"VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                [kind, seq, institute if kind == "training" else None, action, institute,
                 at, at, seq],
            )
    reads = [
        (generator.randint(0, 150), StreamFilter(
            institute_ids=generator.choice(
                [None, (), tuple(sorted(generator.sample(range(1, 8), 2)))]),
            object_kinds=generator.choice(
                [("institute", "training"), ("institute",), ("training",)]),
        ))
        for _ in range(40)
    ]
    head, limit = 180, 7
    with connection.cursor() as cursor:
        answers = scoped_backlogs_read(cursor, reads, head, limit)
    for (position, row_filter), (count, oldest, first) in zip(reads, answers, strict=True):
        admitted = [row for row in rows if position < row[0] <= head
                    and row_filter.admits(row[1], row[2], row[3])]
        if not admitted:
            assert (count, oldest, first) == (0, None, None), (position, row_filter)
            continue
        assert first == admitted[0][0], (position, row_filter)
        assert (count >= limit) == (len(admitted) >= limit), (position, row_filter)
        if len(admitted) < limit:
            assert count == len(admitted)
            assert abs((_aware(oldest) - min(row[4] for row in admitted)).total_seconds()) < 1e-3


def _aware(value):
    from deliveries.stream import aware_converter

    return aware_converter()(value)


@pytest.mark.parametrize("collected", [True, False], ids=["in the stream", "not collected yet"])
def test_narrowing_the_whole_catalogue_destroys_an_institute_deleted_before_its_destroy_was_sent(
    catalogue, collected
):
    # The partner holds the whole catalogue; an institute is deleted, and before its
    # destroy reaches the partner the scope narrows to another institute. The deleted
    # institute is no longer in the catalogue, yet the partner still holds it and its
    # trainings, and the new scope no longer reads its destroy waiting in the stream:
    # the narrowing itself must destroy it.
    a, b, _, _ = catalogue
    partner = webhook("p")
    training, gone = training_of(a), a.pk
    a.delete()
    if collected:
        collect()
    webhook_scope_change(webhook_id=partner.pk, institute_ids=[b.pk], objects=ScopeObjects.ALL)
    sent = keys(next_batch(partner))
    assert ("destroy", "institute", gone) in sent, sent
    assert ("destroy", "training", training.pk) not in sent  # outside the new scope: not read
