"""Scale-out: do more Celery worker processes deliver more batches, with every guarantee?

    python -m bench.scaleout                         # 1, 2 and 4 worker processes
    python -m bench.scaleout --workers 1,2 --seconds 20 --json scaleout.json

For each worker count it starts, against a PostgreSQL database of its own (created anew,
`springhook_scaleout` by default) and a private redis-server, the production processes:
`celery -A springhook worker --pool prefork -c N` (or, with `--layout instances`, N
workers with one process each, as on N machines) and one `celery -A springhook beat`.
200 webhooks point at paths of one local partner that answers 200 after a fixed delay
(20 ms by default, like a real partner's processing), so that what is measured is how
many sends the workers keep going at once, not how fast one loopback request is.

Changes stream in at a steady rate, each for an object of its own (nothing coalesces),
so the checks are exact. After a warm-up, batches per second are counted over the
measuring window; then the stream stops and the run waits until everything arrived.
Checked on every run: every change delivered to every webhook, exactly once, in order;
no webhook-id received twice; no webhook with two requests in flight at once.

On a machine with few cores, worker processes beyond the cores share them with
PostgreSQL, Redis, beat and this process: the table says how many cores there were.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.environment import database_recreate
from tests.support.cluster import Cluster, RedisServer
from tests.support.fast_partner import FastPartner


@dataclass
class RunResult:
    workers: int
    layout: str
    batches_per_second: float
    entries_per_second: float
    mean_batch_entries: float
    changes_recorded: int
    drain_seconds: float
    load_average: float  # the machine's 1-minute load at the end of the window
    checks: str  # "ok" or what failed


def django_setup(*, database_url: str, environment: dict[str, str]) -> None:
    os.environ.update(environment)
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "springhook.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def changes_stream(*, rate: float, seconds: float) -> int:
    """Record `rate` changes per second for `seconds`, one object each; return how many."""
    from changes.services import change_record

    started = time.monotonic()
    recorded = 0
    while (elapsed := time.monotonic() - started) < seconds:
        while recorded < rate * elapsed:
            recorded += 1
            change_record(object_kind="training", object_id=recorded, action="update")
        time.sleep(0.01)
    return recorded


def entries_of(request) -> list[int]:
    return [entry["id"] for entry in json.loads(request.body)["changes"]]


def run_checks(requests: list, *, webhooks: int, recorded: int, in_flight_peak: dict) -> str:
    problems = []
    repeated = [id_ for id_, count in Counter(r.webhook_id for r in requests).items() if count > 1]
    if repeated:
        problems.append(f"{len(repeated)} webhook-ids received more than once")
    by_path: dict[str, list[int]] = {}
    for request in requests:  # arrival order
        by_path.setdefault(request.path, []).extend(entries_of(request))
    expected = list(range(1, recorded + 1))
    wrong = [path for path, ids in by_path.items() if ids != expected]
    if len(by_path) != webhooks or wrong:
        problems.append(
            f"{webhooks - len(by_path) + len(wrong)} webhooks missing changes or out of order"
        )
    overlapping = [path for path, peak in in_flight_peak.items() if peak > 1]
    if overlapping:
        problems.append(f"{len(overlapping)} webhooks had two requests in flight")
    return "; ".join(problems) or "ok"


def run_once(
    *, workers: int, layout: str, partner: FastPartner, webhooks: int, environment: dict,
    args: argparse.Namespace, log_dir: Path,
) -> RunResult:
    from bench.workloads import tables_clear

    tables_clear(webhooks=False)
    partner.reset()
    with Cluster(environment=environment, log_dir=log_dir / f"{layout}-{workers}") as cluster:
        if layout == "instances":
            for number in range(workers):
                cluster.worker(f"worker{number + 1}", concurrency=1)
        else:
            cluster.worker("worker", concurrency=workers)
        cluster.beat("beat")

        stream_started = time.time()
        recorded = changes_stream(rate=args.rate, seconds=args.warmup + args.seconds)
        stream_ended = time.time()
        load_average = os.getloadavg()[0]
        expected_entries = webhooks * recorded
        deadline = time.monotonic() + args.drain_timeout
        while time.monotonic() < deadline:
            if sum(len(entries_of(r)) for r in partner.requests) >= expected_entries:
                break
            time.sleep(0.5)
        drain_seconds = time.time() - stream_ended
        time.sleep(1)  # a duplicate, if any, would arrive now
    requests = partner.requests
    window_start = stream_started + args.warmup
    window = [r for r in requests if window_start <= r.arrived_at < stream_ended]
    entries = sum(len(entries_of(r)) for r in window)
    return RunResult(
        workers=workers,
        layout=layout,
        batches_per_second=len(window) / args.seconds,
        entries_per_second=entries / args.seconds,
        mean_batch_entries=entries / len(window) if window else 0.0,
        changes_recorded=recorded,
        drain_seconds=drain_seconds,
        load_average=load_average,
        checks=run_checks(
            requests, webhooks=webhooks, recorded=recorded, in_flight_peak=partner.in_flight_peak
        ),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url",
                        default="postgres://root@127.0.0.1:5432/springhook_scaleout",
                        help="a database of the benchmark's own: it is dropped and created")
    parser.add_argument("--workers", default="1,2,4", help="worker process counts to run")
    parser.add_argument("--layout", choices=["concurrency", "instances"], default="concurrency",
                        help="one worker with -c N, or N workers with -c 1")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run the worker counts this many times, interleaved; report medians")
    parser.add_argument("--webhooks", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20, help="changes recorded per second")
    parser.add_argument("--seconds", type=float, default=30, help="measuring window")
    parser.add_argument("--warmup", type=float, default=10)
    parser.add_argument("--drain-timeout", type=float, default=180)
    parser.add_argument("--partner-delay", type=float, default=0.02,
                        help="seconds the partner takes to answer each request")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--log-dir", type=Path, help="keep the processes' logs here")
    args = parser.parse_args(argv)
    worker_counts = [int(count) for count in args.workers.split(",")]

    environment = {
        "WEBHOOK_ALLOW_PRIVATE_URLS": "1",
        # No bundling wait: every webhook with a change is due, so the workers are the
        # limit. The 1 s tick is production's default.
        "WEBHOOK_BUNDLE_DELAY": "0",
        "WEBHOOK_TICK_SECONDS": "1",
        "LOG_LEVEL": "WARNING",
    }
    database_recreate(args.database_url)
    django_setup(database_url=args.database_url, environment=environment)
    from webhooks.models import Webhook

    results = []
    with (
        tempfile.TemporaryDirectory(prefix="scaleout-") as scratch,
        FastPartner(answer_delay=args.partner_delay) as partner,
        RedisServer(Path(scratch) / "redis") as broker,
    ):
        Webhook.objects.all().delete()
        Webhook.objects.bulk_create(
            Webhook(name=f"Partner {number}", url=f"{partner.url}/hook/{number}")
            for number in range(args.webhooks)
        )
        environment = {
            **environment,
            "DATABASE_URL": args.database_url,
            "CELERY_BROKER_URL": broker.url,
            "DJANGO_SETTINGS_MODULE": "springhook.settings",
        }
        for workers in worker_counts * args.rounds:
            print(f"running {workers} worker process(es) ({args.layout}) …", flush=True)
            result = run_once(
                workers=workers, layout=args.layout, partner=partner, webhooks=args.webhooks,
                environment=environment, args=args, log_dir=args.log_dir or Path(scratch),
            )
            results.append(result)
            print(f"  {result.batches_per_second:.1f} batches/s, checks: {result.checks}",
                  flush=True)

    print(
        f"\n{args.webhooks} webhooks, {args.rate:g} changes/s (each to all webhooks), partner "
        f"answers after {args.partner_delay * 1000:g} ms, {os.cpu_count()} CPU cores, "
        f"{args.seconds:g} s window after {args.warmup:g} s warm-up\n"
    )
    print("| worker processes | batches/s | entries/s | entries/batch | drain s | load | checks |")
    print("|---:|---:|---:|---:|---:|---:|---|")
    for r in results:
        print(f"| {r.workers} | {r.batches_per_second:.1f} | {r.entries_per_second:,.0f} | "
              f"{r.mean_batch_entries:.1f} | {r.drain_seconds:.1f} | {r.load_average:.1f} | "
              f"{r.checks} |")
    medians = {
        count: statistics.median(r.batches_per_second for r in results if r.workers == count)
        for count in worker_counts
    }
    base = medians[worker_counts[0]]
    print("\nmedian batches/s: " + ", ".join(
        f"{count}: {median:.1f} ({median / base:.2f}x)" if base else f"{count}: {median:.1f}"
        for count, median in medians.items()
    ))
    if args.json:
        args.json.write_text(json.dumps(
            {"parameters": vars(args) | {"json": str(args.json), "cpu_count": os.cpu_count()},
             "runs": [asdict(r) for r in results]}, indent=2, default=str))
    return 0 if all(r.checks == "ok" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
