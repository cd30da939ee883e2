"""Scoped fan-out: many partners, each with a scope of a few institutes, one stream.

100 webhooks, each scoped to 10 of 1,000 institutes (webhook n: institutes 10n+1 … 10n+10),
100,000 training updates over 10,000 trainings (10 per institute), bundle delay 0: the
time from the go (the changes committed) until every partner has every training of its
scope, against a bare `requests` loop posting the same batches (one of 100 entries per
webhook). The ratio is bare time ÷ end-to-end time, to set beside the unscoped
`fanout_ratio`: a scoped webhook should cost in proportion to what it receives, not to
the length of the whole stream. Also counted: the entries each webhook received against
what its scope called for (any entry outside its scope, or missing, is a failure).

    python -m bench --only fanout scoped_fanout
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict

from django.db import connection, transaction

from bench.measures import QUICK, Child, Scale, alternate, entries_of, partner_wait
from bench.partner import FastPartner

FULL_SIZE = {"webhooks": 100, "institutes": 1_000, "changes": 100_000, "trainings": 10_000,
             "rounds": 2}
QUICK_SIZE = {"webhooks": 20, "institutes": 200, "changes": 20_000, "trainings": 2_000,
              "rounds": 1}
TIMEOUT = 900


def _institute_of(training_id: int, size: dict) -> int:
    per_institute = size["trainings"] // size["institutes"]
    return 1 + (training_id - 1) // per_institute


def _scope_of(webhook_number: int, size: dict) -> list[int]:
    per_webhook = size["institutes"] // size["webhooks"]
    return list(range(webhook_number * per_webhook + 1, (webhook_number + 1) * per_webhook + 1))


def _record(size: dict) -> float:
    from changes.services import ChangeEntry, changes_record

    started = time.perf_counter()
    with transaction.atomic():
        changes_record(
            entries=(
                ChangeEntry("training", 1 + n % size["trainings"], "update",
                            _institute_of(1 + n % size["trainings"], size))
                for n in range(size["changes"])
            )
        )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE changes_change")
    return time.perf_counter() - started


def _webhooks_create(partner: FastPartner, size: dict) -> None:
    from webhooks.models import Webhook

    Webhook.objects.bulk_create(
        Webhook(name=f"bench scoped {n}", url=f"{partner.url}/s/{n}",
                scope_institutes=_scope_of(n, size))
        for n in range(size["webhooks"])
    )


def _received(partner: FastPartner) -> dict[str, list[int]]:
    per_path: dict[str, list[int]] = defaultdict(list)
    for _, path, change in entries_of(partner, "/s/"):
        per_path[path].append(change["id"])
    return per_path


def _expected(size: dict) -> dict[str, set[int]]:
    wanted: dict[str, set[int]] = defaultdict(set)
    per_institute = size["trainings"] // size["institutes"]
    for number in range(size["webhooks"]):
        for institute in _scope_of(number, size):
            first = (institute - 1) * per_institute + 1
            wanted[f"/s/{number}"].update(range(first, first + per_institute))
    return wanted


def _end_to_end(partner: FastPartner, env: dict[str, str], size: dict) -> dict:
    from bench.workloads import tables_clear

    tables_clear()
    partner.reset()
    _webhooks_create(partner, size)
    recorded = _record(size)
    expected = _expected(size)
    called_for = sum(len(ids) for ids in expected.values())
    child = Child(["dispatcher"], {**env, "WEBHOOK_BUNDLE_DELAY": "0"})
    started = time.time()
    child.go()
    deadline = time.monotonic() + TIMEOUT
    partner_wait(partner, size["webhooks"], timeout=TIMEOUT)
    while True:
        received = _received(partner)
        if sum(len(set(ids) & expected[path]) for path, ids in received.items()) >= called_for:
            break
        if time.monotonic() > deadline:
            raise RuntimeError("scoped_fanout: not every partner received its scope")
        time.sleep(0.05)
    elapsed = max(request.arrived_at for request in partner.requests) - started
    time.sleep(0.5)  # anything sent beyond the scope would arrive now: counted below
    child.stop()
    received = _received(partner)
    outside = sum(len(set(ids) - expected[path]) for path, ids in received.items())
    return {
        "seconds": elapsed, "record_seconds": recorded, "batches": partner.request_count,
        "entries": sum(len(ids) for ids in received.values()), "called_for": called_for,
        "outside": outside,
    }


def _bare(partner: FastPartner, env: dict[str, str], size: dict) -> float:
    per_webhook = size["trainings"] // size["webhooks"]
    partner.reset()
    child = Child(["bare", partner.url, str(size["webhooks"]), "1", str(per_webhook)], env)
    started = time.perf_counter()
    child.go()
    partner_wait(partner, size["webhooks"], timeout=TIMEOUT)
    elapsed = time.perf_counter() - started
    child.stop()
    return elapsed


def measure_scoped_fanout(scale: Scale, partner: FastPartner, env: dict[str, str]) -> dict:
    size = QUICK_SIZE if scale is QUICK else FULL_SIZE
    runs: list[dict] = []

    def end_to_end() -> float:
        runs.append(_end_to_end(partner, env, size))
        return runs[-1]["seconds"]

    ratio, bares, ends = alternate(size["rounds"], lambda: _bare(partner, env, size), end_to_end)
    worst = max(runs, key=lambda run: (run["outside"], run["entries"]))
    return {
        "scoped_fanout_ratio": ratio,
        "_scoped_fanout_seconds": statistics.median(ends),
        "_scoped_fanout_bare_seconds": statistics.median(bares),
        "_scoped_fanout_batches": worst["batches"],
        "_scoped_fanout_entries_received": worst["entries"],
        "_scoped_fanout_entries_called_for": worst["called_for"],
        "_scoped_fanout_entries_outside_scope": worst["outside"],
    }
