"""The OpenAPI document: valid OpenAPI 3.1, served, and true to what the code does.

Its schemas are checked against real answers of the API (through the test client) and a
real delivery (changes recorded, collected, claimed, and sent to a real local partner),
and its own examples against its schemas.
"""

import copy
import json
from datetime import timedelta

import jsonschema
import pytest
from django.test import Client
from django.utils import timezone
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

from apikeys.services import api_key_create
from catalog.models import Training
from catalog.services import FeedRecord, import_run
from deliveries.models import Delivery
from deliveries.services import delivery_claim, delivery_send, delivery_test_send
from springhook.openapi import openapi_document
from tests.deliveries.helpers import collect, deliver, make_retry_due, record
from tests.support.partner import status as answer
from webhooks.models import Webhook
from webhooks.services import webhook_secret_rotate


@pytest.fixture
def document(settings) -> dict:
    settings.API_BASE_URL = "https://api.example.test"
    return openapi_document()


def schema_validator(document: dict, schema: dict) -> jsonschema.Draft202012Validator:
    """A validator for `schema` whose `#/components/...` references resolve in `document`."""
    wrapped = {"$schema": "https://json-schema.org/draft/2020-12/schema",
               "components": document["components"], **schema}
    return jsonschema.Draft202012Validator(
        wrapped, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def check(document: dict, schema: dict, instance) -> None:
    errors = sorted(schema_validator(document, schema).iter_errors(instance), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def response_schema(document: dict, route: str, status: int, method: str = "get") -> dict:
    response = document["paths"][route][method]["responses"][str(status)]
    return response["content"]["application/json"]["schema"]


def test_the_document_is_valid_openapi_3_1(document):
    validate(document)
    assert document["openapi"].startswith("3.1")
    # The validator does reject a broken document (so the line above proves something).
    broken = copy.deepcopy(document)
    del broken["webhooks"]["changes"]["post"]["responses"]["410"]["description"]
    with pytest.raises(OpenAPIValidationError):
        validate(broken)


def test_it_is_served_without_an_api_key(client, settings):
    settings.API_BASE_URL = "http://api.partner.test"
    response = client.get("/openapi.json")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    served = response.json()
    validate(served)
    assert served["servers"] == [{"url": "http://api.partner.test"}]
    assert client.post("/openapi.json").status_code == 405


def test_every_example_matches_its_schema(document):
    checked = 0
    for name, schema in document["components"]["schemas"].items():
        if "example" in schema:
            check(document, {"$ref": f"#/components/schemas/{name}"}, schema["example"])
            checked += 1
    operations = [operation for item in document["paths"].values()
                  for operation in item.values()]
    operations.append(document["webhooks"]["changes"]["post"])
    for operation in operations:
        for parameter in operation.get("parameters", []):
            if "example" in parameter:
                check(document, parameter["schema"], parameter["example"])
                checked += 1
        bodies = [operation.get("requestBody", {})] + list(operation["responses"].values())
        for body in bodies:
            media = body.get("content", {}).get("application/json", {})
            if "example" in media:
                check(document, media["schema"], media["example"])
                checked += 1
    assert checked >= 10


@pytest.fixture
def api(db) -> Client:
    _, key = api_key_create(name="OpenAPI test")
    return Client(headers={"X-API-Key": key})


def test_real_api_answers_match_the_response_schemas(document, api, institute, settings):
    settings.API_BASE_URL = "https://api.example.test"
    first = Training.objects.create(institute=institute, reference="A", name="A", price="12.5")
    Training.objects.create(institute=institute, reference="B", name="B")
    base = f"/institutes/{institute.pk}"
    answers = [
        ("/trainings/{training_id}", f"/trainings/{first.pk}", 200),
        ("/trainings/{training_id}.json", f"/trainings/{first.pk}.json", 200),
        ("/institutes/{institute_id}", base, 200),
        ("/institutes/{institute_id}/trainings", f"{base}/trainings?page_size=1", 200),
        ("/institutes/{institute_id}/trainings", f"{base}/trainings?page=2&page_size=1", 200),
        ("/institutes/{institute_id}/trainings", f"{base}/trainings?page=x", 400),
        ("/institutes/{institute_id}/trainings", f"{base}/trainings?page=9", 404),
        ("/trainings/{training_id}", "/trainings/999999", 404),
        ("/institutes/{institute_id}", "/institutes/999999", 404),
        ("/institutes", "/institutes?page_size=1", 200),
        ("/institutes.json", "/institutes.json?updated_since=2026-01-01T00:00:00Z", 200),
        ("/institutes", "/institutes?updated_since=yesterday", 400),
        ("/trainings", "/trainings?page_size=1", 200),
        ("/trainings", "/trainings?after=nonsense", 400),
    ]
    for route, url, status in answers:
        response = api.get(url)
        assert response.status_code == status, url
        check(document, response_schema(document, route, status), response.json())

    unauthorized = Client().get(f"/trainings/{first.pk}")
    assert unauthorized.status_code == 401
    check(document, response_schema(document, "/trainings/{training_id}", 401),
          unauthorized.json())
    refused = api.post(f"/trainings/{first.pk}")
    assert refused.status_code == 405
    check(document, response_schema(document, "/trainings/{training_id}", 405), refused.json())
    # The documented routes are the served ones: nothing documented is missing.
    for route, item in document["paths"].items():
        if route.startswith(("/webhooks", "/portal-links", "/api-key/")):
            continue  # served to a partner's key: test_real_partner_answers_match...
        url = route.replace("{training_id}", str(first.pk)).replace(
            "{institute_id}", str(institute.pk)
        )
        assert list(item) == ["get"]
        assert api.get(url).status_code == 200, route


def test_real_partner_answers_match_the_response_schemas(
    document, db, fast_delivery, partner, institute, settings
):
    settings.API_BASE_URL = "https://api.example.test"
    ours = Webhook.objects.create(name="Ours", url=partner.url_for("/ours"))
    theirs = Webhook.objects.create(name="Theirs", url=partner.url_for("/theirs"))
    _, key = api_key_create(name="Partner", webhook_ids=[ours.pk])
    client = Client(headers={"X-API-Key": key})
    partner.then(answer(500))
    record("update", "training", 7, institute.pk)
    deliver(ours)
    message = Delivery.objects.get(webhook=ours).message_id
    hook = f"/webhooks/{ours.pk}"
    answers = [
        ("get", "/webhooks", "/webhooks", 200),
        ("get", "/webhooks/{webhook_id}", hook, 200),
        ("get", "/webhooks/{webhook_id}", f"/webhooks/{theirs.pk}", 404),
        ("get", "/webhooks/{webhook_id}/deliveries", f"{hook}/deliveries", 200),
        ("get", "/webhooks/{webhook_id}/deliveries", f"{hook}/deliveries?state=x", 400),
        ("get", "/webhooks/{webhook_id}/deliveries", f"{hook}/deliveries?page=3", 404),
        ("get", "/webhooks/{webhook_id}/deliveries/{message_id}",
         f"{hook}/deliveries/{message}", 200),
        ("get", "/webhooks/{webhook_id}/deliveries/{message_id}", f"{hook}/deliveries/x", 404),
        ("post", "/webhooks/{webhook_id}/test", f"{hook}/test", 409),
        ("post", "/webhooks/{webhook_id}/resync", f"{hook}/resync", 202),
        ("post", "/webhooks/{webhook_id}/resync", f"{hook}/resync", 429),
        ("post", "/webhooks/{webhook_id}/resync", f"/webhooks/{theirs.pk}/resync", 404),
        ("get", "/webhooks/{webhook_id}/resync", f"{hook}/resync", 405),
        ("get", "/webhooks", "/webhooks", 200),
    ]
    for method, route, url, code in answers:
        response = getattr(client, method)(url)
        assert response.status_code == code, (method, url, response.content)
        documented = document["paths"][route]["post" if route.endswith(("/resync", "/test"))
                                              else "get"]["responses"]
        schema = documented[str(code)]["content"]["application/json"]["schema"]
        check(document, schema, response.json())
        if code == 429:
            assert "Retry-After" in documented["429"]["headers"]
    make_retry_due(ours)
    deliver(ours)
    response = client.post(f"{hook}/test")
    assert response.status_code == 202
    check(document, response_schema(document, "/webhooks/{webhook_id}/test", 202, "post"),
          response.json())
    deliver(ours)
    too_soon = client.post(f"{hook}/test")
    assert too_soon.status_code == 429, too_soon.content
    check(document, response_schema(document, "/webhooks/{webhook_id}/test", 429, "post"),
          too_soon.json())
    assert "Retry-After" in too_soon and "Retry-After" in document["paths"][
        "/webhooks/{webhook_id}/test"]["post"]["responses"]["429"]["headers"]
    # Every documented partner route is served.
    assert {route for route in document["paths"] if route.startswith("/webhooks")} == {
        "/webhooks", "/webhooks/{webhook_id}", "/webhooks/{webhook_id}/deliveries",
        "/webhooks/{webhook_id}/deliveries/{message_id}", "/webhooks/{webhook_id}/resync",
        "/webhooks/{webhook_id}/test", "/webhooks/{webhook_id}/scope", *MIRROR_ROUTES,
        *PARTNER_ACTION_ROUTES,
    }


# --- The digest, the ordered feed, replay ---------------------------------------------------

MIRROR_ROUTES = {
    "/webhooks/{webhook_id}/digest", "/webhooks/{webhook_id}/changes",
    "/webhooks/{webhook_id}/replay",
}


def test_real_digest_feed_and_replay_answers_match_the_schemas(
    document, db, fast_delivery, institute, settings
):
    settings.API_BASE_URL = "https://api.example.test"
    ours = Webhook.objects.create(name="Ours", url="https://partner.example/ours")
    theirs = Webhook.objects.create(name="Theirs", url="https://partner.example/theirs")
    _, key = api_key_create(name="Partner", webhook_ids=[ours.pk])
    client = Client(headers={"X-API-Key": key})
    trainings = Training.objects.bulk_create(
        Training(institute=institute, reference=f"R{n}", name="x") for n in range(150)
    )
    first, last = trainings[0].pk, trainings[-1].pk
    record("update", "training", first, institute.pk)
    record("destroy", "training", 424242, institute.pk)
    collect()
    claim = delivery_claim(webhook_id=ours.pk)
    assert claim is not None
    hook = f"/webhooks/{ours.pk}"
    answers = [
        ("get", "/webhooks/{webhook_id}/digest", hook + "/digest", 200),
        ("get", "/webhooks/{webhook_id}/digest",
         f"{hook}/digest?kind=training&from_id={first}&to_id={last}", 200),
        ("get", "/webhooks/{webhook_id}/digest",
         f"{hook}/digest?kind=training&from_id={first}&to_id={first + 5}", 200),
        ("get", "/webhooks/{webhook_id}/digest", f"{hook}/digest?kind=x", 400),
        ("get", "/webhooks/{webhook_id}/digest", f"/webhooks/{theirs.pk}/digest", 404),
        ("get", "/webhooks/{webhook_id}/changes", f"{hook}/changes", 200),
        ("get", "/webhooks/{webhook_id}/changes", f"{hook}/changes?after=x", 400),
        ("get", "/webhooks/{webhook_id}/changes", f"{hook}/changes?after=msg_gone", 410),
        ("get", "/webhooks/{webhook_id}/changes", f"/webhooks/{theirs.pk}/changes", 404),
        ("post", "/webhooks/{webhook_id}/replay", f"{hook}/replay?since=2026-01-01", 400),
        ("post", "/webhooks/{webhook_id}/replay",
         f"{hook}/replay?since=2000-01-01T00:00:00Z", 400),
        ("post", "/webhooks/{webhook_id}/replay", f"/webhooks/{theirs.pk}/replay", 404),
        ("get", "/webhooks/{webhook_id}", hook, 200),
    ]
    for method, route, url, code in answers:
        response = getattr(client, method)(url)
        assert response.status_code == code, (method, url, response.content)
        check(document, response_schema(document, route, code, method), response.json())
    feed = client.get(f"{hook}/changes").json()
    assert [change["id"] for change in feed["results"][0]["changes"]] == [first, 424242]
    since = (timezone.now() - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    for code in (202, 429):
        response = client.post(f"{hook}/replay?since={since}")
        assert response.status_code == code
        check(document, response_schema(document, "/webhooks/{webhook_id}/replay", code,
                                        "post"), response.json())


PARTNER_ACTION_ROUTES = {
    "/webhooks/{webhook_id}/deliveries/{message_id}/retry", "/webhooks/{webhook_id}/pause",
    "/webhooks/{webhook_id}/resume", "/webhooks/{webhook_id}/rotate-secret",
    "/webhooks/{webhook_id}/url",
}


def test_real_partner_action_answers_match_the_response_schemas(
    document, db, fast_delivery, partner, institute, settings
):
    settings.API_BASE_URL = "https://api.example.test"
    ours = Webhook.objects.create(name="Ours", url=partner.url_for("/ours"))
    theirs = Webhook.objects.create(name="Theirs", url=partner.url_for("/theirs"))
    _, key = api_key_create(name="Partner", webhook_ids=[ours.pk])
    client = Client(headers={"X-API-Key": key})
    partner.then(answer(500))
    record("update", "training", 7, institute.pk)
    deliver(ours)
    message = Delivery.objects.get(webhook=ours).message_id
    hook = f"/webhooks/{ours.pk}"
    retry = "/webhooks/{webhook_id}/deliveries/{message_id}/retry"
    answers = [
        (retry, f"{hook}/deliveries/{message}/retry", None, 202),
        (retry, f"{hook}/deliveries/msg_x/retry", None, 404),
        ("/webhooks/{webhook_id}/pause", f"{hook}/pause", None, 200),
        ("/webhooks/{webhook_id}/pause", f"/webhooks/{theirs.pk}/pause", None, 404),
        ("/webhooks/{webhook_id}/resume", f"{hook}/resume", None, 200),
        ("/webhooks/{webhook_id}/rotate-secret", f"{hook}/rotate-secret", None, 200),
        ("/webhooks/{webhook_id}/url", f"{hook}/url", {"url": "x"}, 400),
        ("/webhooks/{webhook_id}/url", f"{hook}/url", {"url": partner.url_for("/n")}, 409),
        ("/webhooks/{webhook_id}/url", f"{hook}/url", {"url": partner.url_for("/n")}, 200),
        ("/portal-links", "/portal-links", {"can_act": True}, 201),
        ("/portal-links", "/portal-links", {"can_act": 1}, 400),
    ]
    partner.then(answer(500))  # for the first URL change; the second is accepted
    settings.WEBHOOK_TEST_INTERVAL = 0  # each URL change's test POST counts as a test event
    for route, url, body, code in answers:
        response = client.post(url, body, content_type="application/json")
        assert response.status_code == code, (url, response.content)
        check(document, response_schema(document, route, code, "post"), response.json())
        refused = client.get(url)
        assert refused.status_code == 405
        check(document, response_schema(document, route, 405, "post"), refused.json())
    settings.WEBHOOK_TEST_INTERVAL = 600
    response = client.post(f"{hook}/url", {"url": partner.url_for("/m")},
                           content_type="application/json")
    assert response.status_code == 429
    check(document, response_schema(document, "/webhooks/{webhook_id}/url", 429, "post"),
          response.json())
    response = client.post("/api-key/rotate")
    check(document, response_schema(document, "/api-key/rotate", 201, "post"), response.json())
    client = Client(headers={"X-API-Key": response.json()["key"]})
    response = client.post("/api-key/revoke")
    check(document, response_schema(document, "/api-key/revoke", 200, "post"), response.json())
    unauthorized = client.post("/api-key/revoke")
    check(document, response_schema(document, "/api-key/revoke", 401, "post"),
          unauthorized.json())


def test_real_scope_answers_match_the_documented_ones(document, db, fast_delivery, institute):
    ours = Webhook.objects.create(name="Ours", url="https://ours.example/hook")
    theirs = Webhook.objects.create(name="Theirs", url="https://theirs.example/hook")
    _, key = api_key_create(name="Partner", webhook_ids=[ours.pk])
    client = Client(headers={"X-API-Key": key})
    route = "/webhooks/{webhook_id}/scope"
    body = {"institutes": [institute.pk], "objects": ["training"]}
    check(document, document["paths"][route]["put"]["requestBody"]["content"][
        "application/json"]["schema"], body)
    answers = [
        (f"/webhooks/{ours.pk}/scope", body, 200),
        (f"/webhooks/{ours.pk}/scope", {"institutes": [99999], "objects": ["training"]}, 400),
        (f"/webhooks/{ours.pk}/scope", {"institutes": None, "objects": ["training"]}, 429),
        (f"/webhooks/{theirs.pk}/scope", body, 404),
    ]
    for url, sent, code in answers:
        response = client.put(url, json.dumps(sent), content_type="application/json")
        assert response.status_code == code, (url, response.content)
        check(document, response_schema(document, route, code, "put"), response.json())
    assert client.get(f"/webhooks/{ours.pk}/scope").status_code == 405
    check(document, response_schema(document, route, 405, "put"),
          client.get(f"/webhooks/{ours.pk}/scope").json())


def test_a_real_delivery_matches_the_webhook_description(
    document, db, fast_delivery, partner, institute
):
    webhook = Webhook.objects.create(name="Partner", url=partner.url)
    institute.name = "Renamed"
    institute.save()
    kept = Training.objects.create(institute=institute, reference="K", name="Kept")
    gone = Training.objects.create(institute=institute, reference="G", name="Gone")
    gone.delete()
    imported = type(institute).objects.create(name="Imported")
    import_run(institute_id=imported.pk, records=[FeedRecord("N", "New", "", None)])
    webhook_secret_rotate(webhook_id=webhook.pk)  # two signatures, as during a rotation
    collect()

    claim = delivery_claim(webhook_id=webhook.pk)
    delivery_send(claim)
    (received,) = partner.wait_for(1)

    operation = document["webhooks"]["changes"]["post"]
    payload = json.loads(received.body)
    check(document, operation["requestBody"]["content"]["application/json"]["schema"], payload)
    # Every kind of entry was there to check.
    assert {(entry["action"], entry["object"]) for entry in payload["changes"]} == {
        ("update", "institute"), ("update", "training"), ("destroy", "training"),
        ("import", "institute"),
    }
    assert kept.pk in {entry["id"] for entry in payload["changes"]}
    headers = {name.lower(): value for name, value in received.headers.items()}
    for parameter in operation["parameters"]:
        assert parameter["in"] == "header"
        check(document, parameter["schema"], headers[parameter["name"].lower()])
    assert " " in headers["webhook-signature"]  # the rotation's two signatures


def test_a_document_with_a_wrong_schema_would_be_caught(document):
    # The payload check is no formality: an entry the spec forbids fails it.
    schema = {"$ref": "#/components/schemas/WebhookPayload"}
    for wrong in (
        {"changes": [{"action": "destroy", "object": "training", "id": 1,
                      "url": "https://api.example.test/trainings/1"}]},
        {"changes": [{"action": "update", "object": "training", "id": 1,
                      "url": "https://api.example.test/trainings/1.json"}]},
        {"changes": [{"action": "import", "object": "training", "id": 1,
                      "url": "https://api.example.test/trainings/1"}]},
        {"changes": [{"action": "update", "object": "training", "id": "1",
                      "url": "https://api.example.test/trainings/1"}]},
        {"changes": [], "test": True},
    ):
        assert list(schema_validator(document, schema).iter_errors(wrong)), wrong


def test_a_real_test_event_matches_the_payload_schema(document, db, fast_delivery, partner):
    webhook = Webhook.objects.create(name="Partner", url=partner.url)
    delivery_test_send(webhook_id=webhook.pk)

    claim = delivery_claim(webhook_id=webhook.pk)

    assert json.loads(claim.body) == {"changes": []}
    check(document, {"$ref": "#/components/schemas/WebhookPayload"}, json.loads(claim.body))
