"""Sending to a real local HTTP server: the request partners receive, failures and retries."""

import json
import logging
import threading
import time
from datetime import timedelta

import pytest
import standardwebhooks
from django.db import connection
from django.utils import timezone

from catalog.models import Training
from deliveries.models import Delivery, DeliveryAttempt
from deliveries.services import dispatch_tick, webhook_retry_now
from tests.deliveries.helpers import deliver, engine_run, make_retry_due, record
from tests.support.partner import Behaviour, status
from webhooks.models import Webhook


@pytest.fixture
def webhook(db, fast_delivery, partner):
    return Webhook.objects.create(name="Partner", url=partner.url)


def test_the_body_is_exactly_the_spec_shape(webhook, partner, institute):
    training = Training.objects.create(institute=institute, reference="R", name="One")
    gone = Training.objects.create(institute=institute, reference="G", name="Gone")
    gone_id = gone.pk
    gone.delete()

    deliver(webhook)

    (request,) = partner.wait_for(1)
    assert request.body == json.dumps(request.json, separators=(",", ":")).encode()
    assert request.json == {
        "changes": [
            {"action": "update", "object": "institute", "id": institute.pk,
             "url": f"https://api.example.test/institutes/{institute.pk}"},
            {"action": "update", "object": "training", "id": training.pk,
             "url": f"https://api.example.test/trainings/{training.pk}"},
            {"action": "destroy", "object": "training", "id": gone_id},
        ]
    }
    assert ".json" not in request.body.decode() and "api_key" not in request.body.decode()
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"].startswith("Springhook/")


def test_the_signature_verifies_with_the_standard_webhooks_library(webhook, partner):
    record("update", "training", 7, 1)
    deliver(webhook)
    (request,) = partner.wait_for(1)
    verified = standardwebhooks.Webhook(webhook.secret).verify(request.body, request.headers)
    assert verified == request.json
    other = standardwebhooks.Webhook("whsec_" + "A" * 43 + "=")
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        other.verify(request.body, request.headers)


@pytest.mark.parametrize(
    ("behaviour", "error_kind", "status_code"),
    [
        (status(500), "http_status", 500),
        (status(302, Location="https://elsewhere.example/"), "redirect", 302),
        (Behaviour(hang=4), "timeout", None),
        (Behaviour(reset=True), "connection", None),
    ],
    ids=["500", "302", "timeout", "reset"],
)
def test_a_failed_attempt_is_retried_with_the_same_id_and_a_new_timestamp(
    webhook, partner, behaviour, error_kind, status_code
):
    partner.then(behaviour)
    record("update", "training", 7, 1)
    deliver(webhook)
    delivery = Delivery.objects.get()
    assert delivery.state == "failing"
    attempt = delivery.attempts.get()
    assert (attempt.error_kind, attempt.status_code, attempt.accepted) == (
        error_kind, status_code, False
    )
    # The first retry waits about 10 s after the attempt ended (the schedule's first step,
    # with jitter).
    wait = (delivery.next_attempt_at - delivery.last_attempt_at).total_seconds()
    assert 9 <= wait - attempt.duration <= 11.2
    assert deliver(webhook) == 0, "not retried before its time"

    time.sleep(1.1)  # a new second, so a new timestamp
    make_retry_due(webhook)
    deliver(webhook)
    first, second = partner.wait_for(2)[:2]
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert first.headers["webhook-timestamp"] != second.headers["webhook-timestamp"]
    assert first.body == second.body
    standardwebhooks.Webhook(webhook.secret).verify(second.body, second.headers)
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempt_count) == ("delivered", 2)


def test_connection_refused_is_a_failed_attempt(db, fast_delivery):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    webhook = Webhook.objects.create(name="Down", url=f"http://127.0.0.1:{port}/hook")
    record("update", "training", 7, 1)
    deliver(webhook)
    attempt = DeliveryAttempt.objects.get()
    assert (attempt.error_kind, attempt.accepted) == ("connection", False)


def test_the_response_body_is_kept_up_to_2_kib(webhook, partner):
    partner.then(Behaviour(status=400, body=b"e" * 5000))
    record("update", "training", 7, 1)
    deliver(webhook)
    attempt = DeliveryAttempt.objects.get()
    assert attempt.response_body == "e" * 2048
    assert attempt.duration is not None and attempt.duration < 2


def test_retries_follow_the_schedule_forever(webhook, partner, settings):
    settings.WEBHOOK_RETRY_SCHEDULE = (10, 30, 60)
    partner.default = status(503)
    record("update", "training", 7, 1)
    waits = []
    for _ in range(5):
        deliver(webhook)
        delivery = Delivery.objects.get()
        waits.append((delivery.next_attempt_at - delivery.last_attempt_at).total_seconds())
        make_retry_due(webhook)
    ratios = [wait / base for wait, base in zip(waits, [10, 30, 60, 60, 60], strict=True)]
    assert all(0.89 <= ratio <= 1.12 for ratio in ratios), ratios
    assert Delivery.objects.get().state == "failing"


def test_order_is_kept_across_a_failure_and_the_outage_coalesces(webhook, partner):
    partner.then(status(500), status(500), status(500))
    record("update", "training", 1, 10)
    deliver(webhook)  # batch 1 fails
    record("update", "training", 2, 10)
    record("update", "training", 2, 10)
    record("destroy", "training", 1, 10)
    for _ in range(2):
        make_retry_due(webhook)
        deliver(webhook)  # batch 1 fails again; batch 2 must not overtake it
    assert all(request.json == partner.received[0].json for request in partner.received)

    make_retry_due(webhook)
    deliver(webhook)  # batch 1 accepted, then the outage's changes go out coalesced
    bodies = [request.json["changes"] for request in partner.wait_for(5)]
    assert [(e["action"], e["id"]) for e in bodies[3]] == [("update", 1)]
    assert [(e["action"], e["id"]) for e in bodies[4]] == [("update", 2), ("destroy", 1)]
    assert Delivery.objects.filter(state="delivered").count() == 2


def test_a_partner_failing_three_times_then_recovering_gets_every_change(webhook, partner):
    partner.then(status(500), Behaviour(reset=True), status(502))
    expected = set()
    for training_id in range(1, 21):
        record("update", "training", training_id, 1)
        expected.add(training_id)
        if training_id % 5 == 0:
            make_retry_due(webhook)
            deliver(webhook)
    for _ in range(5):
        make_retry_due(webhook)
        deliver(webhook)
    accepted_ids = [
        entry["id"]
        for request in partner.received[3:]
        for entry in request.json["changes"]
    ]
    assert sorted(accepted_ids) == sorted(expected)
    assert not Delivery.objects.exclude(state="delivered").exists()


def test_retry_after_on_429_and_503_is_honoured_up_to_an_hour(webhook, partner):
    partner.then(status(429, **{"Retry-After": "120"}))
    record("update", "training", 7, 1)
    deliver(webhook)
    delivery = Delivery.objects.get()
    assert (delivery.next_attempt_at - delivery.last_attempt_at).total_seconds() >= 119

    partner.then(status(503, **{"Retry-After": "999999"}))
    make_retry_due(webhook)
    deliver(webhook)
    delivery.refresh_from_db()
    wait = (delivery.next_attempt_at - delivery.last_attempt_at).total_seconds()
    assert 3599 <= wait <= 3601


def test_410_gone_pauses_the_webhook_and_keeps_everything(webhook, partner):
    partner.then(status(410))
    record("update", "training", 7, 1)
    deliver(webhook)
    webhook.refresh_from_db()
    assert not webhook.is_active
    assert "410" in webhook.paused_reason
    record("update", "training", 8, 1)
    make_retry_due(webhook)
    assert deliver(webhook) == 0, "paused: nothing is sent"

    webhook.is_active = True
    webhook.save()
    make_retry_due(webhook)
    deliver(webhook)
    ids = [[e["id"] for e in request.json["changes"]] for request in partner.wait_for(3)]
    assert ids == [[7], [7], [8]]


def test_retry_now_makes_a_failing_delivery_due_at_once(webhook, partner):
    partner.then(status(500))
    record("update", "training", 7, 1)
    deliver(webhook)
    assert deliver(webhook) == 0
    assert webhook_retry_now(webhook_id=webhook.pk)
    assert deliver(webhook) == 1
    assert Delivery.objects.get().state == "delivered"


def test_retry_now_sends_pending_entries_without_the_bundle_delay(webhook, partner, settings):
    settings.WEBHOOK_BUNDLE_DELAY = 3600
    record("update", "training", 7, 1)
    assert deliver(webhook) == 0
    assert webhook_retry_now(webhook_id=webhook.pk)
    assert deliver(webhook) == 1
    assert not webhook_retry_now(webhook_id=webhook.pk), "nothing left to send"


def test_a_lost_worker_is_taken_over_after_its_lease_with_the_same_id(webhook, partner):
    from deliveries.services import delivery_claim, delivery_send

    record("update", "training", 7, 1)
    dispatch_tick()
    claim = delivery_claim(webhook_id=webhook.pk)
    delivery_send(claim)  # the partner got it, but the worker "dies" before recording
    assert delivery_claim(webhook_id=webhook.pk) is None, "leased: nobody else sends"
    Delivery.objects.update(lease_expires_at=timezone.now() - timedelta(seconds=1))

    deliver(webhook)
    first, second = partner.wait_for(2)
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    attempts = list(DeliveryAttempt.objects.order_by("number").values_list("error_kind", flat=True))
    assert attempts == ["lease_expired", ""]
    assert Delivery.objects.get().state == "delivered"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_dispatchers_never_send_one_webhook_twice_at_once(
    fast_delivery, partner, caplog
):
    # Each partner answer is slow, so overlapping sends would show as in_flight > 1.
    fast_delivery.WEBHOOK_BATCH_SIZE = 5
    partner.default = Behaviour(hang=0.05)
    webhook = Webhook.objects.create(name="Busy", url=partner.url)
    for training_id in range(1, 101):
        record("update", "training", training_id, 1)
    errors = []

    def dispatcher() -> None:
        try:
            for _ in range(40):
                dispatch_tick()
                # A send task for the webhook, as a tick queues it. Four at once are
                # duplicates (two beats, a slow queue), and a duplicate may start while
                # another holds the webhook's batch: only the claim's locks and leases
                # keep them from sending it twice at once.
                engine_run(webhook.pk)
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=dispatcher) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    # The engine logs a failed claim or record and tries again, so a conflict between the
    # duplicates shows only in the log.
    failures = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert failures == []
    assert partner.max_in_flight == 1
    ids = [request.headers["webhook-id"] for request in partner.received]
    assert len(ids) == len(set(ids)) == 20, "each batch sent once: no failure in between"
    delivered = sorted(e["id"] for r in partner.received for e in r.json["changes"])
    assert delivered == list(range(1, 101))
