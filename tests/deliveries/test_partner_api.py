"""The partners' own endpoints (deliveries.api): a key that belongs to a partner's webhooks
reads their state and deliveries and asks for a resync or a test event, and never sees
another partner's webhook or any secret."""

import json
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from apikeys.models import ApiKey
from apikeys.services import api_key_create
from catalog.models import Institute
from changes.models import Change
from deliveries.models import Delivery
from tests.deliveries.helpers import collect, deliver, make_retry_due, next_batch, record
from tests.support.partner import Behaviour, status
from webhooks.models import Webhook
from webhooks.services import webhook_pause, webhook_secret_rotate

pytestmark = pytest.mark.filterwarnings("ignore:No directory at:UserWarning")
BASE = "https://api.example.test"


@pytest.fixture
def ours(db, fast_delivery, partner) -> list[Webhook]:
    return [
        Webhook.objects.create(name="Ours A", url=partner.url_for("/a")),
        Webhook.objects.create(name="Ours B", url=partner.url_for("/b")),
    ]


@pytest.fixture
def theirs(db, fast_delivery, partner) -> Webhook:
    return Webhook.objects.create(name="Another partner", url=partner.url_for("/theirs"))


@pytest.fixture
def key_client(ours, theirs) -> Client:
    _, raw_key = api_key_create(name="Our partner", webhook_ids=[w.pk for w in ours])
    api_key_create(name="The other partner", webhook_ids=[theirs.pk])
    # A real client sends no CSRF token; the POST endpoints must work without one.
    return Client(headers={"X-API-Key": raw_key}, enforce_csrf_checks=True)


def assert_no_secret(response, *webhooks: Webhook) -> None:
    body = response.content.decode()
    for webhook in webhooks:
        assert webhook.secret not in body
        if webhook.previous_secret:
            assert webhook.previous_secret not in body
    assert "whsec_" not in body
    assert "secret" not in body


# --- GET /webhooks ------------------------------------------------------------------------


def test_a_key_lists_its_own_webhooks_with_their_state_and_backlog(key_client, ours, theirs):
    webhook_pause(webhook_id=ours[1].pk, reason="Paused by staff for maintenance.")
    record("update", "training", 7, 1)
    collect()

    response = key_client.get("/webhooks")

    assert response.status_code == 200
    results = response.json()["results"]
    assert [item["id"] for item in results] == [ours[0].pk, ours[1].pk]
    first, second = results
    assert first["name"] == "Ours A" and first["url"] == ours[0].url
    assert first["state"] == "healthy" and first["paused_reason"] is None
    assert first["pending_entries"] == 1
    assert first["oldest_pending_age_seconds"] >= 0
    assert first["oldest_pending_at"].endswith("Z")
    assert first["last_accepted_at"] is None
    assert first["last_accepted_delivery"] is None
    assert first["deliveries_url"] == f"{BASE}/webhooks/{ours[0].pk}/deliveries"
    assert second["state"] == "paused"
    assert second["paused_reason"] == "Paused by staff for maintenance."
    webhook_secret_rotate(webhook_id=ours[0].pk)
    assert_no_secret(key_client.get("/webhooks"), *Webhook.objects.all())


def test_failing_and_accepted_show_in_the_list(key_client, ours, partner):
    partner.then(status(500))
    record("update", "training", 7, 1)
    deliver(ours[0])
    failing = key_client.get(f"/webhooks/{ours[0].pk}").json()
    assert failing["state"] == "failing"
    assert failing["failing_since"] is not None

    make_retry_due(ours[0])
    deliver(ours[0])
    healthy = key_client.get(f"/webhooks/{ours[0].pk}").json()
    assert healthy["state"] == "healthy" and healthy["failing_since"] is None
    assert healthy["last_accepted_at"] is not None
    accepted = Delivery.objects.get(webhook=ours[0])
    assert healthy["last_accepted_delivery"] == {
        "message_id": accepted.message_id,
        "delivered_at": accepted.delivered_at.isoformat().replace("+00:00", "Z"),
        "url": f"{BASE}/webhooks/{ours[0].pk}/deliveries/{accepted.message_id}",
    }


def test_a_key_without_webhooks_sees_an_empty_list(ours):
    _, raw_key = api_key_create(name="Catalogue reader")
    response = Client(headers={"X-API-Key": raw_key}).get("/webhooks")
    assert response.status_code == 200
    assert response.json() == {"count": 0, "next": None, "previous": None, "results": []}
    assert Client(headers={"X-API-Key": raw_key}).get(f"/webhooks/{ours[0].pk}").status_code \
        == 404


def test_the_endpoints_need_a_key(ours):
    for path in ("/webhooks", f"/webhooks/{ours[0].pk}/deliveries"):
        assert Client().get(path).status_code == 401
    assert Client().post(f"/webhooks/{ours[0].pk}/resync").status_code == 401
    assert not Change.objects.exists()


# --- Another partner's webhook: 404, like one that does not exist ---------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/webhooks/{id}"),
        ("get", "/webhooks/{id}/deliveries"),
        ("get", "/webhooks/{id}/deliveries/{message}"),
        ("post", "/webhooks/{id}/resync"),
        ("post", "/webhooks/{id}/test"),
    ],
)
def test_another_partners_webhook_answers_404_like_a_missing_one(
    key_client, theirs, method, path
):
    record("update", "training", 7, 1)
    deliver(theirs)
    message = Delivery.objects.get(webhook=theirs).message_id

    answers = []
    for webhook_id in (theirs.pk, 999_999):
        response = getattr(key_client, method)(path.format(id=webhook_id, message=message))
        assert response.status_code == 404
        assert response.json()["error"] == "not_found"
        answers.append(response.json()["message"].replace(str(webhook_id), "N"))
    assert answers[0] == answers[1]  # nothing tells theirs from a missing one
    assert not Change.objects.exists()  # no resync was queued for them
    assert Delivery.objects.filter(webhook=theirs).count() == 1  # no test event either


def test_a_delivery_of_another_webhook_is_not_found_under_ours(key_client, ours, theirs):
    record("update", "training", 7, 1)
    deliver(theirs)
    message = Delivery.objects.get(webhook=theirs).message_id
    response = key_client.get(f"/webhooks/{ours[0].pk}/deliveries/{message}")
    assert response.status_code == 404


# --- Deliveries ---------------------------------------------------------------------------


def test_deliveries_come_newest_first_a_page_at_a_time_and_filter_by_state(
    key_client, ours, partner
):
    for object_id in range(3):
        record("update", "training", object_id, 1)
        deliver(ours[0])
    partner.then(status(503))
    record("update", "training", 99, 1)
    deliver(ours[0])
    deliveries = list(Delivery.objects.filter(webhook=ours[0]).order_by("-created_at", "-id"))

    first = key_client.get(f"/webhooks/{ours[0].pk}/deliveries", {"page_size": 2}).json()
    assert first["count"] == 4
    assert [item["message_id"] for item in first["results"]] == [
        d.message_id for d in deliveries[:2]
    ]
    assert first["results"][0]["state"] == "failing"
    assert first["results"][0]["last_status_code"] == 503
    assert first["previous"] is None
    assert first["next"] == f"{BASE}/webhooks/{ours[0].pk}/deliveries?page=2&page_size=2"
    second = key_client.get(f"/webhooks/{ours[0].pk}/deliveries?page=2&page_size=2").json()
    assert [item["message_id"] for item in second["results"]] == [
        d.message_id for d in deliveries[2:]
    ]
    assert second["next"] is None

    failing = key_client.get(f"/webhooks/{ours[0].pk}/deliveries", {"state": "failing"}).json()
    assert [item["message_id"] for item in failing["results"]] == [deliveries[0].message_id]
    delivered = key_client.get(f"/webhooks/{ours[0].pk}/deliveries?state=delivered").json()
    assert delivered["count"] == 3
    assert "state=delivered" in (
        key_client.get(f"/webhooks/{ours[0].pk}/deliveries?state=delivered&page_size=1")
        .json()["next"]
    )


@pytest.mark.parametrize(
    ("query", "status_code", "message"),
    [
        ("state=lost", 400, "state must be one of pending, failing, delivered; got 'lost'."),
        ("page=0", 400, "page must be a whole number, 1 or more, got '0'."),
        ("page=2", 404, "Page 2 does not exist: there is 1 page at page_size 100."),
    ],
)
def test_bad_delivery_list_parameters_are_json_errors(
    key_client, ours, query, status_code, message
):
    response = key_client.get(f"/webhooks/{ours[0].pk}/deliveries?{query}")
    assert response.status_code == status_code
    assert response.json()["message"] == message


def test_a_delivery_shows_its_payload_and_every_attempt(key_client, ours, partner):
    partner.then(
        Behaviour(status=500, body=b"database down, sorry"),
        status(429, **{"Retry-After": "1"}),
    )
    record("update", "training", 7, 1)
    deliver(ours[0])
    make_retry_due(ours[0])
    deliver(ours[0])
    make_retry_due(ours[0])
    deliver(ours[0])
    delivery = Delivery.objects.get(webhook=ours[0])

    response = key_client.get(f"/webhooks/{ours[0].pk}/deliveries/{delivery.message_id}")

    assert response.status_code == 200
    body = response.json()
    assert body["message_id"] == delivery.message_id
    assert body["state"] == "delivered"
    assert body["payload"] == json.loads(delivery.payload)
    assert body["payload"]["changes"][0]["id"] == 7
    attempts = body["attempts"]
    assert [a["number"] for a in attempts] == [1, 2, 3]
    assert [a["status_code"] for a in attempts] == [500, 429, 200]
    assert [a["accepted"] for a in attempts] == [False, False, True]
    assert attempts[0]["error_kind"] == "http_status"
    assert attempts[0]["response_body"] == "database down, sorry"
    assert attempts[2]["error_kind"] is None
    assert all(a["duration_seconds"] > 0 and a["started_at"].endswith("Z") for a in attempts)
    assert_no_secret(response, ours[0])


def test_an_unknown_message_id_is_404(key_client, ours):
    response = key_client.get(f"/webhooks/{ours[0].pk}/deliveries/msg_nope")
    assert response.status_code == 404
    assert response.json()["message"] == f"Webhook {ours[0].pk} has no delivery msg_nope."


@pytest.mark.parametrize("message_id", ["%00", "msg_%00", "%C3%A9", "x" * 65, "msg%20nope"])
def test_a_message_id_no_delivery_can_have_is_404(key_client, ours, message_id):
    # A NUL would reach PostgreSQL, which refuses it in a query: it never gets there.
    response = key_client.get(f"/webhooks/{ours[0].pk}/deliveries/{message_id}")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


# --- POST /webhooks/<id>/resync -------------------------------------------------------------


def test_a_resync_is_accepted_then_limited_with_retry_after(key_client, ours, settings):
    settings.WEBHOOK_RESYNC_INTERVAL = 600
    institutes = [Institute.objects.create(name=f"Institute {n}") for n in range(2)]
    collect()
    next_batch(ours[0]), next_batch(ours[1])

    response = key_client.post(f"/webhooks/{ours[0].pk}/resync")

    assert response.status_code == 202
    assert response.json()["institutes"] == 2
    assert [entry["action"] for entry in next_batch(ours[0])] == ["import", "import"]
    assert next_batch(ours[1]) is None

    again = key_client.post(f"/webhooks/{ours[0].pk}/resync")
    assert again.status_code == 429
    assert again.json()["error"] == "too_many_requests"
    assert 595 <= int(again["Retry-After"]) <= 600
    assert not Change.objects.exists()
    # The limit is per key too: another of its webhooks gets no resync of its own...
    other = key_client.post(f"/webhooks/{ours[1].pk}/resync")
    assert other.status_code == 429
    assert "queued for this API key" in other.json()["message"]
    # ... while another key of that webhook does.
    _, second_key = api_key_create(name="Our second key", webhook_ids=[ours[1].pk])
    second = Client(headers={"X-API-Key": second_key})
    assert second.post(f"/webhooks/{ours[1].pk}/resync").status_code == 202
    assert not Change.objects.filter(webhook_id=ours[0].pk).exists()

    # Once the interval has passed for the webhook and the key, it is accepted again.
    past = timezone.now() - timedelta(seconds=601)
    Webhook.objects.filter(pk=ours[0].pk).update(last_resync_at=past)
    assert key_client.post(f"/webhooks/{ours[0].pk}/resync").status_code == 429
    ApiKey.objects.update(last_resync_at=past)
    assert key_client.post(f"/webhooks/{ours[0].pk}/resync").status_code == 202
    assert len(institutes) == 2


def test_the_resync_interval_is_a_setting(key_client, ours, settings):
    settings.WEBHOOK_RESYNC_INTERVAL = 0
    assert key_client.post(f"/webhooks/{ours[0].pk}/resync").status_code == 202
    assert key_client.post(f"/webhooks/{ours[0].pk}/resync").status_code == 202


def test_resync_and_test_are_post_only(key_client, ours):
    for action in ("resync", "test"):
        response = key_client.get(f"/webhooks/{ours[0].pk}/{action}")
        assert response.status_code == 405
        assert response["Allow"] == "POST"
        assert response.json()["message"] == "GET is not allowed here: use POST."
    response = key_client.post("/webhooks")
    assert response.status_code == 405 and response["Allow"] == "GET, HEAD"


# --- POST /webhooks/<id>/test -------------------------------------------------------------


def test_a_test_event_is_queued_and_sent_signed(key_client, ours, partner):
    response = key_client.post(f"/webhooks/{ours[0].pk}/test")

    assert response.status_code == 202
    message_id = response.json()["message_id"]
    assert response.json()["url"] == f"{BASE}/webhooks/{ours[0].pk}/deliveries/{message_id}"
    deliver(ours[0])
    received = partner.wait_for(1)[0]
    assert received.headers["webhook-id"] == message_id
    assert received.json == {"changes": []}
    shown = key_client.get(f"/webhooks/{ours[0].pk}/deliveries/{message_id}").json()
    assert shown["is_test"] is True and shown["state"] == "delivered"


def test_a_test_event_waits_for_an_open_batch_409(key_client, ours, partner):
    partner.then(status(500))
    record("update", "training", 7, 1)
    deliver(ours[0])

    response = key_client.post(f"/webhooks/{ours[0].pk}/test")

    assert response.status_code == 409
    assert response.json()["error"] == "conflict"
    assert "has a batch waiting to be accepted" in response.json()["message"]


def test_test_events_are_limited_per_webhook_and_per_key_with_retry_after(
    key_client, ours, partner, settings
):
    settings.WEBHOOK_TEST_INTERVAL = 60
    assert key_client.post(f"/webhooks/{ours[0].pk}/test").status_code == 202
    deliver(ours[0])  # accepted: no batch waits any more

    again = key_client.post(f"/webhooks/{ours[0].pk}/test")
    assert again.status_code == 429
    assert again.json()["error"] == "too_many_requests"
    assert again.json()["message"].startswith(f"A test event was queued for {ours[0].name} at")
    assert 55 <= int(again["Retry-After"]) <= 60
    # The key's other webhook: limited by the key.
    other = key_client.post(f"/webhooks/{ours[1].pk}/test")
    assert other.status_code == 429 and "this API key" in other.json()["message"]
    # Another key of that webhook is not.
    _, second_key = api_key_create(name="Our second key", webhook_ids=[ours[1].pk])
    assert Client(headers={"X-API-Key": second_key}).post(
        f"/webhooks/{ours[1].pk}/test").status_code == 202
    assert Delivery.objects.filter(is_test=True).count() == 2
    # Staff are not limited, and their tests do not count.
    from deliveries.services import delivery_test_send

    before = Webhook.objects.get(pk=ours[0].pk).last_test_at
    delivery_test_send(webhook_id=ours[0].pk)
    assert Webhook.objects.get(pk=ours[0].pk).last_test_at == before

    deliver(ours[0])
    past = timezone.now() - timedelta(seconds=61)
    Webhook.objects.update(last_test_at=past)
    ApiKey.objects.update(last_test_at=past)
    assert key_client.post(f"/webhooks/{ours[0].pk}/test").status_code == 202


def test_a_refused_test_event_does_not_count(key_client, ours, partner, settings):
    settings.WEBHOOK_TEST_INTERVAL = 60
    webhook_pause(webhook_id=ours[0].pk)
    assert key_client.post(f"/webhooks/{ours[0].pk}/test").status_code == 409
    assert key_client.post(f"/webhooks/{ours[1].pk}/test").status_code == 202


def test_the_test_interval_is_a_setting(key_client, ours, partner, settings):
    settings.WEBHOOK_TEST_INTERVAL = 0
    for _ in range(2):
        assert key_client.post(f"/webhooks/{ours[0].pk}/test").status_code == 202
        deliver(ours[0])
    assert len(partner.wait_for(2)) == 2


def test_a_test_event_waiting_when_staff_change_the_url_is_dropped(
    key_client, ours, partner, admin_client, caplog, settings
):
    settings.WEBHOOK_TEST_INTERVAL = 0
    webhook = ours[0]
    partner.then(status(500))  # the old URL fails the test: it waits to be retried
    message_id = key_client.post(f"/webhooks/{webhook.pk}/test").json()["message_id"]
    deliver(webhook)
    assert len(partner.wait_for(1)) == 1

    new_url = partner.url_for("/new")
    response = admin_client.post(
        f"/admin/webhooks/webhook/{webhook.pk}/change/",
        {"name": webhook.name, "url": new_url, "description": "", "is_active": "on",
         "bundle_delay": ""},
        follow=True,
    )

    assert response.status_code == 200
    assert f"The test event {message_id} waiting for the old URL was dropped" in (
        response.content.decode()
    )
    assert Webhook.objects.get(pk=webhook.pk).url == new_url
    # Gone for the key that asked: no answer from the new URL is ever shown as the old one's.
    assert key_client.get(f"/webhooks/{webhook.pk}/deliveries/{message_id}").status_code == 404
    assert not Delivery.objects.filter(message_id=message_id).exists()
    assert f"event=test_event_dropped webhook={webhook.pk} delivery={message_id}" in caplog.text
    make_retry_due(webhook)
    deliver(webhook)
    assert [received.path for received in partner.received] == ["/a"]
    # A new test goes to the new URL.
    assert key_client.post(f"/webhooks/{webhook.pk}/test").status_code == 202
    deliver(webhook)
    assert partner.wait_for(2)[1].path == "/new"


def test_a_url_change_leaves_other_batches_alone(ours, partner, admin_client):
    webhook = ours[0]
    partner.then(status(500))
    record("update", "training", 7, 1)
    deliver(webhook)
    waiting = Delivery.objects.get(webhook=webhook)
    admin_client.post(
        f"/admin/webhooks/webhook/{webhook.pk}/change/",
        {"name": webhook.name, "url": partner.url_for("/new"), "description": "",
         "is_active": "on", "bundle_delay": ""},
    )
    assert Delivery.objects.get(webhook=webhook).pk == waiting.pk
