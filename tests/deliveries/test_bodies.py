"""Each body stored once (deliveries.models.DeliveryBody): deliveries that carry the same
bytes reference one row, whatever the number of webhooks; retention deletes the bodies no
delivery references; migration 0006 moves the payloads stored before it."""

import hashlib
import json
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from deliveries.http import SendResult
from deliveries.models import Delivery, DeliveryBody
from deliveries.selectors import delivery_payloads
from deliveries.services import deliveries_claim, deliveries_prune, delivery_record
from tests.deliveries.helpers import collect, record
from webhooks.models import Webhook


@pytest.fixture
def hooks(db, fast_delivery):
    return [Webhook.objects.create(name=f"W{n}", url=f"http://127.0.0.1:9/{n}") for n in range(5)]


def test_a_fan_out_stores_one_body_that_every_delivery_references(hooks):
    for training_id in range(1, 4):
        record("update", "training", training_id, 10)
    collect()
    claims = deliveries_claim(limit=10, webhook_ids=[hook.pk for hook in hooks], force_ids=[
        hook.pk for hook in hooks
    ])
    assert len(claims) == 5
    body = DeliveryBody.objects.get()
    assert body.digest == hashlib.sha256(claims[0].body).hexdigest()
    assert {claim.body for claim in claims} == {body.payload.encode("utf-8")}
    assert set(Delivery.objects.values_list("body_id", flat=True)) == {body.digest}
    # Every reader shows exactly the bytes that were sent.
    assert delivery_payloads(delivery_ids=[claim.delivery_id for claim in claims]) == {
        claim.delivery_id: claim.body.decode("utf-8") for claim in claims
    }
    assert Delivery.objects.get(pk=claims[3].delivery_id).payload.encode() == claims[3].body


def test_a_body_stored_earlier_is_referenced_again_not_copied(hooks):
    first = Delivery.objects.create(webhook=hooks[0], message_id="a", payload='{"changes":[]}',
                                    entry_count=0)
    second = Delivery.objects.create(webhook=hooks[1], message_id="b", payload='{"changes":[]}',
                                     entry_count=0)
    assert first.body_id == second.body_id and DeliveryBody.objects.count() == 1
    stored = DeliveryBody.objects.store(['{"changes":[]}', '{"changes":[1]}'])
    assert DeliveryBody.objects.count() == 2 and stored['{"changes":[]}'].digest == first.body_id
    made = Delivery.objects.bulk_create(
        Delivery(webhook=hooks[2 + n], message_id=f"bulk_{n}", payload='{"changes":[2]}',
                 entry_count=0)
        for n in range(3)
    )
    assert DeliveryBody.objects.count() == 3 and len({delivery.body_id for delivery in made}) == 1
    assert Delivery.objects.get(message_id="bulk_2").payload == '{"changes":[2]}'


def test_retention_deletes_the_bodies_no_delivery_references(hooks, settings):
    settings.WEBHOOK_RETENTION_DAYS = 30
    old = timezone.now() - timedelta(days=40)

    def made(hook, name, payload, *, delivered_at):
        return Delivery.objects.create(
            webhook=hook, message_id=name, payload=payload, entry_count=0,
            state="delivered" if delivered_at else "pending", delivered_at=delivered_at,
        )

    made(hooks[0], "old_alone", '{"changes":["alone"]}', delivered_at=old)
    made(hooks[0], "old_shared", '{"changes":["shared"]}', delivered_at=old)
    made(hooks[1], "recent_shared", '{"changes":["shared"]}', delivered_at=timezone.now())
    made(hooks[2], "old_open_shared", '{"changes":["open"]}', delivered_at=old)
    made(hooks[3], "open", '{"changes":["open"]}', delivered_at=None)
    assert deliveries_prune(batch_size=2) == 3
    assert set(DeliveryBody.objects.values_list("payload", flat=True)) == {
        '{"changes":["shared"]}', '{"changes":["open"]}'
    }
    assert deliveries_prune() == 0


def test_a_retry_sends_the_stored_body_again(hooks):
    record("update", "training", 1, 10)
    collect()
    (claim,) = deliveries_claim(limit=1, webhook_ids=[hooks[0].pk], force_ids=[hooks[0].pk])
    delivery_record(claim, SendResult(503, "http_status", "", "", 0.01))
    Delivery.objects.filter(pk=claim.delivery_id).update(
        next_attempt_at=timezone.now() - timedelta(seconds=1)
    )
    (retry,) = deliveries_claim(limit=1, webhook_ids=[hooks[0].pk])
    assert retry.delivery_id == claim.delivery_id and retry.body == claim.body
    assert json.loads(retry.body)["changes"][0]["id"] == 1


@pytest.mark.django_db(transaction=True)
def test_the_migration_moves_each_stored_payload_into_one_body_and_back(fast_delivery):
    before = [("deliveries", "0005_engine_payload_index")]
    payloads = ['{"changes":[{"action":"update","object":"training","id":345,"url":"u"}]}',
                '{"changes":[]}', '{"changes":[{"action":"destroy","object":"training","id":9}]}']
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    try:
        old = executor.loader.project_state(before).apps
        webhook = old.get_model("webhooks", "Webhook").objects.create(
            name="Old", url="http://127.0.0.1:9/old", secret="whsec_x",
        )
        for n in range(7):
            old.get_model("deliveries", "Delivery").objects.create(
                webhook_id=webhook.pk, message_id=f"msg_{n}", payload=payloads[n % 3],
                entry_count=1, state="delivered", delivered_at=timezone.now(),
            )
        executor = MigrationExecutor(connection)
        executor.migrate([("deliveries", "0006_delivery_body")])
        new = executor.loader.project_state([("deliveries", "0006_delivery_body")]).apps
        bodies = new.get_model("deliveries", "DeliveryBody").objects
        assert sorted(bodies.values_list("payload", flat=True)) == sorted(payloads)
        for digest, payload in bodies.values_list("digest", "payload"):
            assert digest == hashlib.sha256(payload.encode("utf-8")).hexdigest()
        moved = new.get_model("deliveries", "Delivery").objects.order_by("message_id")
        assert [delivery.body.payload for delivery in moved] == [payloads[n % 3] for n in range(7)]
        # And back: each delivery holds its own copy again.
        executor = MigrationExecutor(connection)
        executor.migrate(before)
        back = executor.loader.project_state(before).apps
        assert list(
            back.get_model("deliveries", "Delivery").objects.order_by("message_id")
            .values_list("payload", flat=True)
        ) == [payloads[n % 3] for n in range(7)]
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT indexname FROM pg_indexes WHERE indexname LIKE 'delivery_%%changes'"
                )
                assert [row[0] for row in cursor.fetchall()] == ["delivery_payload_changes"]
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_retention_skips_a_body_a_claim_is_storing_again_and_never_waits_for_it(hooks):
    from deliveries.services.retention import bodies_prune

    payload = '{"changes":["again"]}'
    digest = DeliveryBody.objects.store([payload])[payload].digest  # stored, referenced by none
    storing, done = threading.Event(), threading.Event()

    def claim_storing_it_again() -> None:
        try:
            with transaction.atomic():
                DeliveryBody.objects.store([payload])
                storing.set()
                done.wait(10)
                Delivery.objects.create(webhook=hooks[0], message_id="again", payload=payload,
                                        entry_count=0)
        finally:
            connection.close()

    claimer = threading.Thread(target=claim_storing_it_again)
    claimer.start()
    try:
        assert storing.wait(10)
        started = time.monotonic()
        with transaction.atomic():
            assert bodies_prune(digests={digest}) == 0
        assert time.monotonic() - started < 1
    finally:
        done.set()
        claimer.join(10)
    assert Delivery.objects.get(message_id="again").body_id == digest
    with transaction.atomic():
        assert bodies_prune(digests={digest}) == 0  # referenced now
    Delivery.objects.filter(message_id="again").delete()
    with transaction.atomic():
        assert bodies_prune(digests={digest}) == 1
    assert not DeliveryBody.objects.exists()
