"""The floor of a durable record per batch: what one statement, one commit and one stored
body cost on this machine, against what a bare loop spends posting one batch.

    BENCH_DATABASE_NAME=springhook_floor python -m bench.record_floor [BATCHES]

In the bench's own database (dropped, created and migrated), each step `BATCHES` times
(default 200), median per step in milliseconds: a round trip (`SELECT 1`); a one-row
insert committed on its own; a distinct 500-entry body (about 46 KB, as the dispatcher
renders it) inserted into `deliveries_deliverybody` and committed as a claim stores it
(not indexed yet), and the same body put into the operators' search index afterwards as
the periodic `index` job does (`indexed` set, committed). A catching-up webhook stores a
distinct body per batch, so these bound `catchup_ratio` from above whatever the engine
does around them.
"""

from __future__ import annotations

import os
import statistics
import sys
import time

from bench.environment import bench_database_url, child_environment, database_recreate


def _median_ms(run, times: int) -> float:
    samples = []
    for number in range(times):
        started = time.perf_counter()
        run(number)
        samples.append(time.perf_counter() - started)
    return 1000 * statistics.median(samples)


def main(argv: list[str]) -> None:
    batches = int(argv[0]) if argv else 200
    database_url = bench_database_url()
    os.environ.update(child_environment(database_url))
    database_recreate(database_url)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    from django.db import connection

    from bench.workloads import batch_bodies
    from deliveries.models import payload_digest

    bodies = [body.decode() for body in batch_bodies(batches=batches, batch_size=500)]
    connection.ensure_connection()
    connection.set_autocommit(False)
    cursor = connection.cursor()

    def round_trip(_: int) -> None:
        cursor.execute("SELECT 1")
        cursor.fetchone()

    def small_commit(number: int) -> None:
        cursor.execute("INSERT INTO deliveries_dispatcherheartbeat (ticked_at) VALUES (now())")
        connection.commit()

    def body_commit(number: int) -> None:
        payload = bodies[number]
        cursor.execute(
            "INSERT INTO deliveries_deliverybody (digest, payload) VALUES (%s, %s)",
            [payload_digest(payload), payload],
        )
        connection.commit()

    def body_index(number: int) -> None:
        cursor.execute(
            "UPDATE deliveries_deliverybody SET indexed = true WHERE digest = %s",
            [payload_digest(bodies[number])],
        )
        connection.commit()

    figures = {
        "round trip (SELECT 1)": _median_ms(round_trip, batches),
        "one-row insert, committed": _median_ms(small_commit, batches),
        "500-entry body stored and committed, as a claim does": _median_ms(
            body_commit, batches
        ),
        "the same body indexed and committed, as the index job does": _median_ms(
            body_index, batches
        ),
    }
    print(f"body size {len(bodies[0].encode()):,} bytes; median of {batches} each")
    for label, milliseconds in figures.items():
        print(f"{label:60} {milliseconds:7.2f} ms")


if __name__ == "__main__":
    main(sys.argv[1:])
