"""EXPLAIN ANALYZE of every query the dispatcher runs, at 1,000,000 pending changes.

    python -m bench.explain > plans.md

Builds the state in the bench's own database (see bench.environment): 10 webhooks,
100,000 delivered deliveries (with their attempts) of history, and 1,000,000 recorded
changes for 50,000 trainings; 990 paused webhooks join after the collection. Then it
runs each service of the dispatch loop, records the statements it
sends, and replays each under EXPLAIN (ANALYZE, BUFFERS) in a transaction that is rolled
back, so that every plan is measured on the same state. Prints Markdown.
"""

from __future__ import annotations

import os
import time

from bench.environment import bench_database_url, child_environment, database_recreate

CHANGES = 1_000_000
TRAININGS = 50_000
WEBHOOKS = 10
HISTORY = 100_000
PAUSED_WEBHOOKS = 990


class _Rollback(Exception):
    pass


def statements_of(function) -> list[tuple[str, object]]:
    """The statements `function` sends, run in a transaction that is rolled back."""
    from django.db import connection, transaction

    sent: list[tuple[str, object]] = []

    def capture(execute, sql, params, many, context):
        sent.append((sql, params))
        return execute(sql, params, many, context)

    try:
        with transaction.atomic(), connection.execute_wrapper(capture):
            function()
            raise _Rollback
    except _Rollback:
        pass
    return sent


def explained(statements: list[tuple[str, object]], *, prepare=()) -> list[tuple[str, str]]:
    """Each statement's plan, replayed in order in one transaction that is rolled back."""
    from django.db import connection, transaction

    plans = []
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            for sql, params in prepare:
                cursor.execute(sql, params)
            for sql, params in statements:
                if sql.lstrip().upper().startswith(("SAVEPOINT", "RELEASE", "ROLLBACK")):
                    continue
                if sql.lstrip().upper().startswith(("CREATE", "SET", "ANALYZE")):
                    cursor.execute(sql, params)
                    continue
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
                plan = "\n".join(row[0] for row in cursor.fetchall())
                shown = cursor.mogrify(sql, params).decode() if params else sql
                plans.append((shown, plan))
            raise _Rollback
    except _Rollback:
        pass
    return plans


def section(title: str, plans: list[tuple[str, str]]) -> str:
    parts = [f"### {title}\n"]
    for sql, plan in plans:
        short = " ".join(sql.split())
        if len(short) > 600:
            short = short[:600] + " …"
        parts.append(f"```sql\n{short}\n```\n\n```\n{plan}\n```\n")
    return "\n".join(parts)


def main() -> None:
    database_url = bench_database_url()
    os.environ.update(child_environment(database_url))
    database_recreate(database_url)

    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)

    from django.db import connection, transaction
    from django.utils import timezone

    from bench.workloads import TRAININGS_PER_INSTITUTE, webhooks_create
    from changes.services import ChangeEntry, changes_record
    from deliveries.http import SendResult
    from deliveries.models import DeliveryBody
    from deliveries.services import changes_collect, delivery_claim, delivery_record, webhooks_due
    from webhooks.models import Webhook

    webhook_ids = webhooks_create(base_url="http://127.0.0.1:9", count=WEBHOOKS)
    body = DeliveryBody.objects.store(["{}"])["{}"]
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO deliveries_delivery (webhook_id, message_id, body_id, entry_count, "
            "state, attempt_count, lease_token, last_error_kind, created_at, delivered_at, "
            "is_test) "
            "SELECT (CAST(%s AS bigint[]))[1 + n %% %s], 'history_' || n, %s, 1, "
            "'delivered', 1, '', '', "
            "now() - n * interval '1 second', now(), false FROM generate_series(1, %s) AS n",
            [webhook_ids, len(webhook_ids), body.digest, HISTORY],
        )
        cursor.execute(
            "INSERT INTO deliveries_deliveryattempt (delivery_id, number, started_at, "
            "duration, accepted, status_code, error_kind, error_message, response_body) "
            "SELECT id, 1, created_at, 0.01, true, 200, '', '', '' FROM deliveries_delivery"
        )
    started = time.perf_counter()
    with transaction.atomic():
        changes_record(
            entries=(
                ChangeEntry("training", 1 + n % TRAININGS, "update",
                            (1 + n % TRAININGS) // TRAININGS_PER_INSTITUTE)
                for n in range(CHANGES)
            )
        )
    recorded = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")

    out = [
        "## Query plans at 1,000,000 pending changes\n",
        f"State: {WEBHOOKS} webhooks, {HISTORY:,} delivered deliveries, {CHANGES:,} changes "
        f"for {TRAININGS:,} trainings (recorded in {recorded:.1f} s through "
        "`changes_record`). Generated by `python -m bench.explain`; every statement is the "
        "one the service sent, replayed under `EXPLAIN (ANALYZE, BUFFERS)` and rolled "
        "back.\n",
    ]
    collect = statements_of(changes_collect)
    out.append(section("Collect (`changes_collect`, PostgreSQL path)", explained(collect)))
    # Fill the entries for real, as the dispatcher would, for the delivery queries.
    started = time.perf_counter()
    while changes_collect():
        pass
    collected = time.perf_counter() - started
    # Paused webhooks created now get no entries, but make the webhooks table as large as
    # a real one: on 10 rows the planner rightly reads the one page instead of an index.
    Webhook.objects.bulk_create(
        Webhook(name=f"paused {n}", url="http://127.0.0.1:9/paused", is_active=False)
        for n in range(PAUSED_WEBHOOKS)
    )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    out.append(f"Collecting all {CHANGES:,} changes into the change stream "
               f"took {collected:.1f} s.\n")
    out.append(section("Due webhooks (`webhooks_due`, once per tick)",
                       explained(statements_of(webhooks_due))))
    webhook_id = webhook_ids[0]
    claim_statements = statements_of(lambda: delivery_claim(webhook_id=webhook_id))
    out.append(section("Claim (`delivery_claim` → `batch_take`)", explained(claim_statements)))

    def claim_and_record():
        claim = delivery_claim(webhook_id=webhook_id)
        delivery_record(claim, SendResult(200, "", "", "", 0.01))

    everything = statements_of(claim_and_record)
    record_statements = everything[len(claim_statements):]
    out.append(section("Record (`delivery_record`)",
                       explained(record_statements, prepare=claim_statements)))
    out.append(f"_{timezone.now():%Y-%m-%d %H:%M} UTC._\n")
    print("\n".join(out))


if __name__ == "__main__":
    main()
