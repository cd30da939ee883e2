"""GET /trainings?institute=<id> and GET /institutes?id=<id> (repeatable): a scope's part of
the lists, with the same keyset pages and `updated_since`, so that a partner with a scope
can check its mirror against the API."""

from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.test import Client
from django.utils import timezone

from apikeys.services import api_key_create
from catalog.models import Institute, Training

pytestmark = pytest.mark.filterwarnings("ignore:No directory at:UserWarning")


@pytest.fixture(autouse=True)
def api_base_url(settings):
    settings.API_BASE_URL = "http://api.test"


@pytest.fixture
def api_client(db) -> Client:
    _, raw_key = api_key_create(name="Partner")
    return Client(headers={"X-API-Key": raw_key})


@pytest.fixture
def catalogue(db) -> list[Institute]:
    made = [Institute.objects.create(name=f"Institute {n}") for n in range(4)]
    for institute in made:
        for n in range(3):
            Training.objects.create(institute=institute, reference=f"R{n}", name=f"T{n}")
    return made


def walk(client: Client, path: str, query: dict) -> list[dict]:
    seen, page = [], client.get(path, query).json()
    while True:
        seen.extend(page["results"])
        if not page["next"]:
            return seen
        parts = urlsplit(page["next"])
        page = client.get(f"{parts.path}?{parts.query}").json()


def test_trainings_of_some_institutes_a_page_at_a_time(api_client, catalogue):
    wanted = [catalogue[0].pk, catalogue[2].pk]
    first = api_client.get("/trainings", {"institute": wanted, "page_size": 2}).json()
    assert first["count"] == 6
    assert first["next"].count("institute=") == 2, "links keep the filter"
    seen = walk(api_client, "/trainings", {"institute": wanted, "page_size": 2})
    assert sorted(item["id"] for item in seen) == sorted(
        Training.objects.filter(institute_id__in=wanted).values_list("id", flat=True)
    )


def test_institutes_by_id_with_updated_since(api_client, catalogue):
    Institute.objects.filter(pk=catalogue[1].pk).update(
        updated_at=timezone.now() - timedelta(days=3)
    )
    since = (timezone.now() - timedelta(days=1)).isoformat().replace("+00:00", "Z")
    wanted = [catalogue[0].pk, catalogue[1].pk, catalogue[3].pk, 999999]
    seen = walk(api_client, "/institutes", {"id": wanted, "updated_since": since,
                                            "page_size": 1})
    assert [item["id"] for item in seen] == [catalogue[0].pk, catalogue[3].pk]


@pytest.mark.parametrize(("path", "name"), [("/trainings", "institute"), ("/institutes", "id")])
@pytest.mark.parametrize("value", ["x", "0", "-1", "1.5", "", "²", str(2**63)])
def test_a_bad_id_is_a_json_400_naming_the_parameter(api_client, path, name, value):
    response = api_client.get(path, {name: ["1", value]})
    assert response.status_code == 400
    assert response.json()["message"].startswith(f"{name} must be an id")


def test_too_many_ids_are_a_json_400(api_client):
    response = api_client.get("/institutes", {"id": [str(n) for n in range(1, 502)]})
    assert response.status_code == 400
    assert "at most 500 times" in response.json()["message"]
