import threading

import pytest
from django.db import connection, transaction

from catalog.models import Institute, Training
from changes.models import Change


def recorded() -> list[tuple[str, str, int, int | None]]:
    return list(
        Change.objects.order_by("id").values_list("action", "object_kind", "object_id", "parent_id")
    )


@pytest.mark.django_db
def test_creating_and_updating_a_training_records_updates(institute):
    Change.objects.all().delete()
    training = Training.objects.create(institute=institute, reference="R1", name="One")
    training.name = "One, renamed"
    training.save()

    assert recorded() == [
        ("update", "training", training.pk, institute.pk),
        ("update", "training", training.pk, institute.pk),
    ]


@pytest.mark.django_db
def test_saving_an_institute_records_an_update():
    institute = Institute.objects.create(name="New Institute")
    assert recorded() == [("update", "institute", institute.pk, None)]


@pytest.mark.django_db
def test_deleting_a_training_records_a_destroy(training):
    Change.objects.all().delete()
    training_id = training.pk
    training.delete()
    assert recorded() == [("destroy", "training", training_id, training.institute_id)]


@pytest.mark.django_db
def test_deleting_an_institute_destroys_its_trainings_and_itself(institute):
    trainings = [
        Training.objects.create(institute=institute, reference=f"R{n}", name=f"T{n}")
        for n in range(3)
    ]
    Change.objects.all().delete()
    institute_id = institute.pk
    institute.delete()

    changes = recorded()
    assert sorted(changes[:-1]) == sorted(
        ("destroy", "training", training.pk, institute_id) for training in trainings
    )
    assert changes[-1] == ("destroy", "institute", institute_id, None)


@pytest.mark.django_db
def test_queryset_delete_records_a_destroy_per_training(institute):
    for n in range(4):
        Training.objects.create(institute=institute, reference=f"R{n}", name=f"T{n}")
    Change.objects.all().delete()
    Training.objects.filter(institute=institute).delete()
    assert [change[0] for change in recorded()] == ["destroy"] * 4


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_save_leaves_no_change(institute):
    Change.objects.all().delete()
    with pytest.raises(RuntimeError), transaction.atomic():
        Training.objects.create(institute=institute, reference="R1", name="Doomed")
        raise RuntimeError("the writer fails after saving")

    assert not Training.objects.exists()
    assert recorded() == []


@pytest.mark.django_db(transaction=True)
def test_a_failure_between_save_and_change_keeps_neither(institute, monkeypatch):
    # Outside any transaction (autocommit), as in a view or shell: if recording the change
    # fails after the row was written, the row must not stay behind without its change.
    def failing_record(**kwargs):
        raise ConnectionError("outbox insert failed")

    monkeypatch.setattr("catalog.signals.change_record", failing_record)
    Change.objects.all().delete()
    assert transaction.get_autocommit()

    with pytest.raises(ConnectionError):
        Training.objects.create(institute=institute, reference="R1", name="Half-saved")
    assert not Training.objects.filter(reference="R1").exists()

    with pytest.raises(ConnectionError):
        institute.delete()
    assert Institute.objects.filter(pk=institute.pk).exists()
    assert recorded() == []


@pytest.mark.django_db(transaction=True)
def test_a_committed_save_always_has_its_change(institute):
    Change.objects.all().delete()
    training = Training.objects.create(institute=institute, reference="R1", name="Kept")
    # A new connection sees both: they were committed together.
    connection.close()
    assert Training.objects.filter(pk=training.pk).exists()
    assert recorded() == [("update", "training", training.pk, institute.pk)]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_many_concurrent_writers_each_leave_exactly_their_changes(institute):
    Change.objects.all().delete()
    writers, saves_each = 8, 25
    barrier = threading.Barrier(writers)
    errors: list[BaseException] = []

    def write(writer: int) -> None:
        try:
            barrier.wait()
            for n in range(saves_each):
                with transaction.atomic():
                    training = Training.objects.create(
                        institute_id=institute.pk, reference=f"W{writer}-{n}", name="x"
                    )
                    if n % 5 == 4:
                        # every fifth transaction rolls back: its change must vanish too
                        transaction.set_rollback(True)
                    else:
                        training.name = "y"
                        training.save()
        except BaseException as error:  # reported below: a thread's failure must fail the test
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=(writer,)) for writer in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    saved = set(Training.objects.values_list("id", flat=True))
    assert len(saved) == writers * saves_each * 4 // 5
    changes = Change.objects.filter(object_kind="training")
    assert {change.object_id for change in changes} == saved
    assert changes.count() == 2 * len(saved)
