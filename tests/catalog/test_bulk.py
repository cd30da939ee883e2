import pytest

from catalog.models import Training
from catalog.services import trainings_bulk_create, trainings_bulk_update
from changes.models import Change


@pytest.mark.django_db
def test_bulk_update_records_an_update_per_training(institute):
    trainings = trainings_bulk_create(
        trainings=[Training(institute=institute, reference=f"R{n}", name="x") for n in range(5)]
    )
    assert Change.objects.filter(action="update", object_kind="training").count() == 5
    Change.objects.all().delete()

    count = trainings_bulk_update(
        queryset=Training.objects.filter(reference__in=["R1", "R3"]), name="Renamed"
    )

    assert count == 2
    renamed = [training for training in trainings if training.reference in {"R1", "R3"}]
    assert sorted(Change.objects.values_list("object_id", "parent_id", "action")) == sorted(
        (training.pk, institute.pk, "update") for training in renamed
    )
    assert set(Training.objects.filter(name="Renamed").values_list("reference", flat=True)) == {
        "R1",
        "R3",
    }
