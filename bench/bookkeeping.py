"""What a batch costs besides its POST: claim and record, per batch, with every statement.

    python -m bench.bookkeeping                       # 10 webhooks, 6 batches of 500 each
    python -m bench.bookkeeping --webhooks 100 --batches 2

Fills the webhooks' pending entries, then claims all their next batches at once
(deliveries_claim) and records them all as accepted (deliveries_record), round after
round, as the delivery engine does with a partner that answers at once. Prints the
milliseconds per batch of each, the statements per batch, and the statements that took
longest in all (summed, per batch). Runs in the bench's own database (bench.environment).
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import time

from bench.environment import bench_database_url, child_environment, database_recreate


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bookkeeping",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--webhooks", type=int, default=10)
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--top", type=int, default=10)
    args = parser.parse_args(argv)
    os.environ.setdefault("BENCH_DATABASE_NAME", "springhook_bookkeeping")
    database_url = bench_database_url()
    os.environ.update(child_environment(database_url, WEBHOOK_BUNDLE_DELAY="0"))
    database_recreate(database_url)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    from django.db import connection

    from bench.workloads import pending_fill, tables_clear, webhooks_create
    from deliveries.http import SendResult
    from deliveries.services import deliveries_claim, deliveries_record

    tables_clear()
    webhook_ids = webhooks_create(base_url="http://127.0.0.1:9", count=args.webhooks)
    pending_fill(webhook_ids=webhook_ids, per_webhook=500 * args.batches)
    connection.force_debug_cursor = True
    connection.queries_log.clear()
    claiming = recording = 0.0
    batches = 0
    for _ in range(args.batches):
        started = time.perf_counter()
        claims = deliveries_claim(limit=args.webhooks)
        claiming += time.perf_counter() - started
        started = time.perf_counter()
        deliveries_record([(claim, SendResult(200, "", "", "", 0.001)) for claim in claims])
        recording += time.perf_counter() - started
        batches += len(claims)
    statements = list(connection.queries)
    print(f"{batches} batches of 500, {args.webhooks} webhooks claimed together: claim "
          f"{claiming / batches * 1000:.2f} ms/batch, record {recording / batches * 1000:.2f} "
          f"ms/batch, {len(statements) / batches:.1f} statements/batch")
    totals: dict[str, list] = collections.defaultdict(lambda: [0, 0.0])
    for query in statements:
        key = re.sub(r"\b\d+\b", "N", " ".join(query["sql"].split()))[:110]
        totals[key][0] += 1
        totals[key][1] += float(query["time"])
    for key, (count, seconds) in sorted(totals.items(), key=lambda item: -item[1][1])[
        : args.top
    ]:
        print(f"{seconds / batches * 1000:7.2f} ms/batch {count:5d}x  {key}")


if __name__ == "__main__":
    main()
