"""The measurements: each returns figures under the keys of the performance issue.

Every ratio times its two sides in the same run, one after the other, swapping which
side goes first each round, and reports the median of the rounds' ratios: the machine is
shared, so absolute times drift, but two sides measured back to back drift together.
"""

from __future__ import annotations

import contextlib
import gc
import json
import random
import statistics
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.db import connection, transaction
from django.db.models.signals import post_delete, post_save

from bench.environment import python
from bench.partner import FastPartner

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Scale:
    capture_saves: int
    capture_rounds: int
    webhooks_saves: int
    import_feed: int
    import_drop: int
    import_rounds: int
    import_pairs: int
    drain_changes: int
    drain_trainings: int
    drain_small_changes: int
    delivery_webhooks: int
    delivery_batches: int
    delivery_rounds: int
    catchup_trainings: int
    catchup_rounds: int
    latency_webhooks: int
    latency_saves: int
    latency_rounds: int


# Capture alternates in short blocks (5,000 saves a side = 10 blocks of 500): a burst of
# someone else's load then hits both sides, not a whole side.
FULL = Scale(
    capture_saves=500, capture_rounds=10, webhooks_saves=200,
    import_feed=20_000, import_drop=500, import_rounds=7, import_pairs=4,
    drain_changes=1_000_000, drain_trainings=50_000, drain_small_changes=100_000,
    delivery_webhooks=100, delivery_batches=5, delivery_rounds=3,
    catchup_trainings=100_000, catchup_rounds=3,
    latency_webhooks=10, latency_saves=10, latency_rounds=2,
)
QUICK = Scale(
    capture_saves=200, capture_rounds=3, webhooks_saves=200,
    import_feed=5_000, import_drop=500, import_rounds=3, import_pairs=2,
    drain_changes=100_000, drain_trainings=5_000, drain_small_changes=10_000,
    delivery_webhooks=100, delivery_batches=2, delivery_rounds=1,
    catchup_trainings=10_000, catchup_rounds=1,
    latency_webhooks=10, latency_saves=4, latency_rounds=1,
)
BATCH_SIZE = 500
LATENCY_BUNDLE_DELAY = 0.5
LATENCY_TICK = 1.0


# --- Helpers -----------------------------------------------------------------------------


def alternate(rounds: int, side_a: Callable[[], float], side_b: Callable[[], float]):
    """Time both sides `rounds` times, swapping the order; (median of a/b, a times, b times)."""
    times_a, times_b = [], []
    for number in range(rounds):
        if number % 2 == 0:
            times_a.append(side_a())
            times_b.append(side_b())
        else:
            times_b.append(side_b())
            times_a.append(side_a())
    ratios = [a / b for a, b in zip(times_a, times_b, strict=True)]
    return statistics.median(ratios), times_a, times_b


def spread(values: list[float]) -> float:
    """The interquartile range of `values`: how far the middle half of the rounds lies
    apart (0 for fewer than two rounds)."""
    if len(values) < 2:
        return 0.0
    quartiles = statistics.quantiles(values, n=4, method="inclusive")
    return quartiles[2] - quartiles[0]


def cpu_seconds() -> float:
    """CPU seconds used so far by this process and by its PostgreSQL backend (read from
    /proc: the bench runs beside its database server). The backend's are its scheduler
    run time in nanoseconds (`schedstat`), not the 10 ms ticks of `stat`, which are 1 % of
    an import."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    backend_ns = int(Path(f"/proc/{backend}/schedstat").read_text().split()[0])
    return time.process_time() + backend_ns / 1e9


def capture_off() -> None:
    from catalog.models import Institute, Training

    post_save.disconnect(sender=Institute, dispatch_uid="catalog_institute_saved")
    post_delete.disconnect(sender=Institute, dispatch_uid="catalog_institute_deleted")
    post_save.disconnect(sender=Training, dispatch_uid="catalog_training_saved")
    post_delete.disconnect(sender=Training, dispatch_uid="catalog_training_deleted")


def capture_on() -> None:
    from catalog import signals

    signals.connect()


def changes_clear() -> None:
    from bench.workloads import tables_clear

    tables_clear(deliveries=False, webhooks=False)


def changes_count() -> int:
    from changes.models import Change

    return Change.objects.count()


class Child:
    """A `python -m bench.child` process, started ready and waiting for "go"."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [python(), "-m", "bench.child", *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT,
        )
        line = self.process.stdout.readline()
        if line.strip() != "ready":
            self.process.kill()
            raise RuntimeError(f"bench child {args[0]} did not start: {line!r}")
        self.profiler = None
        if profile_dir := env.get("BENCH_PROFILE_DIR"):
            # py-spy samples every thread of the child, from outside, while it is measured.
            Path(profile_dir).mkdir(parents=True, exist_ok=True)
            output = Path(profile_dir) / f"{args[0]}-{time.time_ns()}.txt"
            self.profiler = subprocess.Popen(
                [str(Path(python()).parent / "py-spy"), "record", "--pid",
                 str(self.process.pid), "--format", "raw", "--rate", "200", "--output",
                 str(output), *(["--idle"] if env.get("BENCH_PROFILE_IDLE") else [])],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            time.sleep(1)  # py-spy attaches

    def go(self) -> None:
        self.process.stdin.write("go\n")
        self.process.stdin.flush()

    def read_line(self) -> str:
        return self.process.stdout.readline()

    def stop(self, *, kill: bool = False) -> None:
        if kill:
            self.process.kill()
        else:
            with contextlib.suppress(BrokenPipeError):
                self.process.stdin.close()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.profiler is not None:
            self.profiler.wait(timeout=60)  # it writes its file when the child is gone


def partner_wait(partner: FastPartner, count: int, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while partner.request_count < count:
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"the partner received {partner.request_count} requests, expected {count}"
            )
        time.sleep(0.002)


def partner_wait_entries(
    partner: FastPartner, *, paths: int, per_path: int, batches: int, timeout: float
) -> float:
    """Wait until each of `paths` paths received `per_path` distinct trainings; the
    arrival (time.time) of the last request. At least `batches` requests come first
    (coalescing may make fewer, fuller batches, never more), so the entries are parsed
    only at the end, outside the measured time."""
    partner_wait(partner, batches, timeout=timeout)
    deadline = time.monotonic() + timeout
    while True:
        received: dict[str, set[int]] = {}
        for _, path, change in entries_of(partner, "/"):
            received.setdefault(path, set()).add(change["id"])
        if len(received) == paths and all(len(ids) == per_path for ids in received.values()):
            return max(request.arrived_at for request in partner.requests)
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(received)} paths received, expected {paths}×{per_path}")
        time.sleep(0.05)


def trainings_record(count: int) -> None:
    """One update for each of trainings 1..count, in one transaction, in id order: the
    stream carries them as the bare loop's batches (bench.workloads.batch_bodies)."""
    from bench.workloads import TRAININGS_PER_INSTITUTE
    from changes.services import ChangeEntry, changes_record

    with transaction.atomic():
        changes_record(
            entries=(
                ChangeEntry("training", n, "update", n // TRAININGS_PER_INSTITUTE)
                for n in range(1, count + 1)
            )
        )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE changes_change")


def entries_of(partner: FastPartner, prefix: str) -> list[tuple[float, str, dict]]:
    """(arrival, path, change) for every change the partner received on paths `prefix`…"""
    return [
        (request.arrived_at, request.path, change)
        for request in partner.requests
        if request.path.startswith(prefix)
        for change in json.loads(request.body)["changes"]
    ]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


# --- Capture -----------------------------------------------------------------------------


def _trainings_make(count: int, label: str):
    from catalog.models import Institute, Training

    capture_off()
    try:
        institute = Institute.objects.create(name=f"bench {label}")
        return Training.objects.bulk_create(
            Training(institute=institute, reference=f"{label}-{n}", name=f"Training {n}")
            for n in range(count)
        )
    finally:
        capture_on()


def _saves_time(trainings, *, capture: bool) -> float:
    if not capture:
        capture_off()
    try:
        changes_clear()
        stamp = random.random()
        started = time.perf_counter()
        for training in trainings:
            training.name = f"Training {stamp}"
            with transaction.atomic():
                training.save()
        elapsed = time.perf_counter() - started
        recorded = changes_count()
        expected = len(trainings) if capture else 0
        if recorded != expected:
            raise RuntimeError(f"{recorded} changes recorded by {len(trainings)} saves")
        return elapsed
    finally:
        capture_on()
        changes_clear()


def measure_capture(scale: Scale, partner: FastPartner, env: dict[str, str]) -> dict:
    from bench.workloads import tables_clear, webhooks_create

    tables_clear()
    webhooks_create(base_url=partner.url, count=1)
    trainings = _trainings_make(scale.capture_saves, "capture")
    ratio, with_capture, without = alternate(
        scale.capture_rounds,
        lambda: _saves_time(trainings, capture=True),
        lambda: _saves_time(trainings, capture=False),
    )

    few = trainings[: scale.webhooks_saves]

    def with_webhooks(count: int) -> float:
        tables_clear()
        webhooks_create(base_url=partner.url, count=count)
        return _saves_time(few, capture=True)

    webhooks_ratio, hundred, one = alternate(
        scale.capture_rounds, lambda: with_webhooks(100), lambda: with_webhooks(1)
    )
    return {
        "capture_ratio": ratio,
        "capture_webhooks_ratio": webhooks_ratio,
        "_capture_ms_per_save": 1000 * statistics.median(with_capture) / len(trainings),
        "_capture_off_ms_per_save": 1000 * statistics.median(without) / len(trainings),
    }


# --- Import ------------------------------------------------------------------------------


# The trainings every side of the import starts from, kept for the bench's connection.
_IMPORT_START_TABLE = "bench_import_start"


def measure_import(scale: Scale, partner: FastPartner, env: dict[str, str]) -> dict:
    """The re-import with capture ÷ the same re-import with capture replaced by no-ops, in
    CPU seconds of this process and its PostgreSQL backend (cpu_seconds): what capture
    costs the import, without the time other work on the machine took from it (the wall
    time of the same imports is a detail).

    Every side starts from the same state: the same trainings with the same ids, freshly
    written, vacuumed and analysed, after a checkpoint (so that every side writes the same
    full-page images) at the start of a WAL segment, garbage collected, with the
    collector off while it runs. A round is two pairs in the order with, without, without,
    with (or the reverse, every other round), so that a drift of the machine during a
    round weighs on both sides alike; its ratio is the sum of its with-capture sides ÷
    the sum of its without sides. One pair before the rounds warms the caches and is not
    counted.
    """
    import catalog.services as catalog_services
    from bench.workloads import tables_clear, webhooks_create
    from catalog.models import Institute, Training
    from catalog.services import FeedRecord, import_run

    tables_clear()
    webhooks_create(base_url=partner.url, count=1)
    feed = [
        FeedRecord(reference=f"R-{n}", name=f"Training {n}", description="A training.",
                   price=None)
        for n in range(scale.import_feed)
    ]
    # The feed again with every training renamed, and 500 records dropped, spread through
    # it: 500 `destroy` changes and one `import` change; the updates (every training)
    # make the import last long enough (over a second at full scale) that the ratio is
    # not noise.
    step = scale.import_feed // scale.import_drop
    kept = [
        FeedRecord(reference=record.reference, name=record.name + " (revised)",
                   description=record.description, price=record.price)
        for n, record in enumerate(feed) if n % step != step - 1
    ]
    quote = connection.ops.quote_name
    trainings = quote(Training._meta.db_table)
    institutes = quote(Institute._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {trainings}, {institutes} RESTART IDENTITY")
    institute = Institute.objects.create(name="bench import")
    import_run(institute_id=institute.pk, records=feed)
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {_IMPORT_START_TABLE}")
        cursor.execute(
            f"CREATE TEMPORARY TABLE {_IMPORT_START_TABLE} AS SELECT * FROM {trainings}"
        )

    def start_state() -> None:
        changes_clear()
        with connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {trainings}")
            cursor.execute(
                f"INSERT INTO {trainings} SELECT * FROM {_IMPORT_START_TABLE} ORDER BY id"
            )
            cursor.execute(f"VACUUM ANALYZE {trainings}, {institutes}")
            cursor.execute("CHECKPOINT")
            cursor.execute("SELECT pg_switch_wal()")
        gc.collect()

    counted: list[int] = []
    capture_shares: list[float] = []

    def reimport(*, capture: bool) -> tuple[float, float]:
        """(wall seconds, CPU seconds) of one re-import."""
        start_state()
        originals = (catalog_services.change_record, catalog_services.changes_record)
        in_capture = [0.0]

        def timed(record: Callable) -> Callable:
            def call(**kwargs):
                started = cpu_seconds()
                try:
                    return record(**kwargs)
                finally:
                    in_capture[0] += cpu_seconds() - started
            return call

        if capture:
            catalog_services.change_record, catalog_services.changes_record = map(
                timed, originals)
        else:
            catalog_services.change_record = lambda **kwargs: None
            catalog_services.changes_record = lambda **kwargs: 0
        gc.disable()
        try:
            cpu_started = cpu_seconds()
            started = time.perf_counter()
            import_run(institute_id=institute.pk, records=kept)
            elapsed = time.perf_counter() - started
            cpu = cpu_seconds() - cpu_started
        finally:
            gc.enable()
            catalog_services.change_record, catalog_services.changes_record = originals
        if capture:
            counted.append(changes_count())
            capture_shares.append(in_capture[0] / cpu)
        return elapsed, cpu

    reimport(capture=True)
    reimport(capture=False)
    rounds: list[dict[bool, list[tuple[float, float]]]] = []
    for number in range(scale.import_rounds):
        sides: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
        for pair in range(scale.import_pairs):
            first = (number + pair) % 2 == 0
            for capture in (first, not first):
                sides[capture].append(reimport(capture=capture))
        rounds.append(sides)
    changes_clear()
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE {_IMPORT_START_TABLE}")
        cursor.execute(f"TRUNCATE {trainings}, {institutes} RESTART IDENTITY")

    def ratios(which: int) -> list[float]:
        return [
            sum(side[which] for side in sides[True]) / sum(side[which] for side in sides[False])
            for sides in rounds
        ]

    wall_ratios, cpu_ratios = ratios(0), ratios(1)
    with_capture = [side for sides in rounds for side in sides[True]]
    return {
        "import_changes": counted[0] if len(set(counted)) == 1 else counted,
        "import_ratio": statistics.median(cpu_ratios),
        "import_ratio_spread": spread(cpu_ratios),
        "_import_ratio_min": min(cpu_ratios),
        "_import_ratio_max": max(cpu_ratios),
        "_import_seconds": statistics.median(wall for wall, _ in with_capture),
        "_import_cpu_seconds": statistics.median(cpu for _, cpu in with_capture),
        # The same rounds in wall time: with the time other work on the machine took.
        "_import_wall_ratio": statistics.median(wall_ratios),
        "_import_wall_ratio_spread": spread(wall_ratios),
        # CPU seconds inside change_record/changes_record ÷ the import's, on the capture
        # side: the direct cost of the calls the other side replaces by no-ops.
        "_import_capture_cpu_share": statistics.median(capture_shares),
    }


# --- Drain -------------------------------------------------------------------------------


def _drain(partner: FastPartner, env: dict[str, str], *, changes: int, trainings: int) -> dict:
    from bench.workloads import TRAININGS_PER_INSTITUTE, tables_clear, webhooks_create
    from changes.services import ChangeEntry, changes_record

    tables_clear()
    partner.reset()
    webhooks_create(base_url=partner.url, count=1, path="/drain")
    started = time.perf_counter()
    with transaction.atomic():
        changes_record(
            entries=(
                ChangeEntry(
                    "training", 1 + n % trainings, "update",
                    (1 + n % trainings) // TRAININGS_PER_INSTITUTE,
                )
                for n in range(changes)
            )
        )
    recorded_in = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE changes_change")
    child = Child(["drain"], {**env, "WEBHOOK_BUNDLE_DELAY": "0"})
    child.go()
    result = json.loads(child.read_line())
    child.stop()
    received = {change["id"] for _, _, change in entries_of(partner, "/drain")}
    if len(received) != trainings:
        raise RuntimeError(f"the partner received {len(received)} of {trainings} trainings")
    return {**result, "record_seconds": recorded_in, "batches": partner.request_count}


def measure_drain(scale: Scale, partner: FastPartner, env: dict[str, str]) -> dict:
    per_training = scale.drain_changes // scale.drain_trainings
    small_trainings = scale.drain_small_changes // per_training
    small_first = _drain(partner, env, changes=scale.drain_small_changes,
                         trainings=small_trainings)
    large = _drain(partner, env, changes=scale.drain_changes, trainings=scale.drain_trainings)
    small_again = _drain(partner, env, changes=scale.drain_small_changes,
                         trainings=small_trainings)
    small_seconds = statistics.mean([small_first["seconds"], small_again["seconds"]])
    return {
        "drain_rate": scale.drain_changes / large["seconds"],
        "drain_peak_rss_mb": large["peak_rss_mb"],
        "drain_scaling": (large["seconds"] / scale.drain_changes)
        / (small_seconds / scale.drain_small_changes),
        "_drain_seconds": large["seconds"],
        "_drain_collect_seconds": large["collect_seconds"],
        "_drain_record_seconds": large["record_seconds"],
        "_drain_small_seconds": small_seconds,
    }


# --- Delivery throughput -----------------------------------------------------------------


class CeleryWorker:
    """`celery -A springhook worker -c 2` on the bench's Redis database; the bench ticks."""

    def __init__(self, env: dict[str, str]) -> None:
        from springhook.celery import app

        self.app = app
        self.process = subprocess.Popen(
            [str(Path(python()).parent / "celery"), "-A", "springhook", "worker", "-c", "2",
             "-P", "prefork", "--loglevel", "WARNING", "-n", f"bench-{time.time_ns()}@%h",
             "--without-gossip", "--without-mingle", "--without-heartbeat"],
            env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while not self.app.control.ping(timeout=0.5):
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.stop()
                raise RuntimeError("the Celery worker did not start")

    def ticking(self, stop: threading.Event, tick: float) -> None:
        # What celery beat does: send the dispatch tick every WEBHOOK_TICK_SECONDS.
        while not stop.is_set():
            self.app.send_task("deliveries.dispatch_tick", expires=max(tick, 1.0))
            stop.wait(tick)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def measure_delivery(scale: Scale, partner: FastPartner, env: dict[str, str]) -> dict:
    """100 webhooks × 5 batches of 500 trainings, against a bare loop posting the same
    bodies: through the change stream (changes → collector → partner, what every
    ordinary change takes) by the embedded dispatcher and by Celery, and through the
    webhooks' own entries (the resync path, bench.workloads.pending_fill). Bundle delay 0:
    the figures measure the engine, not the wait."""
    from bench.workloads import pending_fill, tables_clear, webhooks_create

    env = {**env, "WEBHOOK_BUNDLE_DELAY": "0"}
    tables_clear()
    webhook_ids = webhooks_create(base_url=partner.url, count=scale.delivery_webhooks)
    total = scale.delivery_webhooks * scale.delivery_batches
    per_webhook = scale.delivery_batches * BATCH_SIZE
    timeout = 600

    def fill_stream() -> None:
        tables_clear(webhooks=False)
        trainings_record(per_webhook)
        partner.reset()

    def fill_resync() -> None:
        tables_clear(webhooks=False)
        pending_fill(webhook_ids=webhook_ids, per_webhook=per_webhook)
        partner.reset()

    def delivered_since(started: float) -> float:
        last = partner_wait_entries(partner, paths=len(webhook_ids), per_path=per_webhook,
                                    batches=total, timeout=timeout)
        return total / (last - started)

    def embedded(fill: Callable[[], None]) -> float:
        fill()
        child = Child(["dispatcher"], env)
        started = time.time()
        child.go()
        rate = delivered_since(started)
        child.stop()
        return rate

    def bare() -> float:
        partner.reset()
        child = Child(["bare", partner.url, str(scale.delivery_webhooks),
                       str(scale.delivery_batches), str(BATCH_SIZE)], env)
        started = time.time()
        child.go()
        rate = delivered_since(started)
        child.stop()
        return rate

    worker = CeleryWorker(env)

    def celery() -> float:
        fill_stream()
        stop = threading.Event()
        ticker = threading.Thread(target=worker.ticking, args=(stop, 1.0))
        started = time.time()
        ticker.start()
        rate = delivered_since(started)
        stop.set()
        ticker.join()
        time.sleep(1)  # let the worker record its last attempt before the next round
        return rate

    sides = {
        "stream": lambda: embedded(fill_stream),
        "bare": bare,
        "celery": celery,
        "resync": lambda: embedded(fill_resync),
    }
    rates: dict[str, list[float]] = {name: [] for name in sides}
    order = list(sides)
    try:
        for number in range(scale.delivery_rounds):
            shift = number % len(order)
            for name in order[shift:] + order[:shift]:
                rates[name].append(sides[name]())
    finally:
        worker.stop()

    def ratio(name: str) -> float:
        return statistics.median(
            side / bare for side, bare in zip(rates[name], rates["bare"], strict=True)
        )

    return {
        "delivery_ratio": ratio("stream"),
        "celery_delivery_ratio": ratio("celery"),
        "resync_delivery_ratio": ratio("resync"),
        "_embedded_batches_per_s": statistics.median(rates["stream"]),
        "_bare_batches_per_s": statistics.median(rates["bare"]),
        "_celery_batches_per_s": statistics.median(rates["celery"]),
        "_resync_batches_per_s": statistics.median(rates["resync"]),
    }


# --- One partner catching up -------------------------------------------------------------


def measure_catchup(scale: Scale, partner: FastPartner, env: dict[str, str]) -> dict:
    """One webhook back from an outage: a backlog of `catchup_trainings` trainings already
    collected into the stream, sent by the embedded dispatcher, against a bare loop posting
    the same batches to the same address. Bundle delay 0."""
    from bench.workloads import tables_clear, webhooks_create
    from deliveries.services import changes_collect

    env = {**env, "WEBHOOK_BUNDLE_DELAY": "0"}
    batches = -(-scale.catchup_trainings // BATCH_SIZE)
    timeout = 600

    def engine() -> float:
        tables_clear()
        partner.reset()
        webhooks_create(base_url=partner.url, count=1)
        trainings_record(scale.catchup_trainings)
        while changes_collect():  # the backlog waits in the stream, as after an outage
            pass
        child = Child(["dispatcher"], env)
        started = time.time()
        child.go()
        last = partner_wait_entries(partner, paths=1, per_path=scale.catchup_trainings,
                                    batches=batches, timeout=timeout)
        child.stop()
        return last - started

    def bare() -> float:
        partner.reset()
        child = Child(["bare", partner.url, "1", str(batches), str(BATCH_SIZE)], env)
        started = time.time()
        child.go()
        last = partner_wait_entries(partner, paths=1, per_path=scale.catchup_trainings,
                                    batches=batches, timeout=timeout)
        child.stop()
        return last - started

    ratio, bares, engines = alternate(scale.catchup_rounds, bare, engine)
    return {
        "catchup_ratio": ratio,
        "_catchup_seconds": statistics.median(engines),
        "_catchup_bare_seconds": statistics.median(bares),
        "_catchup_entries_per_s": scale.catchup_trainings / statistics.median(engines),
    }


# --- Latency and isolation ---------------------------------------------------------------


def measure_latency(scale: Scale, partner: FastPartner, env: dict[str, str]) -> dict:
    from bench.workloads import tables_clear, webhooks_create
    from webhooks.models import Webhook

    tables_clear()
    webhooks_create(base_url=partner.url, count=scale.latency_webhooks, path="/l/{n}")
    trainings = _trainings_make(scale.latency_saves, "latency")
    child_env = {**env, "WEBHOOK_BUNDLE_DELAY": str(LATENCY_BUNDLE_DELAY),
                 "WEBHOOK_TICK_SECONDS": str(LATENCY_TICK)}
    latencies: dict[bool, list[float]] = {False: [], True: []}

    def one_round(*, hanging: bool) -> None:
        # The last round's dispatcher was killed, perhaps between a send and its record:
        # that delivery's lease would hold its webhook back for a minute. Start afresh.
        tables_clear(webhooks=False)
        Webhook.objects.filter(url__endswith="/hang").delete()
        if hanging:
            Webhook.objects.create(name="hanging", url=partner.url + "/hang")
        partner.reset()
        child = Child(["dispatcher"], child_env)
        child.go()
        committed: dict[int, float] = {}
        for training in trainings:
            time.sleep(2 * LATENCY_TICK + random.uniform(0, 0.4))
            training.name = f"Latency {random.random()}"
            with transaction.atomic():
                training.save()
            committed[training.pk] = time.time()
        expected = len(trainings) * scale.latency_webhooks
        deadline = time.monotonic() + 30
        while len(received := entries_of(partner, "/l/")) < expected:
            if time.monotonic() > deadline:
                raise RuntimeError(f"latency: {len(received)} of {expected} entries arrived")
            time.sleep(0.05)
        child.stop(kill=True)  # a hanging send would hold a graceful stop to the timeout
        for arrived, _, change in received:
            latencies[hanging].append(arrived - committed[change["id"]] - LATENCY_BUNDLE_DELAY)

    for number in range(scale.latency_rounds):
        for hanging in ((False, True) if number % 2 == 0 else (True, False)):
            one_round(hanging=hanging)
    Webhook.objects.filter(url__endswith="/hang").delete()
    normal, hung = latencies[False], latencies[True]
    return {
        "latency_p50": percentile(normal, 0.50),
        "latency_p95": percentile(normal, 0.95),
        "latency_p99": percentile(normal, 0.99),
        "isolation_p95_delta": percentile(hung, 0.95) - percentile(normal, 0.95),
        "_latency_samples": len(normal),
    }


MEASURES = {
    "capture": measure_capture,
    "import": measure_import,
    "drain": measure_drain,
    "delivery": measure_delivery,
    "catchup": measure_catchup,
    "latency": measure_latency,
}

# The fan-out figure lives in its own module (it uses the helpers above).
from bench.fanout import measure_fanout  # noqa: E402

MEASURES["fanout"] = measure_fanout

from bench.scoped_fanout import measure_scoped_fanout  # noqa: E402

MEASURES["scoped_fanout"] = measure_scoped_fanout
