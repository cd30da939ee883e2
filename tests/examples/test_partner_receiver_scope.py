"""The reference receiver with ``--scoped``: it keeps exactly its webhook's scope (read
from ``GET /webhooks/<id>`` before each batch) and reconciles only that part."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from partner_harness import FakeTrainingsApi, ReceiverProcess, wait_until


@pytest.fixture
def catalogue(fake_api: FakeTrainingsApi) -> FakeTrainingsApi:
    for institute_id in (1, 2, 3):
        fake_api.add_institute(institute_id, f"Institute {institute_id}")
        for n in range(2):
            fake_api.add_training(10 * institute_id + n, institute_id, f"T{institute_id}{n}")
    fake_api.scope = {"institutes": [1, 2], "objects": ["institute", "training"]}
    return fake_api


def start(tmp_path: Path, api: FakeTrainingsApi, *options: str) -> ReceiverProcess:
    return ReceiverProcess(
        tmp_path / "mirror.sqlite3", tmp_path / "receiver.log", api,
        options=("--scoped", "--webhook-id", "1", "--api-url", api.base_url, *options),
    ).start()


@pytest.fixture
def scoped(tmp_path: Path, catalogue: FakeTrainingsApi) -> Iterator[ReceiverProcess]:
    process = start(tmp_path, catalogue)
    yield process
    process.stop()


def applied(receiver: ReceiverProcess, changes: list[dict], msg_id: str) -> dict:
    assert receiver.post(changes, msg_id).status_code == 204
    wait_until(lambda: receiver.inbox() == 0, what="the batch to be applied")
    return receiver.mirror()


def import_(api: FakeTrainingsApi, institute_id: int) -> dict:
    return {"action": "import", "object": "institute", "id": institute_id,
            "url": api.institute_url(institute_id)}


def update_training(api: FakeTrainingsApi, training_id: int) -> dict:
    return {"action": "update", "object": "training", "id": training_id,
            "url": api.training_url(training_id)}


def test_an_import_keeps_only_what_the_scope_holds(scoped, catalogue):
    mirror = applied(scoped, [import_(catalogue, 1), import_(catalogue, 3)], "m1")
    assert mirror["institutes"] == {"1": "Institute 1"}, "3 is outside the scope"
    assert sorted(mirror["trainings"]) == ["10", "11"]
    catalogue.scope = {"institutes": [1], "objects": ["training"]}
    mirror = applied(scoped, [import_(catalogue, 1)], "m2")
    assert mirror["institutes"] == {}, "trainings only: the institute is dropped"
    assert sorted(mirror["trainings"]) == ["10", "11"]


def test_an_update_showing_a_training_outside_the_scope_drops_it(scoped, catalogue):
    applied(scoped, [import_(catalogue, 1)], "m1")
    catalogue.trainings[10]["institute"] = 3  # moved out; the destroy may come later
    catalogue.trainings[30]["institute"] = 2  # moved in
    mirror = applied(scoped, [update_training(catalogue, 10), update_training(catalogue, 30)],
                     "m2")
    assert sorted(mirror["trainings"]) == ["11", "30"]


def test_reconcile_walks_only_the_scope(tmp_path, catalogue):
    catalogue.scope = {"institutes": [2, 3], "objects": ["institute"]}
    receiver = start(tmp_path, catalogue, "--reconcile")
    try:
        wait_until(lambda: "reconciled with the API" in receiver.log(), what="reconcile")
        mirror = receiver.mirror()
    finally:
        receiver.stop()
    assert mirror == {"institutes": {"2": "Institute 2", "3": "Institute 3"}, "trainings": {}}
    assert any(path.startswith("/institutes?") and "id=2&id=3" in path
               for path in catalogue.gets)
