"""The reference partner receiver, run as a real process against a fake Trainings API."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from types import ModuleType

import pytest
import requests
from partner_harness import (
    FakeTrainingsApi,
    ReceiverProcess,
    signed_headers,
    wait_until,
)


def update(api: FakeTrainingsApi, kind: str, object_id: int) -> dict[str, object]:
    url = api.training_url(object_id) if kind == "training" else api.institute_url(object_id)
    return {"action": "update", "object": kind, "id": object_id, "url": url}


def destroy(kind: str, object_id: int) -> dict[str, object]:
    return {"action": "destroy", "object": kind, "id": object_id}


def import_(api: FakeTrainingsApi, institute_id: int) -> dict[str, object]:
    url = api.institute_url(institute_id)
    return {"action": "import", "object": "institute", "id": institute_id, "url": url}


def barrier(receiver: ReceiverProcess, msg_id: str = "msg_barrier") -> None:
    """Send an empty batch and wait until it is processed.

    Batches are applied in arrival order, so everything sent before is processed too.
    """
    assert receiver.post([], msg_id).status_code == 204
    wait_until(lambda: receiver.inbox() == 0, what="the inbox to drain")


# --- Verification --------------------------------------------------------------------------


def test_wrong_secret_is_refused_with_401(receiver: ReceiverProcess) -> None:
    other_secret = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"

    response = receiver.post([], "msg_1", secret=other_secret)

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_signature"
    assert receiver.inbox() == 0


def test_timestamp_ten_minutes_old_is_refused_with_401(receiver: ReceiverProcess) -> None:
    stale = datetime.now(tz=UTC) - timedelta(minutes=10)

    response = receiver.post([], "msg_1", timestamp=stale)

    assert response.status_code == 401
    assert "too old" in response.json()["message"]


@pytest.mark.parametrize(
    "signature",
    ["", "v1", "v1,not base64!", "v1,a,b", "garbage"],
    ids=["empty", "no-comma", "bad-base64", "two-commas", "garbage"],
)
def test_garbled_signature_header_is_401_not_a_crash(
    receiver: ReceiverProcess, signature: str
) -> None:
    body = b'{"changes":[]}'
    headers = {**signed_headers(body, "msg_1"), "webhook-signature": signature}

    response = requests.post(receiver.url, data=body, headers=headers)

    assert response.status_code == 401


def test_either_signature_is_accepted_while_the_secret_rotates(
    receiver: ReceiverProcess,
) -> None:
    body = b'{"changes":[]}'
    headers = signed_headers(body, "msg_1")
    old_secret_signature = signed_headers(
        body, "msg_1", secret="whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"
    )["webhook-signature"]
    headers["webhook-signature"] = f"{old_secret_signature} {headers['webhook-signature']}"

    assert requests.post(receiver.url, data=body, headers=headers).status_code == 204


def test_signed_body_that_is_not_a_batch_is_400(receiver: ReceiverProcess) -> None:
    for body in (b"not json", b'{"changes": 3}', b"[]"):
        response = requests.post(receiver.url, data=body, headers=signed_headers(body, "msg_1"))
        assert response.status_code == 400, body


# --- Applying changes ----------------------------------------------------------------------


def test_update_is_fetched_and_mirrored(
    receiver: ReceiverProcess, fake_api: FakeTrainingsApi, receiver_module: ModuleType
) -> None:
    fake_api.add_institute(2, "Institute Two")
    fake_api.add_training(1, 2, "Welding")

    response = receiver.post(
        [update(fake_api, "institute", 2), update(fake_api, "training", 1)], "msg_1"
    )

    assert response.status_code == 204
    assert response.content == b""
    wait_until(lambda: receiver.inbox() == 0, what="the batch to be applied")
    assert receiver_module.mirror_snapshot(str(receiver.db_path)) == {
        "institutes": {2: "Institute Two"},
        "trainings": {1: (2, "r-1", "Welding")},
    }
    assert receiver.mirror() == {
        "institutes": {"2": "Institute Two"},
        "trainings": {"1": [2, "r-1", "Welding"]},
    }
    assert "applied update training 1 (name='Welding')" in receiver.log()


def test_answer_does_not_wait_for_the_api(
    receiver: ReceiverProcess, fake_api: FakeTrainingsApi
) -> None:
    fake_api.add_institute(2, "Two")
    fake_api.add_training(1, 2, "Welding")
    fake_api.delay = 3.0
    receiver.post([update(fake_api, "training", 1)], "msg_1")  # the worker is now in a GET

    started = time.monotonic()
    response = receiver.post([update(fake_api, "training", 1)], "msg_2")

    assert response.status_code == 204
    assert time.monotonic() - started < 1.0
    assert receiver.inbox() == 2


def test_update_of_an_object_gone_since_deletes_it(
    receiver: ReceiverProcess, fake_api: FakeTrainingsApi
) -> None:
    fake_api.add_institute(2, "Institute Two")
    fake_api.add_training(1, 2, "Welding")
    receiver.post([update(fake_api, "training", 1)], "msg_1")
    wait_until(lambda: receiver.mirror()["trainings"], what="the training to be mirrored")

    del fake_api.trainings[1]
    receiver.post([update(fake_api, "training", 1)], "msg_2")

    wait_until(lambda: not receiver.mirror()["trainings"], what="the training to go")


def test_destroy_removes_a_training_and_an_institute_with_its_trainings(
    receiver: ReceiverProcess, fake_api: FakeTrainingsApi
) -> None:
    fake_api.add_institute(1, "One")
    fake_api.add_institute(2, "Two")
    for training_id, institute_id in [(10, 1), (11, 1), (12, 1), (20, 2)]:
        fake_api.add_training(training_id, institute_id, f"T{training_id}")
    receiver.post([import_(fake_api, 1), import_(fake_api, 2)], "msg_1")
    barrier(receiver)
    assert set(receiver.mirror()["trainings"]) == {"10", "11", "12", "20"}

    receiver.post([destroy("training", 12)], "msg_2")
    receiver.post([destroy("institute", 1)], "msg_3")
    barrier(receiver, "msg_barrier_2")

    assert receiver.mirror() == {
        "institutes": {"2": "Two"},
        "trainings": {"20": [2, "r-20", "T20"]},
    }


def test_import_replaces_the_institutes_trainings_with_all_pages(
    receiver: ReceiverProcess, fake_api: FakeTrainingsApi
) -> None:
    fake_api.add_institute(1, "One")
    fake_api.add_institute(2, "Two")
    fake_api.add_training(99, 1, "Dropped by the import")
    fake_api.add_training(50, 2, "Other institute")
    receiver.post([update(fake_api, "training", 99), update(fake_api, "training", 50)], "msg_1")
    barrier(receiver)
    del fake_api.trainings[99]
    for training_id in range(1, 6):  # 5 trainings, 2 a page: 3 pages
        fake_api.add_training(training_id, 1, f"T{training_id}")

    receiver.post([import_(fake_api, 1)], "msg_2")
    barrier(receiver, "msg_barrier_2")

    mirror = receiver.mirror()
    assert mirror["institutes"] == {"1": "One"}
    assert mirror["trainings"] == {
        **{str(t): [1, f"r-{t}", f"T{t}"] for t in range(1, 6)},
        "50": [2, "r-50", "Other institute"],
    }
    assert fake_api.gets["/institutes/1/trainings?page=3"] == 1
    assert "applied import institute 1 (name='One', 5 trainings)" in receiver.log()


def test_import_of_a_gone_institute_deletes_it(
    receiver: ReceiverProcess, fake_api: FakeTrainingsApi
) -> None:
    fake_api.add_institute(1, "One")
    fake_api.add_training(10, 1, "T10")
    receiver.post([import_(fake_api, 1)], "msg_1")
    barrier(receiver)
    fake_api.institutes.clear()
    fake_api.trainings.clear()

    receiver.post([import_(fake_api, 1)], "msg_2")
    barrier(receiver, "msg_barrier_2")

    assert receiver.mirror() == {"institutes": {}, "trainings": {}}


def test_changes_are_applied_in_order(
    receiver: ReceiverProcess, fake_api: FakeTrainingsApi
) -> None:
    fake_api.add_institute(2, "Two")
    fake_api.add_training(1, 2, "Kept")
    fake_api.add_training(3, 2, "Destroyed")

    receiver.post([destroy("training", 1), update(fake_api, "training", 1)], "msg_1")
    receiver.post([update(fake_api, "training", 3)], "msg_2")
    receiver.post([destroy("training", 3)], "msg_3")
    barrier(receiver)

    assert receiver.mirror()["trainings"] == {"1": [2, "r-1", "Kept"]}


def test_unknown_change_is_skipped_and_does_not_block_the_rest(
    receiver: ReceiverProcess, fake_api: FakeTrainingsApi
) -> None:
    fake_api.add_institute(2, "Two")
    fake_api.add_training(1, 2, "Welding")
    unknown = {"action": "archive", "object": "training", "id": 1}

    receiver.post([unknown, update(fake_api, "training", 1)], "msg_1")
    barrier(receiver)

    assert receiver.mirror()["trainings"] == {"1": [2, "r-1", "Welding"]}
    assert "skipped unknown change" in receiver.log()


# --- At least once, exactly one effect -----------------------------------------------------


def test_repeated_webhook_id_is_processed_once(
    receiver: ReceiverProcess, fake_api: FakeTrainingsApi
) -> None:
    fake_api.add_institute(2, "Two")
    fake_api.add_training(1, 2, "Welding")
    assert receiver.post([update(fake_api, "training", 1)], "msg_1").status_code == 204
    barrier(receiver)

    repeat = receiver.post([update(fake_api, "training", 1)], "msg_1")
    barrier(receiver, "msg_barrier_2")  # had the repeat been queued, it is applied by now

    assert repeat.status_code == 200
    assert repeat.json() == {"status": "duplicate"}
    assert fake_api.gets["/trainings/1"] == 1


def test_api_outage_keeps_the_batch_until_the_api_recovers(
    receiver: ReceiverProcess, fake_api: FakeTrainingsApi
) -> None:
    fake_api.add_institute(2, "Two")
    fake_api.add_training(1, 2, "Welding")
    fake_api.fail_status = 503

    assert receiver.post([update(fake_api, "training", 1)], "msg_1").status_code == 204
    wait_until(lambda: "HTTP 503" in receiver.log(), what="a failed fetch")
    assert receiver.inbox() == 1
    # A retry by the sender while the batch waits is still recognised as a repeat.
    assert receiver.post([update(fake_api, "training", 1)], "msg_1").status_code == 200
    assert receiver.mirror()["trainings"] == {}

    fake_api.fail_status = None

    wait_until(lambda: receiver.mirror()["trainings"], what="the batch to be applied")
    assert receiver.inbox() == 0
    assert fake_api.gets["/trainings/1"] == 1


def test_inbox_survives_a_restart(receiver: ReceiverProcess, fake_api: FakeTrainingsApi) -> None:
    fake_api.add_institute(2, "Two")
    fake_api.add_training(1, 2, "Welding")
    fake_api.fail_status = 503
    receiver.post([update(fake_api, "training", 1)], "msg_1")
    wait_until(lambda: "HTTP 503" in receiver.log(), what="a failed fetch")

    receiver.stop()
    fake_api.fail_status = None
    receiver.start()

    wait_until(lambda: receiver.mirror()["trainings"], what="the batch to be applied")
    assert receiver.post([update(fake_api, "training", 1)], "msg_1").status_code == 200


# --- HTTP ----------------------------------------------------------------------------------


def test_healthz_reports_the_inbox_length(receiver: ReceiverProcess) -> None:
    response = requests.get(f"{receiver.url}/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "inbox": 0}


def test_unknown_get_is_a_json_404(receiver: ReceiverProcess) -> None:
    response = requests.get(f"{receiver.url}/nothing")

    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_several_posts_on_one_keep_alive_connection(receiver: ReceiverProcess) -> None:
    with requests.Session() as session:
        for number in range(5):
            body = json.dumps({"changes": []}).encode()
            msg_id = f"msg_{number}"
            response = session.post(receiver.url, data=body, headers=signed_headers(body, msg_id))
            assert response.status_code == 204
