"""What was sent, in order (GET /webhooks/<id>/changes), a replay of it (POST …/replay),
and the lag (GET /webhooks/<id>, /metrics): a partner that lost its database replays from
its last applied position or from a time."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from apikeys.services import api_key_create
from changes.models import Change
from deliveries.models import Delivery
from deliveries.services import deliveries_prune
from tests.deliveries.helpers import collect, keys, next_batch, record
from webhooks.models import Webhook

pytestmark = pytest.mark.filterwarnings("ignore:No directory at:UserWarning")
BASE = "https://api.example.test"


@pytest.fixture
def ours(db, fast_delivery) -> Webhook:
    return Webhook.objects.create(name="Ours", url="https://partner.example/hook")


@pytest.fixture
def theirs(db, fast_delivery) -> Webhook:
    return Webhook.objects.create(name="Theirs", url="https://other.example/hook")


@pytest.fixture
def key_client(ours, theirs) -> Client:
    _, raw_key = api_key_create(name="Our partner", webhook_ids=[ours.pk])
    api_key_create(name="Other partner", webhook_ids=[theirs.pk])
    return Client(headers={"X-API-Key": raw_key}, enforce_csrf_checks=True)


def send_batches(*webhooks: Webhook, count: int) -> list[list[tuple]]:
    """`count` batches to each webhook, each updating two trainings; what each carried."""
    sent = []
    for number in range(count):
        record("update", "training", 100 + number, 1)
        record("update", "training", 200 + number, 1)
        collect()
        for webhook in webhooks:
            entries = next_batch(webhook)
            if webhook is webhooks[0]:
                sent.append(keys(entries))
    return sent


# --- GET /webhooks/<id>/changes -------------------------------------------------------------


def test_the_feed_gives_the_batches_in_the_order_sent_a_page_at_a_time(key_client, ours,
                                                                        theirs):
    sent = send_batches(ours, theirs, count=5)
    Delivery.objects.create(webhook=ours, message_id="msg_test", payload='{"changes":[]}',
                            entry_count=0, is_test=True, state="delivered")

    first = key_client.get(f"/webhooks/{ours.pk}/changes?page_size=2").json()
    assert [keys(batch["changes"]) for batch in first["results"]] == sent[:2]
    positions = [batch["position"] for batch in first["results"]]
    assert positions == sorted(positions)
    for batch in first["results"]:
        delivery = Delivery.objects.get(pk=batch["position"])
        assert delivery.webhook_id == ours.pk and batch["message_id"] == delivery.message_id
        assert batch["state"] == "delivered"
    assert first["position"] == positions[-1]
    assert first["next"] == f"{BASE}/webhooks/{ours.pk}/changes?after={positions[-1]}&page_size=2"

    rest, url = [], first["next"]
    while url:
        page = key_client.get(url.removeprefix(BASE)).json()
        rest.extend(page["results"])
        url = page["next"]
    assert [keys(batch["changes"]) for batch in rest] == sent[2:]
    # Read by message id (a partner knows the webhook-id it last applied).
    by_message = key_client.get(
        f"/webhooks/{ours.pk}/changes?after={first['results'][-1]['message_id']}"
    ).json()
    assert [batch["position"] for batch in by_message["results"]] == [
        batch["position"] for batch in rest
    ]
    # At the end: nothing more, and the position stays where it was.
    last = key_client.get(f"/webhooks/{ours.pk}/changes?after={rest[-1]['position']}").json()
    assert last["results"] == [] and last["next"] is None
    assert last["position"] == rest[-1]["position"]
    assert last["latest_position"] == Delivery.objects.filter(webhook=ours).latest("id").pk


def test_a_position_no_longer_retained_answers_410_saying_to_resync(key_client, ours,
                                                                   settings):
    send_batches(ours, count=3)
    oldest = Delivery.objects.filter(webhook=ours).order_by("id").first()
    Delivery.objects.filter(pk=oldest.pk).update(delivered_at=timezone.now() - timedelta(days=40))
    settings.WEBHOOK_RETENTION_DAYS = 30
    assert deliveries_prune() == 1

    for after in (oldest.pk, oldest.message_id):
        response = key_client.get(f"/webhooks/{ours.pk}/changes?after={after}")
        assert response.status_code == 410
        assert response.json()["error"] == "gone"
        assert "resync" in response.json()["message"]
    # From the start of what is retained, the two batches left.
    assert len(key_client.get(f"/webhooks/{ours.pk}/changes").json()["results"]) == 2
    # Even when every batch of the webhook was pruned.
    last = Delivery.objects.filter(webhook=ours).latest("id")
    Delivery.objects.filter(webhook=ours).update(delivered_at=timezone.now() - timedelta(days=40))
    assert deliveries_prune() == 2
    response = key_client.get(f"/webhooks/{ours.pk}/changes?after={last.pk}")
    assert response.status_code == 410
    assert key_client.get(f"/webhooks/{ours.pk}/changes").json()["results"] == []


@pytest.mark.parametrize(
    ("query", "named"),
    [("after=-1", "after"), ("after=abc", "after"), ("after=99999999", "after"),
     ("page_size=0", "page_size"), ("page_size=x", "page_size")],
)
def test_bad_feed_parameters_answer_a_json_400_naming_them(key_client, ours, query, named):
    send_batches(ours, count=1)
    response = key_client.get(f"/webhooks/{ours.pk}/changes?{query}")
    assert response.status_code == 400
    assert response.json()["error"] == "bad_request"
    assert named in response.json()["message"]


# --- POST /webhooks/<id>/replay -------------------------------------------------------------


def test_a_replay_sends_the_entries_since_a_time_again_coalesced_with_what_waits(
    key_client, ours, theirs, settings
):
    settings.WEBHOOK_RESYNC_INTERVAL = 600
    send_batches(ours, theirs, count=3)
    since = Delivery.objects.filter(webhook=ours).order_by("id")[1].created_at
    record("destroy", "training", 102, 1)  # waiting, not sent yet
    record("update", "training", 999, 1)

    response = key_client.post(
        f"/webhooks/{ours.pk}/replay", {"since": since.isoformat()}, content_type="application/json"
    )

    assert response.status_code == 202, response.content
    assert response.json()["batches"] == 2 and response.json()["entries"] == 4
    again = next_batch(ours)
    # The waiting destroy was recorded first; the replayed update of the same object
    # coalesces with it (a later update wins), the others go out in the order sent.
    assert sorted(keys(again)) == sorted([
        ("update", "training", 101), ("update", "training", 201),
        ("update", "training", 102), ("update", "training", 202),
        ("update", "training", 999),
    ])
    assert not any(entry[2] == 100 for entry in keys(again))
    # The other webhook receives only what everyone does.
    assert sorted(keys(next_batch(theirs))) == [
        ("destroy", "training", 102), ("update", "training", 999)
    ]
    # A replay and a resync share the rate limit.
    limited = key_client.post(f"/webhooks/{ours.pk}/resync")
    assert limited.status_code == 429 and int(limited["Retry-After"]) > 0
    limited = key_client.post(f"/webhooks/{ours.pk}/replay?since={since.isoformat()}".replace(
        "+", "%2B"))
    assert limited.status_code == 429


def test_a_replay_since_by_query_parameter(key_client, ours):
    send_batches(ours, count=2)
    since = (timezone.now() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    response = key_client.post(f"/webhooks/{ours.pk}/replay?since={since}")
    assert response.status_code == 202
    assert response.json()["entries"] == 4
    assert Change.objects.filter(webhook_id=ours.pk).count() == 4


@pytest.mark.parametrize(
    "since",
    ["yesterday", "2026-11-29", "2026-11-29T10:00:00", None, 17, "2999-01-01T00:00:00Z",
     "2000-01-01T00:00:00Z"],
)
def test_bad_replay_times_answer_a_json_400_naming_since(key_client, ours, since):
    body = {} if since is None else {"since": since}
    response = key_client.post(f"/webhooks/{ours.pk}/replay", body,
                               content_type="application/json")
    assert response.status_code == 400
    assert "since" in response.json()["message"]
    assert not Change.objects.exists()


def test_a_replay_body_that_is_not_json_is_a_400(key_client, ours):
    response = key_client.post(f"/webhooks/{ours.pk}/replay", "{since", content_type="text/plain")
    assert response.status_code == 400 and "JSON" in response.json()["message"]


# --- Every new endpoint: others' webhooks, keys without webhooks ----------------------------


@pytest.mark.parametrize(("method", "path"), [("get", "changes"), ("post", "replay")])
def test_another_partners_webhook_answers_404(key_client, theirs, method, path):
    response = getattr(key_client, method)(
        f"/webhooks/{theirs.pk}/{path}?since=2026-01-01T00:00:00Z"
    )
    assert response.status_code == 404 and response.json()["error"] == "not_found"


@pytest.mark.parametrize(("method", "path"), [("get", "changes"), ("post", "replay")])
def test_a_key_without_webhooks_answers_404(db, ours, method, path):
    _, raw_key = api_key_create(name="Catalogue only")
    client = Client(headers={"X-API-Key": raw_key})
    response = getattr(client, method)(f"/webhooks/{ours.pk}/{path}")
    assert response.status_code == 404


def test_replay_is_post_only_and_changes_get_only(key_client, ours):
    assert key_client.get(f"/webhooks/{ours.pk}/replay").status_code == 405
    assert key_client.post(f"/webhooks/{ours.pk}/changes").status_code == 405


# --- Lag ------------------------------------------------------------------------------------


def test_the_lag_counts_waiting_entries_and_the_open_batch(key_client, ours, client,
                                                          admin_user, settings):
    settings.METRICS_TOKEN = ""
    record("update", "training", 1, 1)
    record("update", "training", 2, 1)
    collect()
    from deliveries.services import delivery_claim

    assert delivery_claim(webhook_id=ours.pk) is not None  # the open batch: 2 entries
    Delivery.objects.filter(webhook=ours).update(created_at=timezone.now() - timedelta(minutes=5))
    record("update", "training", 3, 1)
    collect()

    shown = key_client.get(f"/webhooks/{ours.pk}").json()

    assert shown["pending_entries"] == 1
    assert shown["unaccepted_entries"] == 3
    assert 299 <= shown["lag_seconds"] < 400
    assert shown["oldest_unaccepted_at"].endswith("Z")
    assert shown["changes_url"] == f"{BASE}/webhooks/{ours.pk}/changes"
    metrics = client.get("/metrics").content.decode()
    line = next(
        row for row in metrics.splitlines()
        if row.startswith("springhook_webhook_unaccepted_entries{") and f'"{ours.pk}"' in row
    )
    assert line.endswith(" 3.0")
    lag_line = next(
        row for row in metrics.splitlines()
        if row.startswith("springhook_webhook_lag_seconds{") and f'"{ours.pk}"' in row
    )
    assert 299 <= float(lag_line.rsplit(" ", 1)[1]) < 400
    client.force_login(admin_user)
    page = client.get(f"/admin/webhooks/webhook/{ours.pk}/health/").content.decode()
    assert "not accepted yet (lag)" in page and "3 entries" in page
    dashboard = client.get("/admin/webhooks/webhook/health/").content.decode()
    assert "not accepted (lag)" in dashboard


def test_no_lag_when_everything_was_accepted(key_client, ours):
    send_batches(ours, count=1)
    shown = key_client.get(f"/webhooks/{ours.pk}").json()
    assert shown["unaccepted_entries"] == 0
    assert shown["lag_seconds"] is None and shown["oldest_unaccepted_at"] is None
