"""python -m bench.digest [--trainings N] [--runs R]: the time of GET /webhooks/<id>/digest
over a catalogue of N trainings (default 1,000,000) on PostgreSQL.

The bench's own database (bench.environment: dropped and re-created) is migrated and
filled with SQL (generate_series: 10,000 institutes, N trainings with distinct
updated_at), then a fresh process asks the endpoint, through Django's test client with a
partner's key, for the whole digest and for id ranges of shrinking size as a partner's
walk does (the whole id range, 1/32 of it, 1/1024 of it, and a leaf that lists its
1,000 objects). Each figure is the median of R runs in milliseconds. Goals (issue 22): the whole
digest under 2 s, a range under 50 ms. Last, what the stored hash (migration catalog 0005)
costs writers: one UPDATE of 100,000 trainings' updated_at without, then with, its
trigger.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from bench.environment import bench_database_url, child_environment, database_recreate, python

ROOT = Path(__file__).resolve().parent.parent

_SETUP = """
import django; django.setup()
from django.db import connection
with connection.cursor() as cursor:
    cursor.execute(
        "INSERT INTO catalog_institute (name, created_at, updated_at) "
        "SELECT 'Institute ' || n, now(), now() FROM generate_series(1, 10000) n"
    )
    cursor.execute(
        "INSERT INTO catalog_training (institute_id, reference, name, description, price, "
        "created_at, updated_at) "
        "SELECT (SELECT min(id) FROM catalog_institute) + n %% 10000, 'REF-' || n, "
        "'Training ' || n, repeat('A training about something. ', 8), 120.00, now(), "
        "now() - n * interval '1 second' + random() * interval '1 second' "
        "FROM generate_series(1, %s) n",
        [{count}],
    )
    cursor.execute("DELETE FROM changes_change")
    cursor.execute("VACUUM ANALYZE catalog_training")
    cursor.execute("VACUUM ANALYZE catalog_institute")
"""

_MEASURE = """
import json, statistics, time
import django; django.setup()
from django.test import Client
from apikeys.services import api_key_create
from webhooks.models import Webhook
webhook = Webhook.objects.create(name="digest", url="https://partner.example/hook")
_, raw_key = api_key_create(name="bench", webhook_ids=[webhook.pk])
client = Client(headers={{"X-API-Key": raw_key}}, SERVER_NAME="localhost")
base = f"/webhooks/{{webhook.pk}}/digest"

def timed(url):
    times = []
    for _ in range({runs}):
        started = time.perf_counter()
        response = client.get(url)
        times.append(time.perf_counter() - started)
        assert response.status_code == 200, response.content
    return round(statistics.median(times) * 1000, 1), response.json()

whole_ms, whole = timed(base)
training = whole["kinds"]["training"]
low, high = training["min_id"], training["max_id"]
span = high - low + 1
result = {{"trainings": training["count"], "whole_digest_ms": whole_ms}}
for label, size in (("range_all", span), ("range_1_32", span // 32),
                    ("range_1_1024", span // 1024), ("range_leaf", 1000)):
    start = low if size == span else low + span // 3
    ms, answer = timed(f"{{base}}?kind=training&from_id={{start}}&to_id={{start + size - 1}}")
    result[label + "_ms"] = ms
    result[label + "_objects"] = answer["count"]
# What the stored hash costs writers: 100,000 trainings' updated_at rewritten without the
# trigger, then with it (which also puts the hashes right again).
from django.db import connection
for label in ("write_100k_without_trigger_ms", "write_100k_with_trigger_ms"):
    with connection.cursor() as cursor:
        enable = "ENABLE" if label.endswith("with_trigger_ms") else "DISABLE"
        cursor.execute(
            f"ALTER TABLE catalog_training {{enable}} TRIGGER catalog_training_digest_hash"
        )
        started = time.perf_counter()
        cursor.execute("UPDATE catalog_training SET updated_at = clock_timestamp() "
                       "WHERE id < (SELECT min(id) FROM catalog_training) + 100000")
        result[label] = round((time.perf_counter() - started) * 1000, 1)
print(json.dumps(result))
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trainings", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    database_url = bench_database_url()
    database_recreate(database_url)
    env = child_environment(database_url)

    def run(*command: str) -> str:
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        if done.returncode:
            sys.stderr.write(done.stderr)
            raise SystemExit(f"bench.digest: {command[1]} failed ({done.returncode})")
        return done.stdout

    run(python(), "manage.py", "migrate", "-v0")
    run(python(), "-c", _SETUP.format(count=args.trainings))
    result = json.loads(run(python(), "-c", _MEASURE.format(runs=args.runs)).splitlines()[-1])
    result["database"] = "postgresql"
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
