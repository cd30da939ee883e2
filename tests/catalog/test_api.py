"""The Trainings API (catalog.api): the objects, the lists, errors, keys at the door."""

import re
from datetime import UTC
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone

from apikeys.models import ApiKey
from apikeys.services import api_key_create
from catalog import api
from catalog.models import Institute, Training
from catalog.services import trainings_bulk_create

# WhiteNoise warns on every request that STATIC_ROOT does not exist (nothing ran
# collectstatic in the test environment); that says nothing about the API.
pytestmark = pytest.mark.filterwarnings("ignore:No directory at:UserWarning")

BASE = "http://api.test"
RAW_KEY = re.compile(r"sk_[A-Za-z0-9_-]{43}")


@pytest.fixture(autouse=True)
def api_base_url(settings):
    settings.API_BASE_URL = BASE


@pytest.fixture
def raw_key(db) -> str:
    api_key, raw_key = api_key_create(name="Partner")
    # Recently used, so that requests do not also write last_used_at (tested separately).
    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=timezone.now())
    return raw_key


@pytest.fixture
def api_client(raw_key) -> Client:
    """A client that sends a valid key in the X-API-Key header."""
    return Client(headers={"X-API-Key": raw_key})


@pytest.fixture
def anonymous() -> Client:
    return Client()


def iso(value) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def make_trainings(institute: Institute, count: int) -> list[Training]:
    # References count down, so that the catalogue's default order (by reference) is the
    # reverse of the id order the API promises.
    return trainings_bulk_create(
        trainings=[
            Training(institute=institute, reference=f"R{count - n:05}", name=f"Training {n}")
            for n in range(count)
        ]
    )


def ids(response) -> list[int]:
    return [training["id"] for training in response.json()["results"]]


# --- Representations ---------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", ".json"])
def test_a_training_answers_exactly_this_json(api_client, institute, suffix):
    training = Training.objects.create(
        institute=institute,
        reference="r-1",
        name="Pytest basics",
        description="Fixtures, marks, and plugins.",
        price=Decimal("12.5"),
    )
    training.refresh_from_db()

    response = api_client.get(f"/trainings/{training.pk}{suffix}")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == {
        "id": training.pk,
        "institute": institute.pk,
        "reference": "r-1",
        "name": "Pytest basics",
        "description": "Fixtures, marks, and plugins.",
        "price": "12.50",
        "created_at": iso(training.created_at),
        "updated_at": iso(training.updated_at),
        "url": f"{BASE}/trainings/{training.pk}",
    }


def test_a_training_without_a_price_has_price_null(api_client, training):
    assert api_client.get(f"/trainings/{training.pk}").json()["price"] is None


def test_timestamps_are_utc_rfc3339_with_microseconds(api_client, training):
    created_at = api_client.get(f"/trainings/{training.pk}").json()["created_at"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", created_at)


@pytest.mark.parametrize("suffix", ["", ".json"])
def test_an_institute_answers_exactly_this_json(api_client, institute, suffix):
    institute.refresh_from_db()

    response = api_client.get(f"/institutes/{institute.pk}{suffix}")

    assert response.status_code == 200
    assert response.json() == {
        "id": institute.pk,
        "name": "Academy of Testing",
        "created_at": iso(institute.created_at),
        "updated_at": iso(institute.updated_at),
        "url": f"{BASE}/institutes/{institute.pk}",
        "trainings_url": f"{BASE}/institutes/{institute.pk}/trainings",
    }


def test_head_answers_like_get(api_client, training):
    assert api_client.head(f"/trainings/{training.pk}").status_code == 200


# --- Listing an institute's trainings ----------------------------------------------------


@pytest.mark.parametrize("suffix", ["", ".json"])
def test_the_trainings_of_an_institute_come_in_id_order(api_client, institute, suffix):
    trainings = make_trainings(institute, 3)
    Training.objects.create(
        institute=Institute.objects.create(name="Other"), reference="X", name="Not listed"
    )

    response = api_client.get(f"/institutes/{institute.pk}/trainings{suffix}")

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 3
    assert body["next"] is None
    assert body["previous"] is None
    assert ids(response) == sorted(training.pk for training in trainings)
    first = Training.objects.get(pk=body["results"][0]["id"])
    assert body["results"][0] == api.training_data(first)


def test_an_institute_without_trainings_has_an_empty_first_page(api_client, institute):
    response = api_client.get(f"/institutes/{institute.pk}/trainings")
    assert response.status_code == 200
    assert response.json() == {"count": 0, "next": None, "previous": None, "results": []}


def test_pages_link_to_each_other_with_absolute_urls(api_client, institute):
    all_ids = sorted(training.pk for training in make_trainings(institute, 150))
    listing = f"{BASE}/institutes/{institute.pk}/trainings"

    first = api_client.get(f"/institutes/{institute.pk}/trainings").json()
    assert first["count"] == 150
    assert [training["id"] for training in first["results"]] == all_ids[:100]
    assert first["previous"] is None
    assert first["next"] == f"{listing}?page=2"

    second = api_client.get(first["next"].removeprefix(BASE)).json()
    assert [training["id"] for training in second["results"]] == all_ids[100:]
    assert second["previous"] == f"{listing}?page=1"
    assert second["next"] is None


def test_a_chosen_page_size_is_kept_in_the_links(api_client, institute):
    all_ids = sorted(training.pk for training in make_trainings(institute, 7))
    listing = f"{BASE}/institutes/{institute.pk}/trainings"

    response = api_client.get(f"/institutes/{institute.pk}/trainings?page=2&page_size=3")

    body = response.json()
    assert body["count"] == 7
    assert ids(response) == all_ids[3:6]
    assert body["previous"] == f"{listing}?page=1&page_size=3"
    assert body["next"] == f"{listing}?page=3&page_size=3"
    assert ids(api_client.get(body["next"].removeprefix(BASE))) == all_ids[6:]


def test_page_size_is_capped_at_1000(api_client, institute):
    all_ids = sorted(training.pk for training in make_trainings(institute, 1003))
    listing = f"{BASE}/institutes/{institute.pk}/trainings"

    body = api_client.get(f"/institutes/{institute.pk}/trainings?page_size=5000").json()

    assert body["count"] == 1003
    assert [training["id"] for training in body["results"]] == all_ids[:1000]
    assert body["next"] == f"{listing}?page=2&page_size=1000"
    rest = api_client.get(body["next"].removeprefix(BASE)).json()
    assert [training["id"] for training in rest["results"]] == all_ids[1000:]


def test_links_never_carry_the_api_key(raw_key, institute):
    make_trainings(institute, 3)
    response = Client().get(
        f"/institutes/{institute.pk}/trainings", {"api_key": raw_key, "page_size": 1}
    )
    body = response.json()
    assert body["next"] == f"{BASE}/institutes/{institute.pk}/trainings?page=2&page_size=1"
    assert raw_key not in response.content.decode()


def test_a_page_past_the_end_is_404(api_client, institute):
    make_trainings(institute, 3)
    response = api_client.get(f"/institutes/{institute.pk}/trainings?page=3&page_size=2")
    assert response.status_code == 404
    assert response.json() == {
        "error": "not_found",
        "message": f"Page 3 does not exist: institute {institute.pk} has 2 pages of "
        "trainings at page_size 2.",
    }


def test_page_2_of_an_empty_institute_is_404(api_client, institute):
    assert api_client.get(f"/institutes/{institute.pk}/trainings?page=2").status_code == 404


@pytest.mark.parametrize(
    "query",
    [
        "page=0",
        "page=-1",
        "page=abc",
        "page=1.5",
        "page=",
        "page=%C2%B2",
        "page=9999999999",
        "page_size=0",
        "page_size=x",
    ],
)
def test_a_bad_page_or_page_size_is_400(api_client, institute, query):
    response = api_client.get(f"/institutes/{institute.pk}/trainings?{query}")
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "bad_request"
    assert body["message"].startswith(("page must be", "page_size must be"))


# --- Not found -----------------------------------------------------------------------------


def test_a_removed_training_is_404(api_client, institute):
    training = Training.objects.create(institute=institute, reference="R", name="Gone soon")
    training_id = training.pk
    assert api_client.get(f"/trainings/{training_id}").status_code == 200
    training.delete()

    response = api_client.get(f"/trainings/{training_id}")

    assert response.status_code == 404
    assert response.json() == {
        "error": "not_found",
        "message": f"Training {training_id} does not exist.",
    }


@pytest.mark.parametrize("path", ["/institutes/{id}", "/institutes/{id}/trainings"])
def test_a_removed_institute_is_404(api_client, path):
    institute = Institute.objects.create(name="Gone soon")
    institute_id = institute.pk
    institute.delete()

    response = api_client.get(path.format(id=institute_id))

    assert response.status_code == 404
    assert response.json() == {
        "error": "not_found",
        "message": f"Institute {institute_id} does not exist.",
    }


@pytest.mark.parametrize("path", ["/trainings/{huge}", "/institutes/{huge}/trainings"])
def test_an_id_beyond_any_integer_column_is_404(api_client, path):
    response = api_client.get(path.format(huge=10**30))
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


@pytest.mark.parametrize(
    "path",
    [
        "/trainings/abc",
        "/trainings/1/",
        "/trainingz",
        "/institutes/1/trainings/",
        "/institutes/1.xml",
        "/no-such-page",
        "/static/no-such-file.css",
    ],
)
@pytest.mark.parametrize("debug", [False, True])
def test_a_path_that_matches_no_route_is_a_json_404(api_client, settings, path, debug):
    # DEBUG on is the default of a fresh clone: Django would show its technical HTML page.
    settings.DEBUG = debug
    response = api_client.get(path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"error": "not_found", "message": f"There is nothing at {path}."}


def test_the_admin_keeps_djangos_html_pages(admin_client):
    response = admin_client.get("/admin/no-such-page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
    # Its slash redirect still works.
    assert admin_client.get("/admin").status_code == 301


def test_a_wrong_method_on_a_project_endpoint_is_json_too(anonymous):
    response = anonymous.post("/healthz")
    assert response.status_code == 405
    assert response["Allow"] == "GET"
    assert response.json()["error"] == "method_not_allowed"


# --- Server errors and methods -------------------------------------------------------------


def test_a_server_error_is_json(raw_key, training, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("database on fire")

    monkeypatch.setattr(api, "training_get", broken)
    api_client = Client(headers={"X-API-Key": raw_key}, raise_request_exception=False)

    response = api_client.get(f"/trainings/{training.pk}")

    assert response.status_code == 500
    assert response.json() == {
        "error": "server_error",
        "message": "The server failed to answer; the error has been logged.",
    }
    assert "fire" not in response.content.decode()


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete", "options"])
@pytest.mark.parametrize("path", ["/trainings/{t}", "/institutes/{i}/trainings.json"])
def test_other_methods_are_405(raw_key, training, method, path):
    # A real client sends no CSRF token: the answer must still be the JSON 405.
    api_client = Client(headers={"X-API-Key": raw_key}, enforce_csrf_checks=True)

    response = getattr(api_client, method)(path.format(t=training.pk, i=training.institute_id))

    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD"
    assert response.json() == {
        "error": "method_not_allowed",
        "message": f"{method.upper()} is not allowed here: use GET.",
    }


# --- Authentication ------------------------------------------------------------------------

ENDPOINTS = ["/trainings/{t}", "/institutes/{i}.json", "/institutes/{i}/trainings"]


def endpoint(path: str, training: Training) -> str:
    return path.format(t=training.pk, i=training.institute_id)


def assert_unauthorized(response, message: str) -> None:
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "ApiKey"
    assert response.json() == {"error": "unauthorized", "message": message}


MISSING = "An API key is required: send it in the X-API-Key header or the api_key query parameter."
INVALID = "The API key is not valid: it is unknown or was revoked."


@pytest.mark.parametrize("path", ENDPOINTS)
def test_no_key_is_401(anonymous, training, path):
    assert_unauthorized(anonymous.get(endpoint(path, training)), MISSING)
    assert_unauthorized(anonymous.get(endpoint(path, training), {"api_key": ""}), MISSING)


@pytest.mark.parametrize("path", ENDPOINTS)
def test_a_wrong_key_is_401_in_the_header_and_in_the_query(raw_key, training, path):
    wrong = raw_key[:-1] + ("A" if raw_key[-1] != "A" else "B")
    url = endpoint(path, training)
    assert_unauthorized(Client(headers={"X-API-Key": wrong}).get(url), INVALID)
    assert_unauthorized(Client().get(url, {"api_key": wrong}), INVALID)
    assert_unauthorized(Client().get(url, {"api_key": "x" * 10_000}), INVALID)


@pytest.mark.parametrize("path", ENDPOINTS)
def test_an_inactive_key_is_401_in_the_header_and_in_the_query(raw_key, training, path):
    ApiKey.objects.update(is_active=False)
    url = endpoint(path, training)
    assert_unauthorized(Client(headers={"X-API-Key": raw_key}).get(url), INVALID)
    assert_unauthorized(Client().get(url, {"api_key": raw_key}), INVALID)


@pytest.mark.parametrize("path", ENDPOINTS)
def test_a_key_in_the_query_parameter_works(raw_key, training, path):
    assert Client().get(endpoint(path, training), {"api_key": raw_key}).status_code == 200


def test_answers_are_not_for_shared_caches(api_client, anonymous, training):
    assert "private" in api_client.get(f"/trainings/{training.pk}")["Cache-Control"]
    assert "private" in anonymous.get(f"/trainings/{training.pk}")["Cache-Control"]


# --- Queries -------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [1, 30])
def test_each_endpoint_needs_a_fixed_number_of_queries(
    api_client, institute, count, django_assert_num_queries
):
    training = make_trainings(institute, count)[0]
    # The key lookup, then the object (detail) or the institute with its count and the page.
    with django_assert_num_queries(2):
        assert api_client.get(f"/trainings/{training.pk}").status_code == 200
    with django_assert_num_queries(2):
        assert api_client.get(f"/institutes/{institute.pk}").status_code == 200
    with django_assert_num_queries(3):
        response = api_client.get(f"/institutes/{institute.pk}/trainings")
    assert len(response.json()["results"]) == count


def test_a_wrong_method_costs_no_query(api_client, training, django_assert_num_queries):
    with django_assert_num_queries(0):
        assert api_client.post(f"/trainings/{training.pk}").status_code == 405
