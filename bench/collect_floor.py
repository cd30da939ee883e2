"""The collector's floor: the time of each statement that consuming the outbox needs, for
each design tried, on one backlog of 1,000,000 changes over 50,000 trainings.

    BENCH_DATABASE_NAME=springhook_floor python -m bench.collect_floor [CHANGES]

Each design starts from the same freshly recorded outbox and an empty stream, and runs
in one transaction that is committed (as the collector does). Prints seconds per step.
"""

from __future__ import annotations

import os
import sys
import time

from bench.environment import bench_database_url, child_environment, database_recreate

TRAININGS = 50_000


def _timed(cursor, steps: list, label: str, sql: str, params=None) -> None:
    started = time.perf_counter()
    cursor.execute(sql, params)
    steps.append((label, time.perf_counter() - started))


def main(argv: list[str]) -> None:
    changes = int(argv[0]) if argv else 1_000_000
    database_url = bench_database_url()
    os.environ.update(child_environment(database_url))
    database_recreate(database_url)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    from django.db import connection, transaction

    from bench.workloads import TRAININGS_PER_INSTITUTE, webhooks_create
    from changes.services import ChangeEntry, changes_record
    from deliveries.services import collect

    webhooks_create(base_url="http://127.0.0.1:9", count=1)

    def fresh() -> None:
        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE changes_change, deliveries_streamentry")
            cursor.execute("UPDATE deliveries_streamhead SET seq = 0")
            cursor.execute("DELETE FROM deliveries_webhookcursor")
        with transaction.atomic():
            changes_record(entries=(
                ChangeEntry("training", 1 + n % TRAININGS, "update",
                            (1 + n % TRAININGS) // TRAININGS_PER_INSTITUTE)
                for n in range(changes)
            ))
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE changes_change")
            cursor.execute("CHECKPOINT")

    results = {}

    # The collector as it is (whatever changes_collect does now), end to end.
    fresh()
    started = time.perf_counter()
    collect.changes_collect()
    results["changes_collect (as built)"] = [("total", time.perf_counter() - started)]

    # Pieces, each alone.
    for label, sql in [
        ("DELETE … WHERE id <= max (no RETURNING)",
         "DELETE FROM changes_change WHERE id <= (SELECT max(id) FROM changes_change)"),
        ("DELETE … RETURNING into a temporary table",
         "CREATE TEMPORARY TABLE claimed ON COMMIT DROP AS WITH c AS (DELETE FROM "
         "changes_change RETURNING *) SELECT * FROM c"),
        ("copy into a temporary table, then TRUNCATE",
         "LOCK TABLE changes_change IN EXCLUSIVE MODE; CREATE TEMPORARY TABLE claimed ON "
         "COMMIT DROP AS SELECT * FROM changes_change; TRUNCATE changes_change"),
        ("TRUNCATE alone", "TRUNCATE changes_change"),
        ("fold: GROUP BY object over the outbox (read only)",
         "SELECT count(*) FROM (SELECT object_kind, object_id, max(id), min(created_at), "
         "max(created_at) FROM changes_change GROUP BY object_kind, object_id) AS folded"),
        ("fold + upsert into the stream in one INSERT … SELECT … ON CONFLICT",
         "INSERT INTO deliveries_streamentry (object_kind, object_id, parent_id, action, "
         "first_change_at, last_change_at, seq) SELECT object_kind, object_id, "
         "(max(ARRAY[id, parent_id]))[2], 'update', min(created_at), max(created_at), "
         "max(id) FROM changes_change GROUP BY object_kind, object_id "
         "ON CONFLICT (object_kind, object_id) DO UPDATE SET seq = excluded.seq"),
    ]:
        fresh()
        steps: list = []
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL work_mem = '64MB'")
            cursor.execute("SET LOCAL jit = off")
            for number, statement in enumerate(sql.split("; ")):
                _timed(cursor, steps, f"statement {number + 1}", statement)
        results[label] = steps

    for label, steps in results.items():
        total = sum(seconds for _, seconds in steps)
        detail = ", ".join(f"{name} {seconds:.2f}s" for name, seconds in steps)
        print(f"{label:<70} {total:6.2f}s  ({detail})", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
