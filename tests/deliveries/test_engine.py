"""The delivery engine: many webhooks claimed in one transaction, sent concurrently,
recorded together (deliveries/services/claim.py, record.py, deliveries/engine.py)."""

import json
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from catalog.models import Training
from deliveries.engine import Engine
from deliveries.http import SendResult
from deliveries.models import Delivery, DeliveryAttempt
from deliveries.services import (
    deliveries_claim,
    deliveries_record,
    deliveries_record_and_claim,
    delivery_claim,
)
from tests.deliveries.helpers import collect, record
from tests.support.partner import Behaviour, Partner
from webhooks.models import Webhook

ACCEPTED = SendResult(200, "", "", "", 0.01)


def webhooks_with_work(partner, count: int) -> list[Webhook]:
    webhooks = [
        Webhook.objects.create(name=f"P{n}", url=partner.url_for(f"/w/{n}")) for n in range(count)
    ]
    record("update", "training", 1)
    record("update", "training", 2)
    collect()
    return webhooks


@pytest.mark.django_db
def test_one_claim_takes_many_webhooks_batches_with_a_lease_each(fast_delivery, partner):
    webhooks = webhooks_with_work(partner, 12)

    with CaptureQueriesContext(connection) as queries:
        claims = deliveries_claim(limit=10)

    assert sorted(claim.webhook_id for claim in claims) == sorted(w.pk for w in webhooks)[:10]
    assert len({claim.message_id for claim in claims}) == 10
    assert all(claim.body == claims[0].body for claim in claims)
    deliveries = Delivery.objects.filter(pk__in=[claim.delivery_id for claim in claims])
    assert all(d.lease_token and d.lease_expires_at > timezone.now() for d in deliveries)
    assert {d.attempt_count for d in deliveries} == {1}
    attempts = DeliveryAttempt.objects.filter(pk__in=[claim.attempt_id for claim in claims])
    assert {a.error_kind for a in attempts} == {"in_progress"}
    # Leased: nothing of theirs can be claimed again; the two left over can.
    assert sorted(c.webhook_id for c in deliveries_claim(limit=50)) == [
        w.pk for w in webhooks[10:]
    ]
    assert deliveries_claim(limit=50) == []
    # Deliveries and attempts went in one INSERT each, whatever the number of webhooks.
    inserts = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("INSERT")]
    assert sum('"deliveries_delivery"' in sql for sql in inserts) == 1
    assert sum('"deliveries_deliveryattempt"' in sql for sql in inserts) == 1


@pytest.mark.django_db
def test_a_lapsed_lease_is_taken_over_and_its_attempt_marked(fast_delivery, partner):
    webhooks = webhooks_with_work(partner, 3)
    first = deliveries_claim(limit=10)
    assert len(first) == 3
    # The worker died mid-send: its leases run out.
    Delivery.objects.update(lease_expires_at=timezone.now() - timedelta(seconds=1))

    again = deliveries_claim(limit=10)

    assert sorted(c.webhook_id for c in again) == sorted(w.pk for w in webhooks)
    assert {(c.delivery_id, c.message_id) for c in again} == {
        (c.delivery_id, c.message_id) for c in first
    }, "the same deliveries go out again, with the same webhook-id"
    assert {c.attempt_number for c in again} == {2}
    lapsed = DeliveryAttempt.objects.filter(pk__in=[c.attempt_id for c in first])
    assert {a.error_kind for a in lapsed} == {"lease_expired"}
    # A stale result of the first holder still completes its delivery.
    deliveries_record([(first[0], ACCEPTED)])
    assert Delivery.objects.get(pk=first[0].delivery_id).state == "delivered"


@pytest.mark.django_db
def test_a_claim_skips_a_retry_not_yet_due_and_a_paused_webhook(fast_delivery, partner):
    failing, paused, fine = webhooks_with_work(partner, 3)
    claims = {c.webhook_id: c for c in deliveries_claim(limit=10)}
    deliveries_record([(claims[failing.pk], SendResult(500, "http_status", "", "", 0.01))])
    Webhook.objects.filter(pk=paused.pk).update(is_active=False)
    deliveries_record([(claims[paused.pk], SendResult(500, "http_status", "", "", 0.01))])
    deliveries_record([(claims[fine.pk], ACCEPTED)])
    record("update", "training", 3)
    collect()

    assert [c.webhook_id for c in deliveries_claim(limit=10)] == [fine.pk]


@pytest.mark.django_db
def test_results_are_recorded_together_in_one_transaction(fast_delivery, partner):
    accepted, failed, gone = webhooks_with_work(partner, 3)
    claims = {c.webhook_id: c for c in deliveries_claim(limit=10)}

    with CaptureQueriesContext(connection) as queries:
        outcome = deliveries_record([
            (claims[accepted.pk], ACCEPTED),
            (claims[failed.pk], SendResult(503, "http_status", "", "", 0.01)),
            (claims[gone.pk], SendResult(410, "http_status", "", "", 0.01)),
        ])

    assert outcome == [True, False, False]
    assert len(queries) < 25
    by_webhook = {d.webhook_id: d for d in Delivery.objects.all()}
    assert by_webhook[accepted.pk].state == "delivered"
    assert by_webhook[failed.pk].state == "failing"
    assert by_webhook[failed.pk].next_attempt_at > timezone.now()
    assert all(not d.lease_token and d.lease_expires_at is None for d in by_webhook.values()), (
        "every lease is released in the record's transaction"
    )
    attempts = {a.webhook_id: a for a in DeliveryAttempt.objects.all()}
    assert (attempts[failed.pk].status_code, attempts[failed.pk].error_kind) == (
        503, "http_status"
    )
    gone.refresh_from_db()
    assert not gone.is_active and gone.paused_reason == "The partner answered 410 Gone."
    assert gone.failure_notified_at is not None
    accepted.refresh_from_db()
    assert accepted.last_success_at is not None and accepted.failing_since is None
    failed.refresh_from_db()
    assert failed.failing_since is not None


@pytest.mark.django_db(transaction=True)
def test_the_engine_sends_to_fast_partners_while_many_hang(fast_delivery, institute):
    """Six partners hang past the 2 s deadline, more than any old thread pool had threads
    to spare; the fast partner still gets each save within a second."""
    fast_delivery.WEBHOOK_TIMEOUT = 5
    hanging, fast = Partner().start(), Partner().start()
    hanging.default = Behaviour(hang=30)
    engine = Engine(sends_in_flight=20, tick_seconds=0.1, tick=collect)
    runner = threading.Thread(target=engine.run, daemon=True)
    try:
        for n in range(6):
            Webhook.objects.create(name=f"Hangs {n}", url=hanging.url_for(f"/h/{n}"))
        Webhook.objects.create(name="Fast", url=fast.url)
        Training.objects.create(institute=institute, reference="R0", name="x")
        runner.start()
        hanging.wait_for(6, timeout=10)
        for n in range(1, 4):
            saved_at = time.time()
            Training.objects.create(institute=institute, reference=f"R{n}", name="x")
            request = fast.wait_for(n + 1, timeout=10)[n]
            assert request.at - saved_at < 1.0, "the fast partner waited on the hanging ones"
        assert hanging.in_flight == 6  # each hanging send holds only its own slot
        # Every send is a coroutine on the process's one send loop, not a thread of its own.
        senders = [t for t in threading.enumerate() if t.name.startswith("springhook-send")]
        assert len(senders) == 1
    finally:
        engine.stop()
        runner.join(timeout=15)
        hanging.stop()
        fast.stop()
    assert not runner.is_alive(), "the engine stops once its sends hit their deadline"
    assert DeliveryAttempt.objects.filter(error_kind="timeout").count() == 6


@pytest.mark.django_db(transaction=True)
def test_a_celery_style_engine_stops_when_its_webhooks_are_done(fast_delivery, partner):
    webhooks = webhooks_with_work(partner, 4)
    engine = Engine(sends_in_flight=4, webhook_ids=[w.pk for w in webhooks[:3]])

    assert engine.run(until_idle=True, time_budget=30) == 3

    assert sorted(r.path for r in partner.received) == ["/w/0", "/w/1", "/w/2"]
    assert Delivery.objects.filter(state="delivered").count() == 3
    assert delivery_claim(webhook_id=webhooks[3].pk) is not None


@pytest.mark.django_db
def test_recording_more_accepted_results_costs_no_more_statements(fast_delivery, partner):
    webhooks_with_work(partner, 12)
    claims = deliveries_claim(limit=12)
    with CaptureQueriesContext(connection) as few:
        deliveries_record([(claim, ACCEPTED) for claim in claims[:3]])
    with CaptureQueriesContext(connection) as many:
        deliveries_record([(claim, ACCEPTED) for claim in claims[3:]])
    assert len(many) == len(few)
    assert Delivery.objects.filter(state="delivered").count() == 12


@pytest.mark.django_db(transaction=True)
def test_a_flush_commits_once_whatever_its_results(fast_delivery, partner):
    accepted, failed, gone = webhooks_with_work(partner, 3)
    claims = {c.webhook_id: c for c in deliveries_claim(limit=10)}

    with CaptureQueriesContext(connection) as queries:
        deliveries_record([
            (claims[accepted.pk], ACCEPTED),
            (claims[failed.pk], SendResult(503, "http_status", "", "", 0.01)),
            (claims[gone.pk], SendResult(410, "http_status", "", "", 0.01)),
        ])

    commits = [q["sql"] for q in queries.captured_queries if q["sql"] == "COMMIT"]
    assert commits == ["COMMIT"], "one transaction for the whole flush, the 410 pause too"


@pytest.mark.django_db(transaction=True)
def test_recording_claims_the_next_batches_in_the_same_commit(fast_delivery, partner, settings):
    """The pipelined cycle: the transaction that records a webhook's accepted batch claims
    its next one; a webhook whose batch failed gets nothing new (order is kept)."""
    settings.WEBHOOK_BATCH_SIZE = 1
    accepted, failed, idle = webhooks_with_work(partner, 3)
    claims = {c.webhook_id: c for c in deliveries_claim(limit=10)}
    assert len(claims) == 3  # training 1 each; training 2 waits for each of them

    with CaptureQueriesContext(connection) as queries:
        outcome, next_claims = deliveries_record_and_claim(
            results=[
                (claims[accepted.pk], ACCEPTED),
                (claims[failed.pk], SendResult(503, "http_status", "", "", 0.01)),
            ],
            limit=10,
            webhook_ids=[accepted.pk, failed.pk],
        )

    assert outcome == [True, False]
    assert [c.webhook_id for c in next_claims] == [accepted.pk]
    assert json.loads(next_claims[0].body)["changes"][0]["id"] == 2
    commits = [q["sql"] for q in queries.captured_queries if q["sql"] == "COMMIT"]
    assert commits == ["COMMIT"], "recording and claiming share one transaction"
    assert not any("SAVEPOINT" in q["sql"] for q in queries.captured_queries)
    states = {d.webhook_id: d.state for d in Delivery.objects.filter(state="failing")}
    assert states == {failed.pk: "failing"}
    # Still in flight: the idle webhook's first batch; nothing of it was claimed again.
    assert Delivery.objects.get(webhook=idle, state="pending").lease_token


@pytest.mark.django_db(transaction=True)
def test_an_engine_records_and_claims_once_per_turn(fast_delivery, partner, settings):
    """One partner catching up: each accepted batch's record claims the next one, so the
    engine commits about once per batch, not twice."""
    settings.WEBHOOK_BATCH_SIZE = 2
    (webhook,) = webhooks_with_work(partner, 1)
    for n in range(3, 21):
        record("update", "training", n)
    collect()
    engine = Engine(sends_in_flight=4, webhook_ids=[webhook.pk])

    with CaptureQueriesContext(connection) as queries:
        assert engine.run(until_idle=True, time_budget=30) == 10

    assert len(partner.received) == 10
    ids = [entry["id"] for r in partner.received for entry in json.loads(r.body)["changes"]]
    assert ids == list(range(1, 21)), "in order, each batch after the last was accepted"
    commits = sum(q["sql"] == "COMMIT" for q in queries.captured_queries)
    # The first claim, one per batch recorded (claiming the next), and the idle check.
    assert commits <= 10 + 2


@pytest.mark.django_db(transaction=True)
def test_an_engine_claims_nothing_after_its_time_budget(fast_delivery, partner, settings):
    """A Celery task's engine ends at its budget even while each record could claim the
    webhook's next batch: a busy webhook never holds a worker for ever."""
    settings.WEBHOOK_BATCH_SIZE = 1
    (webhook,) = webhooks_with_work(partner, 1)
    for n in range(3, 301):
        record("update", "training", n)
    collect()
    engine = Engine(sends_in_flight=1, webhook_ids=[webhook.pk])

    started = time.monotonic()
    attempts = engine.run(until_idle=True, time_budget=0.3)

    assert time.monotonic() - started < 2.0
    assert 0 < attempts < 300
    assert not Delivery.objects.filter(lease_token__gt="").exists(), "nothing left in flight"
