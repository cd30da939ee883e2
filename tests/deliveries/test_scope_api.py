"""The partner's own scope (deliveries.api): shown in GET /webhooks/<id>, replaced with
PUT /webhooks/<id>/scope (validated, limited as a resync when it imports), and another
partner's webhook is 404."""

import json

import pytest
from django.test import Client

from apikeys.models import ApiKey
from apikeys.services import api_key_create
from catalog.models import Institute
from tests.deliveries.helpers import collect, keys, next_batch, pass_everything
from webhooks.models import Webhook

pytestmark = pytest.mark.filterwarnings("ignore:No directory at:UserWarning")


@pytest.fixture
def institutes(db, fast_delivery) -> list[Institute]:
    return [Institute.objects.create(name=f"Institute {n}") for n in range(3)]


@pytest.fixture
def ours(institutes) -> Webhook:
    webhook = Webhook.objects.create(
        name="Ours", url="https://ours.example/hook", scope_institutes=[institutes[0].pk]
    )
    collect()
    pass_everything()
    return webhook


@pytest.fixture
def theirs(institutes) -> Webhook:
    return Webhook.objects.create(name="Theirs", url="https://theirs.example/hook")


@pytest.fixture
def client(ours, theirs) -> Client:
    _, raw_key = api_key_create(name="Our partner", webhook_ids=[ours.pk])
    api_key_create(name="Their partner", webhook_ids=[theirs.pk])
    return Client(headers={"X-API-Key": raw_key}, enforce_csrf_checks=True)


def put(client: Client, webhook: Webhook, body) -> object:
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.put(f"/webhooks/{webhook.pk}/scope", data, content_type="application/json")


def test_the_webhook_shows_its_scope(client, ours, institutes):
    answer = client.get(f"/webhooks/{ours.pk}").json()
    assert answer["scope"] == {"institutes": [institutes[0].pk],
                               "objects": ["institute", "training"]}


def test_a_put_replaces_the_scope_and_sends_what_entered_and_left(client, ours, institutes):
    first, second, _ = institutes
    response = put(client, ours, {"institutes": [second.pk], "objects": ["institute"]})
    assert response.status_code == 200, response.content
    answer = response.json()
    assert answer["scope"] == {"institutes": [second.pk], "objects": ["institute"]}
    assert (answer["imported"], answer["destroyed"]) == (1, 1)
    assert client.get(f"/webhooks/{ours.pk}").json()["scope"] == answer["scope"]
    assert keys(next_batch(ours)) == [
        ("destroy", "institute", first.pk), ("import", "institute", second.pk)
    ]
    # Back to the whole catalogue (a widening: the resync limit, per webhook and per key).
    assert put(client, ours, {"institutes": None, "objects": ["institute"]}).status_code == 429
    Webhook.objects.filter(pk=ours.pk).update(last_resync_at=None)
    ApiKey.objects.update(last_resync_at=None)
    response = put(client, ours, {"institutes": None, "objects": ["training", "institute"]})
    assert response.json()["scope"] == {"institutes": None,
                                        "objects": ["institute", "training"]}


def test_unknown_institutes_are_a_json_400_naming_them(client, ours, institutes):
    response = put(client, ours, {"institutes": [institutes[1].pk, 9998, 9999],
                                  "objects": ["institute", "training"]})
    assert response.status_code == 400
    assert response.json()["error"] == "bad_request"
    assert "9998, 9999" in response.json()["message"]
    assert Webhook.objects.get(pk=ours.pk).scope_institutes == [institutes[0].pk]


@pytest.mark.parametrize("body", [
    "not json", "[]", {"institutes": None}, {"institutes": None, "objects": [], "x": 1},
    {"institutes": [], "objects": ["institute"]},
    {"institutes": [0], "objects": ["institute"]},
    {"institutes": [True], "objects": ["institute"]},
    {"institutes": ["1"], "objects": ["institute"]},
    {"institutes": [2**63], "objects": ["institute"]},
    {"institutes": None, "objects": []},
    {"institutes": None, "objects": ["course"]},
    {"institutes": None, "objects": ["institute", "institute"]},
    {"institutes": None, "objects": "institute"},
    {"institutes": 3, "objects": ["institute"]},
])
def test_a_malformed_scope_is_a_json_400(client, ours, body):
    response = put(client, ours, body)
    assert response.status_code == 400
    assert response.json()["error"] == "bad_request"
    assert response.json()["message"]


def test_a_widening_is_limited_as_a_resync_is(client, ours, institutes):
    wide = {"institutes": [i.pk for i in institutes], "objects": ["institute", "training"]}
    assert put(client, ours, wide).status_code == 200
    narrow = {"institutes": [institutes[0].pk], "objects": ["institute", "training"]}
    assert put(client, ours, narrow).status_code == 200, "a narrowing sends no import"
    refused = put(client, ours, wide)
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) > 0
    assert client.post(f"/webhooks/{ours.pk}/resync").status_code == 429


def test_another_partners_webhook_is_404(client, theirs):
    response = put(client, theirs, {"institutes": None, "objects": ["institute"]})
    assert response.status_code == 404
    assert Webhook.objects.get(pk=theirs.pk).scope_objects == "all"


def test_only_put_is_allowed(client, ours):
    assert client.post(f"/webhooks/{ours.pk}/scope").status_code == 405
