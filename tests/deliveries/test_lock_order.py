"""Claiming and recording lock a webhook's rows in one order (deliveries.services).

delivery_claim locks the webhook, then its delivery. delivery_record used to lock the
delivery, then the webhook: with two tasks for one webhook at once (a second beat, or a
task queued while another runs) the two deadlocked, and PostgreSQL rolled back the record
of an accepted batch, which was then sent again when its lease expired.

The order: a transaction waits for webhook rows only in id order and before it locks any
delivery, and waits for a delivery only while it holds the delivery's webhook.
deliveries_record_and_claim records (webhooks, then their deliveries) and then claims in
the same transaction: the claim's webhook rows come after deliveries, so it takes them
with SKIP LOCKED and never waits for them.
"""

import threading
import time

import pytest
from django.db import connection, transaction

from deliveries.http import SendResult
from deliveries.models import Delivery
from deliveries.services import deliveries_record_and_claim, delivery_claim, delivery_record
from tests.deliveries.helpers import collect, record
from webhooks.models import Webhook


def _record_and_claim(claim, result) -> bool:
    outcome, _ = deliveries_record_and_claim(
        results=[(claim, result)], limit=5, webhook_ids=[claim.webhook_id]
    )
    return outcome[0]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("recording", [delivery_record, _record_and_claim],
                         ids=["record", "record-and-claim"])
def test_recording_waits_for_the_webhook_before_it_locks_the_delivery(
    fast_delivery, partner, recording
):
    webhook = Webhook.objects.create(name="Partner", url=partner.url)
    record("update", "training", 1)
    collect()
    claim = delivery_claim(webhook_id=webhook.pk)
    assert claim is not None
    outcome: list[object] = []

    def record_accepted() -> None:
        try:
            outcome.append(recording(claim, SendResult(200, "", "", "", 0.01)))
        except Exception as error:
            outcome.append(error)
        finally:
            connection.close()

    recorder = threading.Thread(target=record_accepted)
    with transaction.atomic():
        # This transaction plays a second task's claim: the webhook row first ...
        Webhook.objects.select_for_update().get(pk=webhook.pk)
        recorder.start()
        time.sleep(1.0)  # the recorder is now waiting for a lock
        # ... then the delivery row, which the waiting recorder must not be holding.
        Delivery.objects.select_for_update(nowait=True).get(pk=claim.delivery_id)
    recorder.join(timeout=30)

    assert outcome == [True]
    assert Delivery.objects.get(pk=claim.delivery_id).state == Delivery.State.DELIVERED


def _locking_statements(sql_list: list[str]) -> list[str]:
    return [sql for sql in sql_list if " FOR " in sql and "UPDATE" in sql.split(" FOR ")[-1]]


@pytest.mark.postgres
@pytest.mark.django_db
def test_claim_and_record_lock_webhooks_by_id_then_deliveries_no_key(fast_delivery, partner):
    from django.test.utils import CaptureQueriesContext

    from deliveries.services import deliveries_claim, deliveries_record

    for n in range(3):
        Webhook.objects.create(name=f"P{n}", url=partner.url)
    record("update", "training", 1)
    collect()
    with CaptureQueriesContext(connection) as claiming:
        claims = deliveries_claim(limit=10)
    with CaptureQueriesContext(connection) as recording:
        deliveries_record([(claim, SendResult(200, "", "", "", 0.01)) for claim in claims])

    for queries in (claiming, recording):
        locks = _locking_statements([q["sql"] for q in queries.captured_queries])
        tables = [sql.split(" FROM ")[1].split()[0] for sql in locks]
        assert tables[:2] == ['"webhooks_webhook"', '"deliveries_delivery"'], locks
        for sql in locks:
            assert "FOR NO KEY UPDATE" in sql, f"stronger than needed: {sql}"
            assert 'ORDER BY "' in sql and '"id" ASC' in sql.split("ORDER BY")[1], sql


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_collecting_never_waits_for_a_claim_that_holds_the_webhooks(fast_delivery, partner):
    """The collector's writes check their webhook foreign key (FOR KEY SHARE): a claim's
    FOR NO KEY UPDATE must not block them, or collector and claims deadlock (issue 15)."""
    from deliveries.services import deliveries_claim

    webhook = Webhook.objects.create(name="Partner", url=partner.url)
    record("update", "training", 1)
    collect()
    holding, release = threading.Event(), threading.Event()
    claimed: list[object] = []

    def claim_and_hold() -> None:
        try:
            with transaction.atomic():
                claimed.extend(deliveries_claim(limit=10))
                holding.set()
                release.wait(10)
        finally:
            connection.close()

    claimer = threading.Thread(target=claim_and_hold)
    claimer.start()
    try:
        assert holding.wait(10)
        assert [claim.webhook_id for claim in claimed] == [webhook.pk]
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '2s'")
            record("update", "training", 2)
            collect()  # would fail with "canceling statement due to lock timeout"
        # A second claim skips the held webhook at once instead of waiting for it.
        started = time.monotonic()
        assert deliveries_claim(limit=10, webhook_ids=[webhook.pk]) == []
        assert time.monotonic() - started < 1.0
    finally:
        release.set()
        claimer.join(timeout=15)


@pytest.mark.postgres
@pytest.mark.django_db
def test_record_and_claim_waits_for_webhooks_only_before_any_delivery(fast_delivery, partner):
    from django.test.utils import CaptureQueriesContext

    from deliveries.services import deliveries_claim

    webhooks = [Webhook.objects.create(name=f"P{n}", url=partner.url) for n in range(4)]
    record("update", "training", 1)
    collect()
    claims = deliveries_claim(limit=2)
    record("update", "training", 2)
    collect()
    with CaptureQueriesContext(connection) as queries:
        _, next_claims = deliveries_record_and_claim(
            results=[(claim, SendResult(200, "", "", "", 0.01)) for claim in claims],
            limit=10,
        )

    assert sorted(c.webhook_id for c in next_claims) == [w.pk for w in webhooks]
    locks = _locking_statements([q["sql"] for q in queries.captured_queries])
    tables = [sql.split(" FROM ")[1].split()[0] for sql in locks]
    assert tables == ['"webhooks_webhook"', '"deliveries_delivery"'] * 2, locks
    first_delivery = tables.index('"deliveries_delivery"')
    for position, sql in enumerate(locks):
        assert "FOR NO KEY UPDATE" in sql, f"stronger than needed: {sql}"
        assert 'ORDER BY "' in sql and '"id" ASC' in sql.split("ORDER BY")[1], sql
        if tables[position] == '"webhooks_webhook"' and position > first_delivery:
            assert "SKIP LOCKED" in sql, f"waits for a webhook while holding deliveries: {sql}"
