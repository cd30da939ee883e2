"""Steady load: do fast partners wait behind slow ones? Deadlocks? Memory? Churn?

    python -m bench.soak                      # 180 s, development settings (DEBUG on)
    python -m bench.soak --seconds 600 --settings production --json soak.json

Thirty webhooks on one local partner: ten answer at once ("fast"), ten answer 500 a
third of the time ("flaky"), ten take 2 s to answer ("slow"). This process saves 30
trainings a second (out of a few thousand, so edits coalesce) for the duration, through
the ORM with change capture on; the embedded dispatcher (`manage.py run_dispatcher`) runs
in a process of its own, with the bundle delay at 2 s. Then saving stops and the run
waits until every webhook has everything.

Reported:
- per group, the lag beyond the bundle delay of every save: from its commit to the
  moment the first batch built after it (which therefore carries it) was accepted,
  minus the bundle delay; p50, p95 and max;
- exactness: saves whose training no later accepted batch carried (must be 0);
- deadlocks: the growth of pg_stat_database.deadlocks of the soak's database;
- the dispatcher's memory: resident size sampled every 2 s, the slope after warm-up
  (the first third) in MB a minute;
- every deliveries_* and changes_* table's live and dead rows (pg_stat_user_tables) at
  the end, and its updates and HOT updates, whatever tables the engine uses now.

Runs on PostgreSQL in a database of its own (bench.environment; `springhook_soak` unless
BENCH_DATABASE_NAME says otherwise), recreated at start.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from bench.environment import bench_database_url, child_environment, database_recreate

ROOT = Path(__file__).resolve().parents[1]
GROUPS = ("fast", "flaky", "slow")
PER_GROUP = 10
BUNDLE_DELAY = 2.0
SLOW_ANSWER = 2.0
FLAKY_SHARE = 1 / 3
TRAININGS = 3000


class MixedPartner:
    """One HTTP server for the three groups: /fast/n, /flaky/n, /slow/n."""

    def __init__(self) -> None:
        partner = self
        self.requests = 0
        self.lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with partner.lock:
                    partner.requests += 1
                group = self.path.split("/")[1]
                status = 200
                if group == "slow":
                    time.sleep(SLOW_ANSWER)
                elif group == "flaky" and random.random() < FLAKY_SHARE:
                    status = 500
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address) -> None:
                pass

        self.server = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> MixedPartner:
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.server.shutdown()
        self.server.server_close()


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except FileNotFoundError:
        return None
    return None


def slope_mb_per_minute(samples: list[tuple[float, float]]) -> float:
    if len(samples) < 3:
        return float("nan")
    times = [t for t, _ in samples]
    sizes = [m for _, m in samples]
    mean_t, mean_m = statistics.fmean(times), statistics.fmean(sizes)
    covariance = sum((t - mean_t) * (m - mean_m) for t, m in samples)
    variance = sum((t - mean_t) ** 2 for t in times)
    return covariance / variance * 60 if variance else float("nan")


def deadlocks() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
        )
        return cursor.fetchone()[0]


def hot_tables() -> dict[str, dict[str, int]]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT relname, n_live_tup, n_dead_tup, n_tup_upd, n_tup_hot_upd, n_tup_del "
            "FROM pg_stat_user_tables WHERE relname LIKE 'deliveries\\_%%' "
            "OR relname LIKE 'changes\\_%%' ORDER BY relname"
        )
        return {
            name: {"live": live, "dead": dead, "updates": updates, "hot_updates": hot,
                   "deletes": deletes}
            for name, live, dead, updates, hot, deletes in cursor.fetchall()
        }


def soak(*, seconds: float, settings_kind: str, saves_per_second: float,
         sends_in_flight: int | None) -> dict:
    from django.db import transaction

    from catalog.models import Institute, Training
    from deliveries.models import Delivery
    from webhooks.models import Webhook

    institute = Institute.objects.create(name="Soak")
    Training.objects.bulk_create(
        Training(institute=institute, reference=f"S{n}", name=f"Soak {n}")
        for n in range(TRAININGS)
    )
    training_ids = list(Training.objects.values_list("pk", flat=True))
    webhook_group: dict[int, str] = {}
    saves: list[tuple[int, float]] = []
    samples: list[tuple[float, float]] = []
    with MixedPartner() as partner:
        for group in GROUPS:
            for n in range(PER_GROUP):
                webhook = Webhook.objects.create(
                    name=f"{group} {n}", url=f"{partner.url}/{group}/{n}"
                )
                webhook_group[webhook.pk] = group
        env = child_environment(
            os.environ["DATABASE_URL"],
            DJANGO_DEBUG="1" if settings_kind == "development" else "0",
            WEBHOOK_BUNDLE_DELAY=str(BUNDLE_DELAY),
            # Failed batches come back quickly, so that the flaky group drains in the run.
            WEBHOOK_RETRY_SCHEDULE="1,2",
            LOG_LEVEL="WARNING",
        )
        if sends_in_flight:
            env["WEBHOOK_SENDS_IN_FLIGHT"] = str(sends_in_flight)
        log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"soak-dispatcher-{os.getpid()}.log"
        with log_path.open("w") as log:
            dispatcher = subprocess.Popen(
                [sys.executable, "manage.py", "run_dispatcher"], cwd=ROOT, env=env,
                stdout=log, stderr=subprocess.STDOUT,
            )
        deadlocks_before = deadlocks()
        try:
            started = time.monotonic()
            next_sample = started
            next_save = started
            while (now := time.monotonic()) < started + seconds:
                if dispatcher.poll() is not None:
                    raise RuntimeError(f"the dispatcher exited; see {log_path}")
                if now >= next_sample:
                    size = rss_mb(dispatcher.pid)
                    if size:  # None or 0 while the process is still being made
                        samples.append((now - started, size))
                    next_sample += 2.0
                if now < next_save:
                    time.sleep(min(next_save, next_sample) - now)
                    continue
                training = Training.objects.get(pk=random.choice(training_ids))
                training.name = f"Soak {random.random():.6f}"
                with transaction.atomic():
                    training.save()
                saves.append((training.pk, time.time()))
                next_save += 1 / saves_per_second
            drained_by = time.monotonic() + 120
            while Delivery.objects.open().exists() or _undelivered():
                if time.monotonic() > drained_by:
                    raise RuntimeError("the soak did not drain within 120 s")
                time.sleep(0.5)
            time.sleep(1.5)  # the statistics are flushed to shared memory every second
            deadlock_count = deadlocks() - deadlocks_before
        finally:
            dispatcher.terminate()
            dispatcher.wait(timeout=60)
        tables = hot_tables()
    lags, missing = _lags(saves, webhook_group)
    warm = [(t, m) for t, m in samples if t >= seconds / 3]
    return {
        "seconds": seconds,
        "settings": settings_kind,
        "saves": len(saves),
        "saves_per_second": len(saves) / seconds,
        "requests": partner.requests,
        "lag_beyond_bundle_delay": {
            group: {"p50": percentile(values, 0.50), "p95": percentile(values, 0.95),
                    "max": max(values, default=float("nan")), "samples": len(values)}
            for group, values in lags.items()
        },
        "missing": missing,
        "deadlocks": deadlock_count,
        "memory_mb_start": samples[0][1] if samples else float("nan"),
        "memory_mb_end": samples[-1][1] if samples else float("nan"),
        "memory_slope_mb_per_min": slope_mb_per_minute(warm),
        "tables": tables,
    }


def _undelivered() -> bool:
    from changes.models import Change
    from deliveries.services import webhooks_due

    return Change.objects.exists() or bool(webhooks_due())


def _lags(saves: list[tuple[int, float]], webhook_group: dict[int, str]):
    """Per group, each save's lag beyond the bundle delay; and the saves never carried."""
    from bisect import bisect_left

    from deliveries.models import Delivery

    # Per webhook and training: (built at, accepted at) of the accepted batches carrying it.
    carried: dict[tuple[int, int], list[tuple[float, float]]] = {}
    for webhook_id, created_at, delivered_at, payload in Delivery.objects.filter(
        state=Delivery.State.DELIVERED, is_test=False
    ).values_list("webhook_id", "created_at", "delivered_at", "body__payload").iterator():
        built, accepted = created_at.timestamp(), delivered_at.timestamp()
        for entry in json.loads(payload)["changes"]:
            if entry["object"] == "training":
                carried.setdefault((webhook_id, entry["id"]), []).append((built, accepted))
    for batches in carried.values():
        batches.sort()
    lags: dict[str, list[float]] = {group: [] for group in GROUPS}
    missing = 0
    for webhook_id, group in webhook_group.items():
        for training_id, saved_at in saves:
            batches = carried.get((webhook_id, training_id), [])
            index = bisect_left(batches, (saved_at, 0.0))
            if index == len(batches):
                missing += 1
                continue
            lags[group].append(batches[index][1] - saved_at - BUNDLE_DELAY)
    return lags, missing


def report(result: dict) -> str:
    lines = [
        f"soak: {result['seconds']:.0f} s, {result['settings']} settings, "
        f"{result['saves']} saves ({result['saves_per_second']:.1f}/s), "
        f"{result['requests']} requests",
        f"{'group':<8}{'p50':>8}{'p95':>8}{'max':>8}{'samples':>9}   lag beyond the "
        f"{BUNDLE_DELAY:.0f} s bundle delay (s)",
    ]
    for group, lag in result["lag_beyond_bundle_delay"].items():
        lines.append(f"{group:<8}{lag['p50']:>8.2f}{lag['p95']:>8.2f}{lag['max']:>8.2f}"
                     f"{lag['samples']:>9}")
    lines += [
        f"saves never carried: {result['missing']}",
        f"deadlocks: {result['deadlocks']}",
        f"dispatcher memory: {result['memory_mb_start']:.1f} → {result['memory_mb_end']:.1f} "
        f"MB, slope after warm-up {result['memory_slope_mb_per_min']:+.2f} MB/min",
        f"{'table':<34}{'live':>9}{'dead':>9}{'updates':>10}{'hot':>9}{'deletes':>10}",
    ]
    for name, row in result["tables"].items():
        lines.append(f"{name:<34}{row['live']:>9}{row['dead']:>9}{row['updates']:>10}"
                     f"{row['hot_updates']:>9}{row['deletes']:>10}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench.soak",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--settings", choices=("development", "production"),
                        default="development",
                        help="development: DEBUG on, as `dev.py run`; production: DEBUG off")
    parser.add_argument("--saves-per-second", type=float, default=30.0)
    parser.add_argument("--sends-in-flight", type=int, default=None,
                        help="the dispatcher's WEBHOOK_SENDS_IN_FLIGHT (default: its default)")
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args(argv)

    os.environ.setdefault("BENCH_DATABASE_NAME", "springhook_soak")
    database_url = bench_database_url()
    os.environ.update(child_environment(database_url))
    database_recreate(database_url)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    result = soak(seconds=args.seconds, settings_kind=args.settings,
                  saves_per_second=args.saves_per_second,
                  sends_in_flight=args.sends_in_flight)
    print(report(result), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
