"""Time the operators' pages on a large history: 100 webhooks, 1,000,000 deliveries.

    DATABASE_URL=postgres://root@127.0.0.1:5432/postgres python -m bench.dashboard
    python -m bench.dashboard --deliveries 200000 --runs 5     # smaller, quicker
    python -m bench.dashboard --reuse                          # keep the loaded database

It builds its own database (``springhook_bench_dashboard`` on the server DATABASE_URL
names; dropped and made anew unless ``--reuse``), migrates it, and loads the history with
set-based ``INSERT … SELECT generate_series`` statements: deliveries spread evenly over
the last 30 days (the retention window), 2 entries each, 10% with a failed attempt before
the accepted one, a few webhooks failing or paused with a backlog. Then it requests the
dashboard, one webhook's health page, the delivery search "training <id>" and /metrics
through Django's test client as a superuser, and prints the query count and the
median/min time of each. PostgreSQL only: that is where production keeps its history.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

from bench.environment import database_recreate, database_url_named

BENCH_DATABASE = "springhook_bench_dashboard"


def _setup(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url_named(database_url, BENCH_DATABASE)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "springhook.settings")
    os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "testserver,localhost")
    import django

    django.setup()


def load(*, webhooks: int, deliveries: int) -> None:
    from django.core.management import call_command
    from django.db import connection

    from deliveries.models import DeliveryBody

    call_command("migrate", verbosity=0)
    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO webhooks_webhook (name, url, description, is_active, secret,
                previous_secret, paused_reason, created_at, updated_at, last_success_at,
                failing_since)
            SELECT 'Partner ' || lpad(g::text, 3, '0'), 'https://partner' || g || '.example/hook',
                '', g %% 50 <> 7, 'whsec_benchbenchbenchbenchbenchbench', '',
                CASE WHEN g %% 50 = 7 THEN 'Paused by an operator.' ELSE '' END,
                now() - interval '31 days', now(), now(),
                CASE WHEN g %% 20 = 3 THEN now() - interval '2 hours' END
            FROM generate_series(1, %s) AS g
            """,
            [webhooks],
        )
        # The GIN index is built once after the load: far quicker than row by row.
        cursor.execute("DROP INDEX IF EXISTS delivery_body_changes")
        payload = (
            "'{\"changes\":[{\"action\":\"update\",\"object\":\"training\",\"id\":' "
            "|| (g %% 400000) || ',\"url\":\"https://api.example/trainings/' || (g %% 400000) "
            "|| '\"},{\"action\":\"update\",\"object\":\"institute\",\"id\":' "
            "|| (g %% 5000) || ',\"url\":\"https://api.example/institutes/' || (g %% 5000) "
            "|| '\"}]}'"
        )
        digest = f"encode(sha256(convert_to({payload}, 'UTF8')), 'hex')"
        cursor.execute(
            f"INSERT INTO deliveries_deliverybody (digest, payload) "
            f"SELECT DISTINCT {digest}, {payload} FROM generate_series(1, %s) AS g "
            f"ON CONFLICT (digest) DO NOTHING",
            [deliveries],
        )
        cursor.execute(
            f"""
            INSERT INTO deliveries_delivery (webhook_id, message_id, body_id, entry_count,
                state, attempt_count, lease_token, last_status_code, last_error_kind,
                created_at, last_attempt_at, delivered_at, is_test)
            SELECT hooks.ids[1 + g %% cardinality(hooks.ids)], 'msg_bench_' || g,
                {digest},
                2, 'delivered', CASE WHEN g %% 10 = 0 THEN 2 ELSE 1 END, '', 200, '',
                at, at, at + interval '200 milliseconds', false
            FROM generate_series(1, %s) AS g
            CROSS JOIN (SELECT array_agg(id ORDER BY id) AS ids FROM webhooks_webhook) AS hooks
            CROSS JOIN LATERAL (
                SELECT now() - (g::float8 / %s) * interval '30 days' AS at
            ) AS times
            """,
            [deliveries, deliveries],
        )
        cursor.execute(
            """
            INSERT INTO deliveries_deliveryattempt (delivery_id, webhook_id, number,
                started_at, duration, accepted, status_code, error_kind, error_message,
                response_body)
            SELECT id, webhook_id, 1, created_at, 0.05 + (id % 97) / 200.0,
                attempt_count = 1, CASE WHEN attempt_count = 1 THEN 200 ELSE 500 END,
                CASE WHEN attempt_count = 1 THEN '' ELSE 'http_status' END, '', ''
            FROM deliveries_delivery
            UNION ALL
            SELECT id, webhook_id, 2, created_at + interval '10 seconds', 0.08, true, 200, '',
                '', ''
            FROM deliveries_delivery WHERE attempt_count = 2
            """
        )
        # Failing webhooks have an open batch and a backlog of pending entries.
        empty = DeliveryBody.objects.store(['{"changes":[]}'])['{"changes":[]}']
        cursor.execute(
            """
            INSERT INTO deliveries_delivery (webhook_id, message_id, body_id, entry_count,
                state, attempt_count, lease_token, last_status_code, last_error_kind,
                created_at, last_attempt_at, next_attempt_at, is_test)
            SELECT id, 'msg_open_' || id, %s, 0, 'failing', 5, '', 503,
                'http_status', now() - interval '2 hours', now(), now() + interval '5 minutes',
                false
            FROM webhooks_webhook WHERE failing_since IS NOT NULL
            """,
            [empty.digest],
        )
        cursor.execute(
            """
            INSERT INTO deliveries_pendingentry (webhook_id, object_kind, object_id, action,
                first_change_at, last_change_at, seq)
            SELECT w.id, 'training', g, 'update', now() - interval '2 hours', now(), g
            FROM webhooks_webhook AS w CROSS JOIN generate_series(1, 2000) AS g
            WHERE w.failing_since IS NOT NULL OR NOT w.is_active
            """
        )
        cursor.execute(
            "CREATE INDEX delivery_body_changes ON deliveries_deliverybody "
            "USING gin (((payload::jsonb) -> 'changes') jsonb_path_ops)"
        )
    # Fresh statistics and visibility map, as autovacuum would have them in production.
    connection.ensure_connection()
    old_autocommit = connection.get_autocommit()
    connection.set_autocommit(True)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    connection.set_autocommit(old_autocommit)
    print(f"loaded {webhooks} webhooks and {deliveries:,} deliveries in "
          f"{time.monotonic() - started:.1f} s", flush=True)


def measure(*, runs: int) -> None:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    from deliveries.models import Delivery, DeliveryAttempt
    from webhooks.models import Webhook

    user, _ = get_user_model().objects.get_or_create(
        username="bench", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    webhook = Webhook.objects.order_by("id").first()
    pages = {
        "dashboard": reverse("admin:webhooks_webhook_dashboard"),
        "webhook health": reverse("admin:webhooks_webhook_health", args=[webhook.pk]),
        "search 'training 12345'": reverse("admin:deliveries_delivery_changelist")
        + "?q=training+12345",
        "delivery list": reverse("admin:deliveries_delivery_changelist"),
        "/metrics": "/metrics",
    }
    print(f"{Webhook.objects.count()} webhooks, {Delivery.objects.count():,} deliveries, "
          f"{DeliveryAttempt.objects.count():,} attempts")
    print(f"{'page':28} {'queries':>7} {'median ms':>10} {'min ms':>8}")
    for name, url in pages.items():
        client.get(url)  # warm the caches, as a page in use would have them
        timings = []
        for _ in range(runs):
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                response = client.get(url)
                timings.append(time.perf_counter() - started)
            if response.status_code != 200:
                sys.exit(f"{url} answered {response.status_code}")
        print(f"{name:28} {len(queries):>7} {statistics.median(timings) * 1000:>10.1f} "
              f"{min(timings) * 1000:>8.1f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--webhooks", type=int, default=100)
    parser.add_argument("--deliveries", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--reuse", action="store_true", help="measure the loaded database")
    args = parser.parse_args()
    database_url = os.environ.get("DATABASE_URL", "postgres://root@127.0.0.1:5432/postgres")
    if not database_url.startswith("postgres"):
        sys.exit("bench.dashboard needs PostgreSQL: set DATABASE_URL=postgres://…")
    if not args.reuse:
        database_recreate(database_url_named(database_url, BENCH_DATABASE))
    _setup(database_url)
    if not args.reuse:
        load(webhooks=args.webhooks, deliveries=args.deliveries)
    measure(runs=args.runs)


if __name__ == "__main__":
    main()
