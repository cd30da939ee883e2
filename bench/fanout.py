"""Fan-out: many partners, one stream of changes.

100 webhooks, 100,000 training updates over 10,000 trainings, bundle delay 0: the time
from the go (the changes committed) until every partner has every training, against a
bare `requests` loop posting the same number of batches of the same size. The ratio is
bare time ÷ end-to-end time (1.0: Springhook as fast as the bare loop). With it,
`fanout_body_ratio`: the bytes of bodies stored ÷ the bytes of the distinct bodies sent
(1.0: each body stored once, whatever the number of webhooks).

    python -m bench --only fanout
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict

from django.db import connection, transaction

from bench.measures import (
    BATCH_SIZE,
    QUICK,
    Child,
    Scale,
    alternate,
    entries_of,
    partner_wait,
)
from bench.partner import FastPartner

FULL_SIZE = {"webhooks": 100, "changes": 100_000, "trainings": 10_000, "rounds": 2}
QUICK_SIZE = {"webhooks": 20, "changes": 20_000, "trainings": 2_000, "rounds": 1}
TIMEOUT = 900


def _record(changes: int, trainings: int) -> float:
    from bench.workloads import TRAININGS_PER_INSTITUTE
    from changes.services import ChangeEntry, changes_record

    started = time.perf_counter()
    with transaction.atomic():
        changes_record(
            entries=(
                ChangeEntry("training", 1 + n % trainings, "update",
                            (1 + n % trainings) // TRAININGS_PER_INSTITUTE)
                for n in range(changes)
            )
        )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE changes_change")
    return time.perf_counter() - started


def _received_all(partner: FastPartner, webhooks: int, trainings: int) -> bool:
    per_path: dict[str, set[int]] = defaultdict(set)
    for _, path, change in entries_of(partner, "/f/"):
        per_path[path].add(change["id"])
    return len(per_path) == webhooks and all(len(ids) == trainings for ids in per_path.values())


def _end_to_end(partner: FastPartner, env: dict[str, str], size: dict) -> dict:
    from bench.workloads import tables_clear, webhooks_create

    tables_clear()
    partner.reset()
    webhooks_create(base_url=partner.url, count=size["webhooks"], path="/f/{n}")
    recorded = _record(size["changes"], size["trainings"])
    child = Child(["dispatcher"], {**env, "WEBHOOK_BUNDLE_DELAY": "0"})
    started = time.time()
    child.go()
    deadline = time.monotonic() + TIMEOUT
    # Every partner has everything: at least one batch per 500 trainings each, then the
    # entries themselves checked (coalescing may make fewer, fuller batches: never more).
    # The time ends at the last request's arrival, so the check itself is not measured.
    minimum = size["webhooks"] * -(-size["trainings"] // BATCH_SIZE)
    partner_wait(partner, minimum, timeout=TIMEOUT)
    while not _received_all(partner, size["webhooks"], size["trainings"]):
        if time.monotonic() > deadline:
            raise RuntimeError("fanout: not every partner received every training")
        time.sleep(0.05)
    elapsed = max(request.arrived_at for request in partner.requests) - started
    child.stop()
    return {"seconds": elapsed, "record_seconds": recorded, "batches": partner.request_count,
            **_body_bytes(partner)}


def _body_bytes(partner: FastPartner) -> dict:
    """The bytes the bodies of this fan-out take in the database (each DeliveryBody row),
    the bytes of its distinct bodies (as the partner received them), and the bytes every
    delivery would hold with a copy of its own."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COALESCE(SUM(octet_length(payload)), 0) FROM deliveries_deliverybody"
        )
        stored = cursor.fetchone()[0]
        cursor.execute(
            "SELECT COALESCE(SUM(octet_length(body.payload)), 0) FROM deliveries_delivery "
            "JOIN deliveries_deliverybody AS body ON body.digest = deliveries_delivery.body_id"
        )
        copies = cursor.fetchone()[0]
    distinct = sum(len(body) for body in {request.body for request in partner.requests})
    return {"stored_bytes": stored, "distinct_bytes": distinct, "copies_bytes": copies}


def _bare(partner: FastPartner, env: dict[str, str], size: dict) -> float:
    batches = -(-size["trainings"] // BATCH_SIZE)
    partner.reset()
    child = Child(["bare", partner.url, str(size["webhooks"]), str(batches), str(BATCH_SIZE)],
                  env)
    started = time.perf_counter()
    child.go()
    partner_wait(partner, size["webhooks"] * batches, timeout=TIMEOUT)
    elapsed = time.perf_counter() - started
    child.stop()
    return elapsed


def measure_fanout(scale: Scale, partner: FastPartner, env: dict[str, str]) -> dict:
    size = QUICK_SIZE if scale is QUICK else FULL_SIZE
    storage: list[dict] = []

    def end_to_end() -> float:
        storage.append(_end_to_end(partner, env, size))
        return storage[-1]["seconds"]

    ratio, bares, ends = alternate(size["rounds"], lambda: _bare(partner, env, size), end_to_end)
    return {
        "fanout_ratio": ratio,
        "fanout_body_ratio": max(end["stored_bytes"] / end["distinct_bytes"] for end in storage),
        "_fanout_body_mb": storage[-1]["stored_bytes"] / 1e6,
        "_fanout_body_copies_mb": storage[-1]["copies_bytes"] / 1e6,
        "_fanout_seconds": statistics.median(ends),
        "_fanout_bare_seconds": statistics.median(bares),
        "_fanout_batches": max(end["batches"] for end in storage),
    }
