"""The delivery state machine (open, held, due and the transitions), defined once in
deliveries.models."""

import random
from datetime import timedelta

import pytest
from django.db.models import Q
from django.utils import timezone

from deliveries.models import OPEN_DELIVERY, Delivery
from webhooks.models import Webhook


def test_open_means_not_accepted_yet(db):
    assert ~Q(state=Delivery.State.DELIVERED) == OPEN_DELIVERY
    webhooks = [
        Webhook.objects.create(name=f"Partner {index}", url=f"https://p{index}.example/")
        for index in range(3)
    ]
    for webhook, state in zip(webhooks, Delivery.State.values, strict=True):
        Delivery.objects.create(
            webhook=webhook, message_id=f"msg_{state}", payload='{"changes":[]}',
            entry_count=0, state=state,
        )
    assert sorted(Delivery.objects.open().values_list("state", flat=True)) == [
        "failing", "pending"
    ]


def test_due_and_held_mean_the_same_in_sql_and_in_python(db):
    """The queryset's `due`/`held`/`open` and the row's `is_due`/`is_held`/`is_open` are
    two spellings of one state machine: over random rows they pick the same ones."""
    rng = random.Random(19)
    now = timezone.now()
    moments = [None, now - timedelta(seconds=5), now, now + timedelta(seconds=5)]
    for index in range(60):
        webhook = Webhook.objects.create(name=f"Partner {index}", url=f"https://p{index}.example/")
        state = rng.choice(Delivery.State.values)
        lease_expires_at = None if state == Delivery.State.DELIVERED else rng.choice(moments)
        Delivery.objects.create(
            webhook=webhook, message_id=f"msg_{index}", payload='{"changes":[]}',
            entry_count=0, state=state, next_attempt_at=rng.choice(moments),
            lease_expires_at=lease_expires_at,
            lease_token="held" if lease_expires_at is not None else "",
        )
    rows = list(Delivery.objects.all())
    assert {d.pk for d in rows if d.is_open} == set(
        Delivery.objects.open().values_list("pk", flat=True))
    assert {d.pk for d in rows if d.is_held(now)} == set(
        Delivery.objects.held(now).values_list("pk", flat=True))
    assert {d.pk for d in rows if d.is_due(now)} == set(
        Delivery.objects.due(now).values_list("pk", flat=True))
    # Each kind occurs, so the comparisons above could fail.
    assert any(d.is_due(now) for d in rows) and any(d.is_held(now) for d in rows)
    assert any(d.is_open and not d.is_due(now) and not d.is_held(now) for d in rows)


def test_the_transitions_lease_accept_fail_and_make_due(db):
    webhook = Webhook.objects.create(name="Partner", url="https://p.example/")
    delivery = Delivery.objects.create(
        webhook=webhook, message_id="msg", payload='{"changes":[]}', entry_count=0,
    )
    now = timezone.now()
    assert delivery.is_due(now)
    delivery.lease(now=now, until=now + timedelta(seconds=30))
    delivery.save()
    assert delivery.attempt_count == 1 and delivery.lease_token and delivery.is_held(now)
    assert not Delivery.objects.due(now).exists() and Delivery.objects.held(now).exists()
    delivery.fail(retry_at=now + timedelta(seconds=10))
    delivery.save()
    assert delivery.state == Delivery.State.FAILING and delivery.lease_token == ""
    assert not delivery.is_held(now) and not delivery.is_due(now)
    delivery.make_due(now=now)
    assert delivery.is_due(now)
    delivery.accept(now=now)
    delivery.save()
    assert not delivery.is_open and delivery.delivered_at == now
    assert delivery.next_attempt_at is None and delivery.lease_expires_at is None
    assert not Delivery.objects.open().exists()


def test_the_database_keeps_one_open_delivery_per_webhook_and_unique_message_ids(db):
    from django.db import IntegrityError, transaction

    webhook = Webhook.objects.create(name="Partner", url="https://p.example/")
    Delivery.objects.create(webhook=webhook, message_id="msg_1", payload='{"changes":[]}',
                            entry_count=0)
    with pytest.raises(IntegrityError), transaction.atomic():
        Delivery.objects.create(webhook=webhook, message_id="msg_2", payload='{"changes":[]}',
                                entry_count=0, state=Delivery.State.FAILING)
    Delivery.objects.create(webhook=webhook, message_id="msg_3", payload='{"changes":[]}',
                            entry_count=0, state=Delivery.State.DELIVERED)
    with pytest.raises(IntegrityError), transaction.atomic():
        Delivery.objects.create(webhook=webhook, message_id="msg_3", payload='{"changes":[]}',
                                entry_count=0, state=Delivery.State.DELIVERED)


@pytest.mark.postgres
def test_each_delivery_index_is_one_no_other_serves(db):
    # Every index is written by each insert and state change: exactly these, and the
    # constraints' (migration deliveries 0012 dropped the redundant ones by name).
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tablename, indexname FROM pg_indexes WHERE tablename IN "
            "('deliveries_delivery', 'deliveries_deliveryattempt')"
        )
        names = {(table.removeprefix("deliveries_"), name) for table, name in cursor.fetchall()}
    assert names == {
        ("delivery", "deliveries_delivery_pkey"),
        ("delivery", "delivery_message_id_unique"),
        ("delivery", "delivery_one_open_per_webhook"),
        ("delivery", "delivery_body"),
        ("delivery", "delivery_open_due"),
        ("delivery", "delivery_webhook_history"),
        ("delivery", "delivery_state_created"),
        ("delivery", "delivery_newest_first"),
        ("delivery", "delivery_delivered_at"),
        ("deliveryattempt", "deliveries_deliveryattempt_pkey"),
        ("deliveryattempt", "attempt_number_unique"),
        ("deliveryattempt", "attempt_started_covering"),
    }
