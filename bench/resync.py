"""python -m bench.resync [--institutes N] [--sqlite]: the cost of sending one webhook the
whole catalogue (deliveries.services.webhook_resync) with N institutes (default 100,000).

PostgreSQL in the bench's own database (bench.environment: dropped and re-created), or,
with --sqlite, a new SQLite file in a temporary directory. The catalogue is bulk-inserted
first; then a fresh process measures the resync alone: wall seconds, the growth of its
peak RSS, and in a second run the peak of Python allocations (tracemalloc), which stays
flat however large the catalogue when the ids are streamed. Last, the collector folds the
recorded changes into the webhook's pending entries (seconds).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.environment import bench_database_url, child_environment, database_recreate, python

ROOT = Path(__file__).resolve().parent.parent

_SETUP = """
import django; django.setup()
from catalog.models import Institute
from changes.models import Change
from webhooks.models import Webhook
Institute.objects.bulk_create(
    (Institute(name=f"Institute {{n}}") for n in range({count})), batch_size=5000
)
Webhook.objects.create(name="resync", url="https://partner.example/hook")
Change.objects.all().delete()  # the catalogue's own creation is not what is measured
"""

_MEASURE = """
import json, resource, time, tracemalloc
import django; django.setup()
from django.db import connection
from changes.models import Change
from deliveries.services import changes_collect, webhook_resync
from webhooks.models import Webhook
webhook = Webhook.objects.get()
connection.ensure_connection()
rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
count = webhook_resync(webhook_id=webhook.pk)
seconds = time.perf_counter() - started
rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
Change.objects.all().delete()
tracemalloc.start()
webhook_resync(webhook_id=webhook.pk)
traced_peak = tracemalloc.get_traced_memory()[1]
tracemalloc.stop()
started = time.perf_counter()
while changes_collect():
    pass
collect_seconds = time.perf_counter() - started
print(json.dumps({
    "institutes": count,
    "resync_seconds": round(seconds, 2),
    "resync_rss_growth_mb": round((rss_after - rss_before) / 1024, 1),
    "resync_traced_peak_mb": round(traced_peak / 2**20, 1),
    "collect_seconds": round(collect_seconds, 2),
    "pending_entries": webhook.pending_entries.count(),
}))
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--institutes", type=int, default=100_000)
    parser.add_argument("--sqlite", action="store_true", help="a new SQLite file instead")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        if args.sqlite:
            database_url = f"sqlite:///{Path(scratch) / 'resync.sqlite3'}"
        else:
            database_url = bench_database_url()
            database_recreate(database_url)
        env = child_environment(database_url)

        def run(*command: str) -> str:
            return subprocess.run(
                command, cwd=ROOT, env=env, check=True, capture_output=True, text=True
            ).stdout

        run(python(), "manage.py", "migrate", "-v0")
        run(python(), "-c", _SETUP.format(count=args.institutes))
        result = json.loads(run(python(), "-c", _MEASURE).strip().splitlines()[-1])
    result["database"] = "sqlite" if args.sqlite else "postgresql"
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
