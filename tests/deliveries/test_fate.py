"""Find a change's fate: every batch that carried an object, to which webhook, how it ended."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from deliveries.models import Delivery, DeliveryBody
from deliveries.payload import payload_render
from deliveries.selectors import deliveries_carrying, object_query_parse
from tests.deliveries.helpers import next_batch, record
from webhooks.models import Webhook


class Entry:
    def __init__(self, action, object_kind, object_id):
        self.action, self.object_kind, self.object_id = action, object_kind, object_id


def batch(webhook, message_id, entries, state="delivered"):
    return Delivery.objects.create(
        webhook=webhook, message_id=message_id, entry_count=len(entries), state=state,
        payload=payload_render([Entry(*entry) for entry in entries]),
    )


@pytest.fixture
def hooks(db):
    return (
        Webhook.objects.create(name="Alpha", url="https://a.example/"),
        Webhook.objects.create(name="Beta", url="https://b.example/"),
    )


def test_object_queries_parse():
    assert object_query_parse("training 345345") == ("training", 345345)
    assert object_query_parse(" Institute #12 ") == ("institute", 12)
    assert object_query_parse("training:7") == ("training", 7)
    assert object_query_parse("msg_abc") is None
    assert object_query_parse("training 12a") is None


def test_finds_every_batch_that_carried_the_object_and_no_other(hooks):
    alpha, beta = hooks
    batch(alpha, "m1", [("update", "training", 345345), ("update", "training", 3453450)])
    batch(alpha, "m2", [("destroy", "training", 345345)])
    batch(beta, "m3", [("update", "institute", 345345), ("update", "training", 34534)])
    batch(beta, "m4", [("update", "training", 1), ("update", "training", 345345)],
          state="failing")
    found = set(
        deliveries_carrying(object_kind="training", object_id=345345)
        .values_list("message_id", flat=True)
    )
    assert found == {"m1", "m2", "m4"}, "neither prefixes, nor the institute with the same id"
    assert set(
        deliveries_carrying(object_kind="institute", object_id=345345)
        .values_list("message_id", flat=True)
    ) == {"m3"}


def test_finds_the_batches_of_real_deliveries(db, fast_delivery):
    webhook = Webhook.objects.create(name="Partner", url="https://p.example/")
    record("update", "training", 42, 1)
    record("update", "training", 43, 1)
    next_batch(webhook)
    record("destroy", "training", 42, 1)
    next_batch(webhook)
    assert deliveries_carrying(object_kind="training", object_id=42).count() == 2
    assert deliveries_carrying(object_kind="training", object_id=43).count() == 1


def test_admin_search_lists_the_batches_their_webhook_and_outcome(admin_client, hooks):
    alpha, beta = hooks
    batch(alpha, "msg_found_delivered", [("update", "training", 345345)])
    batch(beta, "msg_found_failing", [("update", "training", 345345)], state="failing")
    batch(beta, "msg_other", [("update", "training", 7)])
    page = admin_client.get(
        reverse("admin:deliveries_delivery_changelist"), {"q": "training 345345"}
    ).content.decode()
    assert "msg_found_delivered" in page and "msg_found_failing" in page
    assert "msg_other" not in page
    assert "Alpha" in page and "Beta" in page and "failing" in page
    # other searches still work
    page = admin_client.get(
        reverse("admin:deliveries_delivery_changelist"), {"q": "msg_other"}
    ).content.decode()
    assert "msg_other" in page and "msg_found_failing" not in page


@pytest.mark.postgres
def test_postgresql_answers_from_the_gin_index_and_the_bodies_not_indexed_yet(hooks):
    from deliveries.services.bodies import bodies_index

    alpha, _ = hooks
    batch(alpha, "m1", [("update", "training", 345345)])
    # A history of accepted batches, as a real one: the index is worth using.
    payloads = [
        payload_render([Entry("update", "training", n), Entry("update", "training", n + 1)])
        for n in range(1000)
    ]
    bodies = DeliveryBody.objects.store(payloads)
    Delivery.objects.bulk_create(
        Delivery(webhook=alpha, message_id=f"h{n}", entry_count=2, state="delivered",
                 delivered_at=timezone.now(), body=bodies[payload])
        for n, payload in enumerate(payloads)
    )
    assert not DeliveryBody.objects.filter(indexed=True).exists()  # stored unindexed
    assert bodies_index(batch_size=300) == 1001  # in rounds, until none is left
    assert bodies_index() == 0
    # Stored after the job ran: found all the same, read from the few not indexed yet.
    batch(alpha, "m2", [("update", "training", 345345), ("update", "training", 2_000_000)])
    assert DeliveryBody.objects.filter(indexed=False).count() == 1
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes "
            "WHERE tablename = 'deliveries_deliverybody'"
        )
        definitions = dict(cursor.fetchall())
        assert "jsonb_path_ops" in definitions["delivery_body_changes_indexed"]
        assert definitions["delivery_body_changes_indexed"].endswith("WHERE indexed")
        assert definitions["delivery_body_not_indexed"].endswith("WHERE (NOT indexed)")
        cursor.execute("ANALYZE deliveries_deliverybody")
        cursor.execute("ANALYZE deliveries_delivery")
        cursor.execute("SET LOCAL enable_seqscan = off")
        queryset = deliveries_carrying(object_kind="training", object_id=345345)
        with CaptureQueriesContext(connection):
            plan = queryset.explain()
    assert "delivery_body_changes_indexed" in plan and "delivery_body_not_indexed" in plan, plan
    assert sorted(delivery.message_id for delivery in queryset) == ["m1", "m2"]
    assert deliveries_carrying(object_kind="training", object_id=2_000_000).get().message_id == "m2"
