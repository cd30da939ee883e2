"""Four embedded dispatchers (real processes) at once against 50 webhooks, under a steady
stream of changes, with a partner that fails some requests: no webhook ever has two
requests in flight, every change is delivered, and a batch (its webhook-id) is sent again
only after an attempt at it failed."""

import random
import time

import pytest

from tests.deliveries.helpers import record
from tests.reliability.conftest import database_url
from tests.support.faults import manage, wait_until
from tests.support.partner import Behaviour, status
from webhooks.models import Webhook

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

WEBHOOKS = 50
DISPATCHERS = 4
# 30 s keeps CI on a shared 2-core machine within its budget and still runs hundreds of
# batches through the four dispatchers.
STREAM_SECONDS = 30
CHANGES_PER_SECOND = 5


def partner_faults(seed: int):
    rng = random.Random(seed)
    faults = [
        (0.08, status(500)),
        (0.04, Behaviour(reset=True)),
        (0.02, status(503, **{"Retry-After": "1"})),
        (0.06, Behaviour(hang=0.3)),  # slow, but within the timeout: accepted
    ]

    def choose(received) -> Behaviour:
        roll = rng.random()
        for share, behaviour in faults:
            if roll < share:
                return behaviour
            roll -= share
        return Behaviour()

    return choose


def test_four_dispatchers_fifty_webhooks_a_steady_stream(processes, partner):
    partner.choose = partner_faults(seed=4)
    paths = [f"/w/{number}" for number in range(WEBHOOKS)]
    for path in paths:
        Webhook.objects.create(name=path, url=partner.url_for(path))
    for number in range(DISPATCHERS):
        processes.start(
            f"dispatcher{number}", manage("run_dispatcher", "--sends-in-flight", "4"),
            DATABASE_URL=database_url(), WEBHOOK_BUNDLE_DELAY="1",
            WEBHOOK_TICK_SECONDS="0.25", WEBHOOK_RETRY_SCHEDULE="0.5,1",
            LOG_LEVEL="WARNING",
        )

    recorded = []
    started = time.monotonic()
    while time.monotonic() - started < STREAM_SECONDS:
        training_id = len(recorded) + 1
        record("update", "training", training_id, 1)
        recorded.append(training_id)
        time.sleep(1 / CHANGES_PER_SECOND)
    expected = set(recorded)

    def accepted_by_path() -> dict[str, set[int]]:
        accepted = {path: set() for path in paths}
        for request in list(partner.received):
            if request.answer is not None and request.answer.answered_2xx:
                accepted[request.path].update(e["id"] for e in request.json["changes"])
        return accepted

    wait_until(lambda: all(ids >= expected for ids in accepted_by_path().values()),
               timeout=120, every=0.5, what="every change at every webhook")
    assert all(process.alive for process in processes.started)

    with partner.lock:
        received = list(partner.received)
        max_in_flight = dict(partner.max_in_flight_by_path)
    assert set(max_in_flight) == set(paths)
    assert max(max_in_flight.values()) == 1, "a webhook had two requests in flight"

    failures = 0
    for path in paths:
        requests_ = [r for r in received if r.path == path]
        accepted_ids = set()
        for earlier, later in zip(requests_, requests_[1:], strict=False):
            same_batch = earlier.headers["webhook-id"] == later.headers["webhook-id"]
            if earlier.answer.answered_2xx:
                accepted_ids.add(earlier.headers["webhook-id"])
                # Accepted: the next request is a new batch, and this one never comes again.
                assert later.headers["webhook-id"] not in accepted_ids, (
                    f"{path}: an accepted batch was sent again"
                )
            else:
                failures += 1
                # Failed: the same batch is retried before anything later is sent.
                assert same_batch, f"{path}: a later batch overtook a failed one"
    # No attempt was lost to a database error either (such as a deadlock between claim and
    # record, which would send accepted batches again after their lease).
    for process in processes.started:
        assert "Traceback" not in process.log_path.read_text(errors="replace"), process.log()
    print(f"{len(received)} requests, {failures} failed and retried, "
          f"{len(recorded)} changes x {WEBHOOKS} webhooks")
    assert failures > 20, "the partner's faults were exercised"
