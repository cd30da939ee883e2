"""The object kinds: every kind's URL is served by the Trainings API, and every parent is a
kind too."""

import pytest
from django.urls import resolve

from changes.kinds import INSTITUTE, OBJECT_KINDS, TRAINING, object_kind_get
from deliveries.payload import entry_json


@pytest.mark.parametrize("kind", OBJECT_KINDS.values(), ids=list(OBJECT_KINDS))
def test_the_api_serves_each_kind_at_its_path(kind):
    match = resolve(kind.path(345345))
    assert match.url_name == f"{kind.name}-detail"
    assert match.kwargs == {f"{kind.name}_id": 345345}


def test_a_change_entry_points_at_its_kind_in_the_api(settings):
    settings.API_BASE_URL = "https://api.example"
    assert entry_json(object_kind="training", object_id=7, action="update") == {
        "action": "update", "object": "training", "id": 7,
        "url": "https://api.example/trainings/7",
    }
    assert entry_json(object_kind="institute", object_id=8, action="import")["url"] == (
        "https://api.example/institutes/8"
    )


def test_a_training_belongs_to_an_institute_and_parents_are_kinds():
    assert TRAINING.parent == INSTITUTE.name
    assert INSTITUTE.parent is None
    for kind in OBJECT_KINDS.values():
        assert kind.parent is None or kind.parent in OBJECT_KINDS


def test_an_unknown_kind_is_named_in_the_error():
    assert object_kind_get("training") is TRAINING
    with pytest.raises(ValueError, match="unknown object kind 'course'"):
        object_kind_get("course")
