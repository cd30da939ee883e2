"""The reference receiver's `verify` against the real API (a live server): a mirror broken
on purpose — lost updates, a missed create, a missed destroy, an object that never
existed — is made exact, in fewer requests than reading everything again."""

from __future__ import annotations

import json
import random
import subprocess
import sys

import pytest
from partner_harness import RECEIVER

from apikeys.services import api_key_create
from catalog.models import Institute, Training
from webhooks.models import Webhook

pytestmark = pytest.mark.filterwarnings("ignore:No directory at:UserWarning")
TRAININGS = 20_000


@pytest.fixture
def springhook(live_server, settings):
    settings.API_BASE_URL = live_server.url
    webhook = Webhook.objects.create(name="Mirror", url="https://partner.example/hook")
    _, raw_key = api_key_create(name="Mirror partner", webhook_ids=[webhook.pk])
    institutes = Institute.objects.bulk_create(Institute(name=f"I{n}") for n in range(20))
    Training.objects.bulk_create(
        (Training(institute=institutes[n % 20], reference=f"R{n}", name=f"T{n}")
         for n in range(TRAININGS)),
        batch_size=2000,
    )
    return live_server.url, raw_key, webhook


def catalogue() -> dict[str, dict[int, tuple]]:
    from apikeys.api import timestamp

    return {
        "institutes": {i.pk: (i.name, timestamp(i.updated_at)) for i in Institute.objects.all()},
        "trainings": {t.pk: (t.institute_id, t.name, timestamp(t.updated_at))
                      for t in Training.objects.all()},
    }


def mirror_of(db_path) -> dict[str, dict[int, tuple]]:
    import sqlite3

    conn = sqlite3.connect(db_path)
    try:
        institutes = {
            row[0]: (row[1], json.loads(row[2])["updated_at"])
            for row in conn.execute("SELECT id, name, data FROM institutes")
        }
        trainings = {
            row[0]: (row[1], row[2], json.loads(row[3])["updated_at"])
            for row in conn.execute("SELECT id, institute_id, name, data FROM trainings")
        }
    finally:
        conn.close()
    return {"institutes": institutes, "trainings": trainings}


@pytest.mark.django_db(transaction=True)
def test_verify_repairs_a_broken_mirror_in_fewer_requests_than_a_full_read(
    springhook, receiver_module, tmp_path
):
    api_url, raw_key, webhook = springhook
    db_path = str(tmp_path / "mirror.sqlite3")
    receiver_module.create_schema(db_path)
    conn = receiver_module.connect(db_path)
    api = receiver_module.TrainingsApi(raw_key)
    receiver_module.reconcile(conn, api, api_url)
    full_read = api.requests
    assert mirror_of(db_path) == catalogue()

    # The mirror misses what happens next...
    stale = list(Training.objects.order_by("id")[:: TRAININGS // 3])
    for training in stale:
        training.name += " (renamed)"
        training.save()
    gone = Training.objects.order_by("id")[TRAININGS // 2]
    gone.delete()
    added = Training.objects.create(institute=stale[0].institute, reference="NEW", name="New")
    renamed_institute = Institute.objects.order_by("id").last()
    renamed_institute.name = "Renamed institute"
    renamed_institute.save()
    # ...and holds a training that never existed.
    with receiver_module.write_transaction(conn):
        receiver_module.store_training(conn, {
            "id": added.pk + 1000, "institute": stale[0].institute_id, "reference": "X",
            "name": "Phantom", "updated_at": "2026-01-01T00:00:00.000000Z",
        })
    assert mirror_of(db_path) != catalogue()

    result = receiver_module.verify(conn, api, api_url, webhook.pk)

    assert mirror_of(db_path) == catalogue()
    assert result["fetched"] == len(stale) + 1 + 1  # the stale, the new, the institute
    assert result["deleted"] == 2  # the destroyed training, the phantom
    assert result["requests"] < full_read, (result, full_read)
    print(f"verify: {result}; full read: {full_read} requests")
    # An exact mirror costs one request.
    assert receiver_module.verify(conn, api, api_url, webhook.pk) == {
        "fetched": 0, "deleted": 0, "requests": 1,
    }
    conn.close()


@pytest.mark.django_db(transaction=True)
def test_verify_from_the_command_line(springhook, tmp_path):
    api_url, raw_key, webhook = springhook
    db_path = tmp_path / "mirror.sqlite3"
    Training.objects.filter(pk__in=list(Training.objects.values_list("pk", flat=True)[100:])
                            ).delete()

    done = subprocess.run(
        [sys.executable, str(RECEIVER), "verify", "--api-key", raw_key, "--db", str(db_path),
         "--api-url", api_url],
        capture_output=True, text=True, timeout=120,
    )

    assert done.returncode == 0, done.stderr
    assert f"verified against webhook {webhook.pk}'s digest: 120 fetched, 0 deleted" in (
        done.stdout
    )
    assert mirror_of(db_path) == catalogue()


def test_the_receivers_rule_is_the_documented_one(receiver_module):
    from tests.catalog.test_digest import documented_rule

    rule = documented_rule()
    rng = random.Random(7)
    for _ in range(50):
        objects = [
            (rng.randrange(1, 2**40),
             f"20{rng.randrange(10, 99)}-0{rng.randrange(1, 9)}-1{rng.randrange(9)}T0"
             f"{rng.randrange(9)}:1{rng.randrange(9)}:2{rng.randrange(9)}."
             f"{rng.randrange(10**6):06d}Z")
            for _ in range(rng.randrange(0, 20))
        ]
        assert receiver_module.digest(objects) == rule["digest"](objects)
