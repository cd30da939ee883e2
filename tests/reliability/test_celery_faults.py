"""Celery in production: a worker killed mid-send loses nothing, and a broker
outage only delays. Real worker and beat processes, a Redis of the test's own."""

import signal
import time

import pytest

from catalog.models import Institute, Training
from changes.models import Change
from deliveries.models import Delivery, DeliveryAttempt
from tests.deliveries.helpers import nothing_waits, record
from tests.reliability.conftest import FAST_ENV, database_url
from tests.support.faults import celery, wait_until
from tests.support.partner import Behaviour
from webhooks.models import Webhook

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

LEASE = sum(float(FAST_ENV[name]) for name in (
    "WEBHOOK_CONNECT_TIMEOUT", "WEBHOOK_TIMEOUT", "WEBHOOK_LEASE_MARGIN"
))


def start_worker(processes, name, redis_server, tmp_path):
    return processes.start(
        name, celery("worker", "--concurrency=2", "--loglevel=INFO", "-n", f"{name}@%h"),
        DATABASE_URL=database_url(), CELERY_BROKER_URL=redis_server.url,
    )


def start_beat(processes, redis_server, tmp_path):
    return processes.start(
        "beat", celery("beat", "--loglevel=INFO", "-s", str(tmp_path / "beat-schedule")),
        DATABASE_URL=database_url(), CELERY_BROKER_URL=redis_server.url,
    )


def delivered_ids(partner, path: str) -> set[int]:
    return {
        entry["id"]
        for request in list(partner.received)
        if request.path == path and request.answer is not None and request.answer.answered_2xx
        for entry in request.json["changes"]
    }


def test_a_worker_killed_mid_send_is_replaced_and_the_batch_goes_again_with_its_id(
    processes, redis_server, partner, tmp_path
):
    Webhook.objects.create(name="Killed", url=partner.url_for("/killed"))
    partner.then(Behaviour(hang=60))  # the first request keeps the worker inside the send
    for training_id in range(1, 6):
        record("update", "training", training_id, 1)
    start_beat(processes, redis_server, tmp_path)
    worker = start_worker(processes, "worker1", redis_server, tmp_path)

    first = partner.wait_for(1, timeout=60)[0]
    worker.kill(signal.SIGKILL)  # the whole process group: the main process and its pool
    killed_at = time.monotonic()
    attempt = DeliveryAttempt.objects.get()
    assert attempt.error_kind == "in_progress", "killed before it could record anything"
    for training_id in range(6, 11):  # changes keep coming while no worker runs
        record("update", "training", training_id, 1)

    start_worker(processes, "worker2", redis_server, tmp_path)
    wait_until(lambda: delivered_ids(partner, "/killed") >= set(range(1, 11)), timeout=90,
               what="every change to be delivered")

    second = partner.received[1]
    assert second.headers["webhook-id"] == first.headers["webhook-id"]
    assert second.body == first.body
    assert second.headers["webhook-timestamp"] >= first.headers["webhook-timestamp"]
    # Sent again only once the dead worker's lease had run out, not while it might still live.
    assert second.at - first.at >= LEASE - 1.5
    assert time.monotonic() - killed_at < 90
    first_delivery = Delivery.objects.get(message_id=first.headers["webhook-id"])
    kinds = list(first_delivery.attempts.order_by("number").values_list("error_kind", flat=True))
    assert kinds == ["lease_expired", ""]
    wait_until(lambda: not Delivery.objects.exclude(state="delivered").exists(), timeout=30,
               what="every delivery to be recorded as delivered")
    assert nothing_waits()


def test_a_broker_outage_only_delays_delivery(processes, redis_server, partner, tmp_path):
    Webhook.objects.create(name="Outage", url=partner.url_for("/outage"))
    institute = Institute.objects.create(name="Broker Academy")
    start_beat(processes, redis_server, tmp_path)
    worker = start_worker(processes, "worker", redis_server, tmp_path)
    before = Training.objects.create(institute=institute, reference="B", name="Before")
    wait_until(lambda: before.pk in delivered_ids(partner, "/outage"), timeout=60,
               what="delivery before the outage")

    redis_server.stop()
    during = [
        Training.objects.create(institute=institute, reference=f"D{n}", name=f"During {n}")
        for n in range(5)
    ]
    # Saving never touches the broker: each save has its change in the outbox.
    captured = set(
        Change.objects.filter(object_kind="training").values_list("object_id", flat=True)
    )
    assert {training.pk for training in during} <= captured
    time.sleep(8)  # the broker stays away for a while
    assert not {t.pk for t in during} & delivered_ids(partner, "/outage")

    redis_server.start()
    wait_until(
        lambda: {t.pk for t in during} <= delivered_ids(partner, "/outage"), timeout=90,
        what="delivery after the broker came back",
    )
    assert worker.alive, "the worker reconnected by itself"
    assert processes.started[0].alive, "beat reconnected by itself"
