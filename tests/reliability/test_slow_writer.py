"""A writer whose transaction stays open for 30 seconds: its change took its id before
later changes that commit and are delivered first, and it is still delivered, never
skipped: rows are claimed, never passed by a high-water mark."""

import threading
import time

import pytest
from django.db import connection, transaction

from changes.models import Change
from tests.deliveries.helpers import record
from tests.reliability.conftest import database_url
from tests.support.faults import manage, wait_until
from webhooks.models import Webhook

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

HELD_ID = 1000
HOLD_SECONDS = 30


def delivered(partner) -> list[int]:
    return [e["id"] for r in list(partner.received) for e in r.json["changes"]]


def test_a_change_committed_after_later_ones_is_still_delivered(processes, partner):
    Webhook.objects.create(name="Slow writer", url=partner.url_for("/slow-writer"))
    held, release = threading.Event(), threading.Event()
    held_change_id = []
    errors = []

    def slow_writer() -> None:
        try:
            with transaction.atomic():
                record("update", "training", HELD_ID, 1)
                held_change_id.append(Change.objects.order_by("-id").first().pk)
                held.set()
                release.wait(HOLD_SECONDS + 30)
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    processes.start("dispatcher", manage("run_dispatcher", "--sends-in-flight", "2"),
                    DATABASE_URL=database_url())
    writer = threading.Thread(target=slow_writer)
    writer.start()
    try:
        assert held.wait(10)
        started = time.monotonic()
        later_ids, later_change_ids = [], []
        training_id = 1
        while time.monotonic() - started < HOLD_SECONDS - 3:
            with transaction.atomic():
                record("update", "training", training_id, 1)
                later_change_ids.append(Change.objects.order_by("-id").first().pk)
            later_ids.append(training_id)
            training_id += 1
            time.sleep(1)
        wait_until(lambda: set(later_ids) <= set(delivered(partner)), timeout=30,
                   what="the later changes to be delivered")
        assert HELD_ID not in delivered(partner), "not committed yet, so not sendable"
    finally:
        release.set()
        writer.join(30)
    assert errors == []
    wait_until(lambda: HELD_ID in delivered(partner), timeout=30,
               what="the slow writer's change to be delivered")
    # It really was overtaken: changes with higher ids were committed and sent before it.
    assert held_change_id[0] < min(later_change_ids)
    assert delivered(partner).index(HELD_ID) == len(delivered(partner)) - 1
