"""Processes the bench starts: each sets Django up, says "ready", waits for "go" on stdin.

    python -m bench.child dispatcher          the embedded dispatcher until stdin closes
    python -m bench.child drain               collect and deliver everything, print figures
    python -m bench.child bare URL W B SIZE   POST W webhooks' B batches with requests

Measured code runs in its own process so that the partner (in the bench's process) never
shares a GIL with it, and so that the drain's peak memory is its own.
"""

from __future__ import annotations

import json
import sys
import threading
import time


def _ready_and_wait() -> None:
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        sys.exit(0)


def _peak_rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def dispatcher() -> None:
    from django.conf import settings

    from deliveries.dispatcher import Dispatcher

    _ready_and_wait()
    running = Dispatcher(
        sends_in_flight=settings.WEBHOOK_SENDS_IN_FLIGHT,
        tick_seconds=settings.WEBHOOK_TICK_SECONDS,
    )
    # Stop when the bench closes our stdin (or says anything).
    threading.Thread(target=lambda: (sys.stdin.readline(), running.stop()), daemon=True).start()
    running.run()


def drain() -> None:
    """Collect every recorded change and deliver every batch, in this one process, until
    nothing is left: each tick collects everything, then the delivery engine sends the due
    webhooks' batches as a Celery send task runs it (deliveries.tasks)."""
    from changes.models import Change
    from deliveries.engine import Engine
    from deliveries.models import Delivery, PendingEntry
    from deliveries.services import dispatch_tick

    _ready_and_wait()
    started = time.perf_counter()
    ticks = 0
    collecting = 0.0
    while True:
        ticks += 1
        tick_started = time.perf_counter()
        due = dispatch_tick(time_budget=3600)
        collecting += time.perf_counter() - tick_started
        if due:
            engine = Engine(sends_in_flight=len(due), webhook_ids=due, close_connection=False)
            engine.run(until_idle=True)
        if not due and not Change.objects.exists() and not PendingEntry.objects.exists() and (
            not Delivery.objects.exclude(state=Delivery.State.DELIVERED).exists()
        ):
            break
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "peak_rss_mb": _peak_rss_mb(), "ticks": ticks,
                      "collect_seconds": collecting}), flush=True)


def bare(url: str, webhooks: int, batches: int, batch_size: int) -> None:
    """The baseline: one requests.Session posting the very bodies the dispatcher sends."""
    import requests

    from bench.workloads import batch_bodies

    bodies = batch_bodies(batches=batches, batch_size=batch_size)
    session = requests.Session()
    session.trust_env = False
    _ready_and_wait()
    for body in bodies:
        for number in range(webhooks):
            response = session.post(
                f"{url}/w/{number}", data=body, headers={"Content-Type": "application/json"},
                timeout=15,
            )
            response.raise_for_status()
    print("done", flush=True)


def main(argv: list[str]) -> None:
    import django

    django.setup()
    role, *args = argv
    if role == "dispatcher":
        dispatcher()
    elif role == "drain":
        drain()
    elif role == "bare":
        bare(args[0], int(args[1]), int(args[2]), int(args[3]))
    else:
        raise SystemExit(f"unknown role {role!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
