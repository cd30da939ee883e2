"""What a partner's code may do to its own webhooks and key (deliveries.api's partner
actions, apikeys.views): retry a failed delivery now, pause and resume, rotate the signing
secret, change the URL once the new one accepted a test, rotate or revoke its key. Each is
404 for another partner's webhook and recorded for staff."""

import pytest
from django.test import Client

from apikeys.models import ApiKey
from apikeys.services import api_key_create
from deliveries.models import Delivery
from tests.deliveries.helpers import deliver, record
from tests.support.partner import Behaviour, status
from webhooks.models import Webhook, WebhookAction
from webhooks.secrets import secret_fingerprint

pytestmark = pytest.mark.filterwarnings("ignore:No directory at:UserWarning")


@pytest.fixture
def ours(db, fast_delivery, partner) -> Webhook:
    return Webhook.objects.create(name="Ours", url=partner.url_for("/ours"))


@pytest.fixture
def theirs(db, fast_delivery, partner) -> Webhook:
    return Webhook.objects.create(name="Theirs", url=partner.url_for("/theirs"))


@pytest.fixture
def key(ours, theirs):
    api_key, raw_key = api_key_create(name="Our partner", webhook_ids=[ours.pk])
    api_key_create(name="The other partner", webhook_ids=[theirs.pk])
    api_key.client = Client(headers={"X-API-Key": raw_key}, enforce_csrf_checks=True)
    return api_key


def failing(webhook: Webhook, partner) -> Delivery:
    partner.then(Behaviour(status=500, body=b"boom"))
    record("update", "training", 7, 1)
    deliver(webhook)
    return Delivery.objects.get(webhook=webhook, state="failing")


def test_retry_now_sends_a_failed_delivery_again_with_the_same_id(key, ours, partner):
    delivery = failing(ours, partner)
    response = key.client.post(f"/webhooks/{ours.pk}/deliveries/{delivery.message_id}/retry")
    assert response.status_code == 202, response.content
    assert response.json()["message_id"] == delivery.message_id
    deliver(ours)
    delivery.refresh_from_db()
    assert delivery.state == "delivered" and delivery.attempt_count == 2
    again = key.client.post(f"/webhooks/{ours.pk}/deliveries/{delivery.message_id}/retry")
    assert again.status_code == 409 and "accepted already" in again.json()["message"]
    second = failing(ours, partner)
    key.client.post(f"/webhooks/{ours.pk}/pause")
    paused = key.client.post(f"/webhooks/{ours.pk}/deliveries/{second.message_id}/retry")
    assert paused.status_code == 409 and "resume" in paused.json()["message"]
    missing = key.client.post(f"/webhooks/{ours.pk}/deliveries/msg_nope/retry")
    assert missing.status_code == 404
    action = WebhookAction.objects.get(webhook=ours, action="resend")
    assert action.channel == "api" and action.api_key_id == key.pk


def test_pause_and_resume_through_the_api(key, ours):
    response = key.client.post(f"/webhooks/{ours.pk}/pause")
    assert response.status_code == 200 and response.json()["state"] == "paused"
    ours.refresh_from_db()
    assert not ours.is_active
    test = key.client.post(f"/webhooks/{ours.pk}/test")
    assert test.status_code == 409 and "resume it first" in test.json()["message"]
    response = key.client.post(f"/webhooks/{ours.pk}/resume")
    assert response.status_code == 200
    ours.refresh_from_db()
    assert ours.is_active
    assert list(WebhookAction.objects.filter(webhook=ours).order_by("id")
                .values_list("action", flat=True)) == ["pause", "resume"]


def test_a_test_event_refused_for_a_waiting_batch_points_to_the_partners_retry(
    key, ours, partner
):
    delivery = failing(ours, partner)
    response = key.client.post(f"/webhooks/{ours.pk}/test")
    assert response.status_code == 409
    message = response.json()["message"]
    assert delivery.message_id in message and "resend it now" in message
    assert "use retry now" not in message


def test_rotating_the_secret_answers_the_new_one_once(key, ours, partner):
    old = ours.secret
    response = key.client.post(f"/webhooks/{ours.pk}/rotate-secret")
    assert response.status_code == 200
    body = response.json()
    ours.refresh_from_db()
    assert body["secret"] == ours.secret != old and ours.previous_secret == old
    assert body["fingerprint"] == secret_fingerprint(ours.secret)
    assert "no-store" in response["Cache-Control"]
    # Both secrets sign meanwhile.
    record("update", "training", 8, 1)
    deliver(ours)
    assert len(partner.received[-1].headers["webhook-signature"].split(" ")) == 2
    assert ours.secret not in WebhookAction.objects.get(webhook=ours).outcome


def test_a_url_change_needs_the_new_url_to_accept_a_test(key, ours, partner, settings):
    old_url = ours.url
    partner.then(status(503))
    response = key.client.post(f"/webhooks/{ours.pk}/url", {"url": partner.url_for("/new")},
                               content_type="application/json")
    assert response.status_code == 409 and "HTTP 503" in response.json()["message"]
    ours.refresh_from_db()
    assert ours.url == old_url
    # The refused test was a POST to the address the partner named: it counts as a test.
    response = key.client.post(f"/webhooks/{ours.pk}/url", {"url": partner.url_for("/new")},
                               content_type="application/json")
    assert response.status_code == 429 and response.headers["Retry-After"]
    assert len(partner.received) == 1
    settings.WEBHOOK_TEST_INTERVAL = 0
    response = key.client.post(f"/webhooks/{ours.pk}/url", "not json",
                               content_type="application/json")
    assert response.status_code == 400 and "url" in response.json()["message"]
    settings.WEBHOOK_ALLOW_PRIVATE_URLS = False
    response = key.client.post(f"/webhooks/{ours.pk}/url", {"url": "http://127.0.0.1/x"},
                               content_type="application/json")
    assert response.status_code == 400 and response.json()["message"].startswith("url:")
    settings.WEBHOOK_ALLOW_PRIVATE_URLS = True
    response = key.client.post(f"/webhooks/{ours.pk}/url", {"url": partner.url_for("/new")},
                               content_type="application/json")
    assert response.status_code == 200, response.content
    ours.refresh_from_db()
    assert ours.url == partner.url_for("/new")
    record("update", "training", 9, 1)
    deliver(ours)
    assert partner.received[-1].path == "/new"


@pytest.mark.parametrize("action", ["pause", "resume", "rotate-secret", "url",
                                    "deliveries/msg_x/retry"])
def test_every_action_is_404_for_another_partners_webhook(key, theirs, action):
    before = Webhook.objects.get(pk=theirs.pk)
    response = key.client.post(f"/webhooks/{theirs.pk}/{action}", {"url": "https://x.test/"},
                               content_type="application/json")
    assert response.status_code == 404
    after = Webhook.objects.get(pk=theirs.pk)
    assert (after.is_active, after.secret, after.url) == (before.is_active, before.secret,
                                                          before.url)
    assert not WebhookAction.objects.exists()


def test_a_partner_rotates_then_revokes_its_own_key(key, ours):
    response = key.client.post("/api-key/rotate")
    assert response.status_code == 201
    new_raw = response.json()["key"]
    assert key.client.get("/webhooks").status_code == 401  # the old key stopped working
    new_client = Client(headers={"X-API-Key": new_raw})
    assert [item["id"] for item in new_client.get("/webhooks").json()["results"]] == [ours.pk]
    assert ApiKey.objects.get(pk=key.pk).is_active is False
    response = new_client.post("/api-key/revoke")
    assert response.status_code == 200
    assert new_client.get("/webhooks").status_code == 401
    assert list(WebhookAction.objects.filter(webhook=ours).order_by("id")
                .values_list("action", flat=True)) == ["rotate_api_key", "revoke_api_key"]
    assert new_raw not in " ".join(WebhookAction.objects.values_list("outcome", flat=True))


def test_the_webhook_list_is_a_page_like_the_other_lists(db, fast_delivery, settings):
    webhooks = [Webhook.objects.create(name=f"Hook {n}", url=f"https://h{n}.example/")
                for n in range(3)]
    _, raw = api_key_create(name="Many", webhook_ids=[w.pk for w in webhooks])
    client = Client(headers={"X-API-Key": raw})
    first = client.get("/webhooks?page_size=2").json()
    assert first["count"] == 3 and len(first["results"]) == 2 and first["previous"] is None
    assert first["next"] == "https://api.example.test/webhooks?page=2&page_size=2"
    second = client.get("/webhooks?page=2&page_size=2").json()
    assert [item["name"] for item in second["results"]] == ["Hook 2"]
    assert second["next"] is None and second["previous"].endswith("page=1&page_size=2")
    assert client.get("/webhooks?page=x").status_code == 400
    assert client.get("/webhooks?page=3&page_size=2").status_code == 404


def test_an_attempt_never_starts_before_its_delivery_was_made(key, ours, partner):
    for number in range(5):
        record("update", "training", 100 + number, 1)
        deliver(ours)
    for delivery in Delivery.objects.filter(webhook=ours).prefetch_related("attempts"):
        for attempt in delivery.attempts.all():
            assert attempt.started_at >= delivery.created_at, (delivery, attempt)
    answer = key.client.get(f"/webhooks/{ours.pk}/deliveries").json()["results"][0]
    detail = key.client.get(answer["url"].replace("https://api.example.test", "")).json()
    assert detail["attempts"][0]["started_at"] >= detail["created_at"]
