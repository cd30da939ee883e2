"""GET /webhooks/<id>/digest: a partner computes the documented rule over its copy and
finds what differs by walking id ranges (catalog.digest)."""

import random
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.test import Client

from apikeys.api import timestamp
from apikeys.services import api_key_create
from catalog import digest
from catalog.models import Institute, Training
from webhooks.models import ScopeObjects, Webhook

pytestmark = pytest.mark.filterwarnings("ignore:No directory at:UserWarning")
ROOT = Path(__file__).resolve().parents[2]
# More trainings than a range lists at once: a walk has a level of sub-ranges.
CATALOGUE = digest.RANGE_OBJECTS_MAX * 3 // 2


def documented_rule() -> dict:
    """The Python block of docs/partners.md's digest section, run as written."""
    text = (ROOT / "docs" / "partners.md").read_text(encoding="utf-8")
    section = text.split("## Is my copy right? The digest", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "docs/partners.md", "exec"), namespace)  # noqa: S102 - our own docs
    return namespace


@pytest.fixture
def webhooks(db) -> tuple[Webhook, Webhook]:
    return (
        Webhook.objects.create(name="Ours", url="https://partner.example/hook"),
        Webhook.objects.create(name="Theirs", url="https://other.example/hook"),
    )


@pytest.fixture
def client(webhooks) -> Client:
    _, raw_key = api_key_create(name="Our partner", webhook_ids=[webhooks[0].pk])
    api_key_create(name="Other partner", webhook_ids=[webhooks[1].pk])
    return Client(headers={"X-API-Key": raw_key})


@pytest.fixture
def catalogue(db) -> list[Training]:
    institutes = Institute.objects.bulk_create(Institute(name=f"I{n}") for n in range(3))
    return Training.objects.bulk_create(
        Training(institute=institutes[n % 3], reference=f"R{n}", name=f"T{n}")
        for n in range(CATALOGUE)
    )


def copy_of(model) -> dict[int, str]:
    """What an exact mirror holds: id → updated_at as the API renders it."""
    return {pk: timestamp(at) for pk, at in model.objects.values_list("id", "updated_at")}


def test_the_documented_rule_over_an_exact_copy_gives_the_endpoint_digest(client, webhooks,
                                                                          catalogue):
    rule = documented_rule()
    answer = client.get(f"/webhooks/{webhooks[0].pk}/digest").json()

    assert answer["rule"] == "md5-xor-64"
    for kind, model in (("training", Training), ("institute", Institute)):
        mirror = copy_of(model)
        assert answer["kinds"][kind]["count"] == len(mirror)
        assert answer["kinds"][kind]["digest"] == rule["digest"](mirror.items())
        assert answer["kinds"][kind]["min_id"] == min(mirror)
        assert answer["kinds"][kind]["max_id"] == max(mirror)
    # One object's later updated_at changes its kind's digest.
    training = catalogue[17]
    training.name = "renamed"
    training.save()
    after = client.get(f"/webhooks/{webhooks[0].pk}/digest").json()
    assert after["kinds"]["training"]["digest"] != answer["kinds"]["training"]["digest"]
    assert after["kinds"]["training"]["digest"] == rule["digest"](copy_of(Training).items())
    assert after["kinds"]["institute"] == answer["kinds"]["institute"]


def test_an_empty_kind_has_the_empty_digest(client, webhooks):
    answer = client.get(f"/webhooks/{webhooks[0].pk}/digest").json()
    assert answer["kinds"]["training"] == {
        "count": 0, "digest": digest.EMPTY_DIGEST, "min_id": None, "max_id": None,
        "range_url": None,
    }


def test_a_range_walk_finds_exactly_the_objects_that_differ(client, webhooks, catalogue):
    rule = documented_rule()
    mirror = copy_of(Training)
    # The mirror missed an update, a destroy, and holds an object that never existed.
    stale, gone = catalogue[40], catalogue[CATALOGUE - 100]
    gone_id = gone.pk
    stale.name = "changed"
    stale.save()
    gone.delete()
    mirror[10**6] = "2026-01-01T00:00:00.000000Z"
    found: set[int] = set()
    requests = 0

    def walk(url: str) -> None:
        nonlocal requests
        requests += 1
        answer = client.get(url.removeprefix("http://localhost:8000")).json()
        if "objects" in answer:
            theirs = {item["id"]: item["updated_at"] for item in answer["objects"]}
            mine = {
                pk: at for pk, at in mirror.items()
                if answer["from_id"] <= pk <= answer["to_id"]
            }
            found.update(pk for pk in theirs.keys() | mine.keys()
                         if theirs.get(pk) != mine.get(pk))
            return
        for part in answer["ranges"]:
            mine = [(pk, at) for pk, at in mirror.items()
                    if part["from_id"] <= pk <= part["to_id"]]
            if (part["count"], part["digest"]) != (len(mine), rule["digest"](mine)):
                walk(part["url"])

    top = client.get(f"/webhooks/{webhooks[0].pk}/digest").json()["kinds"]["training"]
    walk(f"/webhooks/{webhooks[0].pk}/digest?kind=training&from_id={top['min_id']}"
         f"&to_id={max(top['max_id'], max(mirror))}")

    assert found == {stale.pk, gone_id, 10**6}
    assert requests < 10


def test_sub_ranges_cover_the_range_without_gaps_and_combine_to_it(client, webhooks,
                                                                   catalogue):
    first, last = catalogue[0].pk, catalogue[-1].pk
    answer = client.get(
        f"/webhooks/{webhooks[0].pk}/digest?kind=training&from_id={first}&to_id={last + 5}"
    ).json()
    ranges = answer["ranges"]
    assert len(ranges) == digest.RANGE_PARTS
    assert ranges[0]["from_id"] == first and ranges[-1]["to_id"] == last + 5
    for before, after in zip(ranges, ranges[1:], strict=False):
        assert after["from_id"] == before["to_id"] + 1
    assert sum(part["count"] for part in ranges) == answer["count"] == CATALOGUE
    value = 0
    for part in ranges:
        value ^= int(part["digest"], 16)
    assert f"{value:016x}" == answer["digest"]
    rule = documented_rule()
    assert answer["digest"] == rule["digest"](copy_of(Training).items())


def test_a_narrow_range_is_cut_into_as_many_parts_as_it_has_ids(client, webhooks,
                                                                 catalogue):
    first = catalogue[0].pk
    url = f"/webhooks/{webhooks[0].pk}/digest?kind=training&from_id={first}&to_id={first + 2}"
    answer = client.get(url).json()
    assert [item["id"] for item in answer["objects"]] == [first, first + 1, first + 2]
    parts = digest.range_parts(queryset=Training.objects.all(), from_id=first,
                               to_id=first + 2)
    assert [(part.from_id, part.to_id, part.count) for part in parts] == [
        (first, first, 1), (first + 1, first + 1, 1), (first + 2, first + 2, 1)
    ]


def test_the_sql_hash_equals_the_python_rule_over_random_times_and_ids(db, on_postgres):
    """The database's spelling of the rule (PostgreSQL) against the partner's."""
    rng = random.Random(22)
    institute = Institute.objects.create(name="Times")
    trainings = Training.objects.bulk_create(
        Training(institute=institute, reference=f"R{n}", name="x") for n in range(200)
    )
    start = datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC)
    for training in trainings:
        training.updated_at = start + timedelta(
            seconds=rng.randrange(10**9), microseconds=rng.choice([0, 1, 999_999,
                                                                   rng.randrange(10**6)])
        )
    Training.objects.bulk_update(trainings, ["updated_at"])
    rule = documented_rule()
    expected = rule["digest"]((t.pk, timestamp(t.updated_at)) for t in trainings)

    whole = digest.kind_digest(queryset=Training.objects.all())
    parts = digest.range_parts(queryset=Training.objects.all(), from_id=trainings[0].pk,
                               to_id=trainings[-1].pk)

    assert whole.digest == expected
    assert digest.combine(parts).digest == expected
    for part in parts:
        inside = [(t.pk, timestamp(t.updated_at)) for t in trainings
                  if part.from_id <= t.pk <= part.to_id]
        assert part.digest == rule["digest"](inside)


# --- Errors ---------------------------------------------------------------------------------


def test_another_partners_webhook_and_an_unknown_one_answer_404(client, webhooks):
    for webhook_id in (webhooks[1].pk, 999_999):
        response = client.get(f"/webhooks/{webhook_id}/digest")
        assert response.status_code == 404
        assert response.json()["error"] == "not_found"


def test_a_key_without_webhooks_sees_no_digest(db, webhooks):
    _, raw_key = api_key_create(name="Catalogue only")
    response = Client(headers={"X-API-Key": raw_key}).get(f"/webhooks/{webhooks[0].pk}/digest")
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("kind=course&from_id=1&to_id=2", "kind"),
        ("kind=training&from_id=-1&to_id=2", "from_id"),
        ("kind=training&from_id=1&to_id=x", "to_id"),
        ("kind=training&from_id=1&to_id=99999999999999999999", "to_id"),
        ("kind=training&from_id=1", "to_id"),
        ("kind=training&to_id=1", "from_id"),
        ("kind=training&from_id=5&to_id=2", "from_id"),
        ("from_id=1&to_id=2", "kind"),
    ],
)
def test_bad_parameters_answer_a_json_400_naming_them(client, webhooks, query, named):
    response = client.get(f"/webhooks/{webhooks[0].pk}/digest?{query}")
    assert response.status_code == 400
    assert response.json()["error"] == "bad_request"
    assert named in response.json()["message"]


def test_the_widest_range_splits_without_overflow(client, webhooks, catalogue):
    answer = client.get(
        f"/webhooks/{webhooks[0].pk}/digest?kind=training&from_id=0&to_id={digest.ID_MAX}"
    ).json()
    assert answer["count"] == CATALOGUE
    assert len(answer["ranges"]) == digest.RANGE_PARTS
    assert answer["ranges"][-1]["to_id"] == digest.ID_MAX
    assert answer["ranges"][0]["count"] == CATALOGUE  # small ids all fall in the first


def test_a_scoped_webhooks_digest_covers_its_scope_only(client, webhooks, catalogue):
    """A partner with a scope checks its copy of its part: the digest counts and hashes
    only the scope's objects, and only the kinds it receives."""
    rule = documented_rule()
    first = catalogue[0].institute
    Webhook.objects.filter(pk=webhooks[0].pk).update(
        scope_institutes=[first.pk], scope_objects=ScopeObjects.TRAININGS
    )
    answer = client.get(f"/webhooks/{webhooks[0].pk}/digest").json()
    assert set(answer["kinds"]) == {"training"}
    ours = [(pk, timestamp(at)) for pk, at in
            Training.objects.filter(institute=first).values_list("id", "updated_at")]
    assert answer["kinds"]["training"]["count"] == len(ours) < len(catalogue)
    assert answer["kinds"]["training"]["digest"] == rule["digest"](ours)
    refused = client.get(f"/webhooks/{webhooks[0].pk}/digest?kind=institute&from_id=1&to_id=9")
    assert refused.status_code == 400 and "kind" in refused.json()["message"]
