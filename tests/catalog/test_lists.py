"""GET /institutes and GET /trainings: every object, a page at a time, in (updated_at, id)
order, with `updated_since`; paging stays complete while the catalogue changes."""

import base64
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.test import Client
from django.utils import timezone

from apikeys.models import ApiKey
from apikeys.services import api_key_create
from catalog import api
from catalog.models import Institute, Training

pytestmark = pytest.mark.filterwarnings("ignore:No directory at:UserWarning")

BASE = "http://api.test"


@pytest.fixture(autouse=True)
def api_base_url(settings):
    settings.API_BASE_URL = BASE


@pytest.fixture
def api_client(db) -> Client:
    api_key, raw_key = api_key_create(name="Partner")
    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=timezone.now())
    return Client(headers={"X-API-Key": raw_key})


def get(client: Client, url: str) -> dict:
    """GET an absolute link the API handed out (BASE + path) through the test client."""
    parts = urlsplit(url)
    response = client.get(f"{parts.path}?{parts.query}" if parts.query else parts.path)
    assert response.status_code == 200, response.content
    return response.json()


def walk(client: Client, url: str, between_pages=None) -> list[dict]:
    seen, pages = [], 0
    while url:
        page = get(client, url)
        seen.extend(page["results"])
        url = page["next"]
        pages += 1
        if between_pages:
            between_pages(pages)
    return seen


def institutes(count: int) -> list[Institute]:
    return [Institute.objects.create(name=f"Institute {n}") for n in range(count)]


@pytest.mark.parametrize("path", ["/institutes", "/institutes.json"])
def test_institutes_come_in_update_order_a_page_at_a_time(api_client, path):
    created = institutes(5)
    created[1].name = "Renamed"
    created[1].save()  # now the latest change: last in the list

    page = api_client.get(path, {"page_size": 2}).json()

    assert page["count"] == 5
    assert page["previous"] is None
    assert [item["id"] for item in page["results"]] == [created[0].pk, created[2].pk]
    assert page["results"][0] == api.institute_data(created[0])
    everything = walk(api_client, f"{BASE}{path}?page_size=2")
    assert [item["id"] for item in everything] == [
        created[0].pk, created[2].pk, created[3].pk, created[4].pk, created[1].pk
    ]
    assert page["next"].startswith(f"{BASE}/institutes?page_size=2&after=")


def test_trainings_come_in_update_order_with_their_data(api_client, institute):
    first = Training.objects.create(institute=institute, reference="A", name="A")
    second = Training.objects.create(institute=institute, reference="B", name="B")
    first.save()

    page = api_client.get("/trainings").json()

    assert page == {
        "count": 2, "next": None, "previous": None,
        "results": [
            api.training_data(second), api.training_data(Training.objects.get(pk=first.pk))
        ],
    }


def test_a_walk_misses_nothing_while_objects_change_move_and_go(api_client):
    created = institutes(12)
    doomed = created[8]
    changed = created[1]

    def meanwhile(pages: int) -> None:
        if pages == 1:
            changed.name = "Changed while paging"
            changed.save()  # already seen: moves to the end, seen again there
            Institute.objects.get(pk=created[0].pk).delete()  # seen, then gone
        if pages == 2:
            doomed.delete()
            Institute.objects.create(name="Added while paging")

    seen = walk(api_client, f"{BASE}/institutes?page_size=3", meanwhile)

    seen_ids = [item["id"] for item in seen]
    # Every institute that existed throughout the walk was listed, none skipped.
    for institute in created[1:]:
        if institute != doomed:
            assert institute.pk in seen_ids
    assert seen[-2]["name"] == "Changed while paging"
    assert seen[-1]["name"] == "Added while paging"


def test_previous_walks_back_over_the_same_pages(api_client):
    created = institutes(7)
    forward = []
    url = f"{BASE}/institutes?page_size=3"
    while url:
        page = get(api_client, url)
        forward.append([item["id"] for item in page["results"]])
        last, url = page, page["next"]
    backward = []
    url = last["previous"]
    while url:
        page = get(api_client, url)
        backward.append([item["id"] for item in page["results"]])
        url = page["previous"]
    assert forward == [[i.pk for i in created[0:3]], [i.pk for i in created[3:6]],
                       [created[6].pk]]
    assert backward == [[i.pk for i in created[3:6]], [i.pk for i in created[0:3]]]
    # A page reached backwards links forwards again, to the page it was reached from.
    middle = get(api_client, last["previous"])
    assert [item["id"] for item in get(api_client, middle["next"])["results"]] == [created[6].pk]


def test_updated_since_lists_only_what_changed_since(api_client):
    old = institutes(3)
    since = timezone.now()
    old[0].save()
    new = Institute.objects.create(name="New")

    for value in (
        since.isoformat(),  # +00:00
        since.isoformat().replace("+00:00", "Z"),
        since.astimezone(timezone.get_fixed_timezone(120)).isoformat(),  # +02:00
    ):
        page = api_client.get("/institutes", {"updated_since": value}).json()
        assert [item["id"] for item in page["results"]] == [old[0].pk, new.pk], value
        assert page["count"] == 2
    # Unencoded in the URL, "+" arrives as a space: still understood.
    raw = since.isoformat()
    response = api_client.get(f"/institutes?updated_since={raw}")
    assert [item["id"] for item in response.json()["results"]] == [old[0].pk, new.pk]


def test_links_keep_the_filter_and_the_page_size(api_client):
    institutes(3)
    since = (timezone.now() - timedelta(days=1)).isoformat().replace("+00:00", "Z")
    page = api_client.get("/institutes", {"updated_since": since, "page_size": 1}).json()
    assert page["count"] == 3
    second = get(api_client, page["next"])
    assert second["count"] == 3 and len(second["results"]) == 1
    assert f"updated_since={since.replace(':', '%3A')}" in page["next"]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"updated_since": "yesterday"}, "updated_since must be an RFC 3339"),
        ({"updated_since": "2026-11-29"}, "updated_since must be an RFC 3339"),
        ({"updated_since": "2026-11-29T19:49:52"}, "updated_since must be an RFC 3339"),
        ({"after": "bm90IGEgY3Vyc29y"}, "after must be a position this API handed out"),
        ({"before": "%%%"}, "before must be a position this API handed out"),
        ({"page_size": "0"}, "page_size must be a whole number"),
        ({"page_size": "ten"}, "page_size must be a whole number"),
    ],
)
@pytest.mark.parametrize("path", ["/institutes", "/trainings"])
def test_a_bad_parameter_is_a_json_400(api_client, path, query, message):
    response = api_client.get(path, query)
    assert response.status_code == 400
    assert response.json()["error"] == "bad_request"
    assert response.json()["message"].startswith(message)


def test_after_and_before_together_are_a_400(api_client):
    institutes(3)
    page = api_client.get("/institutes", {"page_size": 1}).json()
    cursor = page["next"].split("after=")[1]
    response = api_client.get(f"/institutes?after={cursor}&before={cursor}")
    assert response.status_code == 400


def test_the_lists_need_a_key(db):
    for path in ("/institutes", "/trainings"):
        assert Client().get(path).status_code == 401


@pytest.mark.parametrize("count", [1, 30])
def test_a_list_page_needs_a_fixed_number_of_queries(
    api_client, count, django_assert_num_queries
):
    institutes(count)
    # The key, the count, the page (first page: nothing before it to look for).
    with django_assert_num_queries(3):
        page = api_client.get("/institutes", {"page_size": 10}).json()
    if page["next"]:
        # The key, the count, the page, and whether a page lies before it.
        with django_assert_num_queries(4):
            get(api_client, page["next"])


def cursor_of(at: str, object_id: str) -> str:
    return base64.urlsafe_b64encode(f"{at}|{object_id}".encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "value",
    [
        "2026-01-01T00:00:00+16:00",  # PostgreSQL keeps no offset of 16 hours or more
        "2026-01-01T00:00:00-20:00",
        "2026-01-01T00:00:00+14:01",
        "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
        "9999-12-31T23:00:00-05:00",  # after year 9999 in UTC
        "2026-01-01T00:00:00",
        "2026-01-01",
        "2026-01-01T00:00:00\x00Z",
    ],
)
@pytest.mark.parametrize("path", ["/institutes", "/trainings"])
def test_a_time_no_database_can_compare_is_a_400_naming_updated_since(api_client, path, value):
    institutes(1)
    response = api_client.get(path, {"updated_since": value})
    assert response.status_code == 400, response.content
    assert response.json()["message"].startswith("updated_since must be an RFC 3339")


@pytest.mark.parametrize(
    "value", ["2026-01-01T00:00:00+14:00", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59-00:00",
              "0001-01-01T01:00:00+01:00", "2026-01-01t00:00:00z"],
)
def test_every_time_within_the_limits_is_understood(api_client, value):
    created = institutes(2)
    response = api_client.get("/institutes", {"updated_since": value})
    assert response.status_code == 200, response.content
    expected = [] if value.startswith("9999") else [obj.pk for obj in created]
    assert [item["id"] for item in response.json()["results"]] == expected


@pytest.mark.parametrize(
    ("at", "object_id"),
    [
        ("2026-01-01T00:00:00+20:00", "1"),
        ("0001-01-01T00:00:00+01:00", "1"),
        ("9999-12-31T23:00:00-05:00", "1"),
        ("2026-01-01T00:00:00Z", "99999999999999999999"),
        ("2026-01-01T00:00:00Z", "-1"),
        ("2026-01-01T00:00:00Z", "\x00"),
    ],
)
@pytest.mark.parametrize("name", ["after", "before"])
def test_a_forged_position_is_a_400_naming_it(api_client, name, at, object_id):
    institutes(2)
    response = api_client.get("/trainings", {name: cursor_of(at, object_id)})
    assert response.status_code == 400, response.content
    assert response.json()["message"].startswith(f"{name} must be a position")
