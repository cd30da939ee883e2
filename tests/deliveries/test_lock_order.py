"""Claiming and recording lock a webhook's rows in one order (deliveries.services).

delivery_claim locks the webhook, then its delivery. delivery_record used to lock the
delivery, then the webhook: with two tasks for one webhook at once (a second beat, or a
task queued while another runs) the two deadlocked, and PostgreSQL rolled back the record
of an accepted batch, which was then sent again when its lease expired.
"""

import threading
import time

import pytest
from django.db import connection, transaction

from deliveries.http import SendResult
from deliveries.models import Delivery
from deliveries.services import delivery_claim, delivery_record
from tests.deliveries.helpers import collect, record
from webhooks.models import Webhook


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_recording_waits_for_the_webhook_before_it_locks_the_delivery(fast_delivery, partner):
    webhook = Webhook.objects.create(name="Partner", url=partner.url)
    record("update", "training", 1)
    collect()
    claim = delivery_claim(webhook_id=webhook.pk)
    assert claim is not None
    outcome: list[object] = []

    def record_accepted() -> None:
        try:
            outcome.append(delivery_record(claim, SendResult(200, "", "", "", 0.01)))
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
