"""The embedded dispatcher end to end: a save reaches a real partner, signed, in time."""

import threading
import time

import pytest
import standardwebhooks

from catalog.models import Training
from deliveries.dispatcher import Dispatcher
from tests.support.partner import Behaviour, Partner
from webhooks.models import Webhook


@pytest.fixture
def dispatcher(fast_delivery):
    fast_delivery.WEBHOOK_BUNDLE_DELAY = 1
    running = Dispatcher(threads=4, tick_seconds=0.2)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    yield running
    running.stop()
    thread.join(timeout=15)


@pytest.mark.django_db(transaction=True)
def test_a_saved_training_reaches_the_partner_within_3_seconds(dispatcher, partner, institute):
    webhook = Webhook.objects.create(name="Partner", url=partner.url)
    saved_at = time.time()
    training = Training.objects.create(institute=institute, reference="R", name="Fresh")

    (request, *_) = partner.wait_for(1, timeout=10)
    assert request.at - saved_at < 3.0
    standardwebhooks.Webhook(webhook.secret).verify(request.body, request.headers)
    assert {"action": "update", "object": "training", "id": training.pk,
            "url": f"https://api.example.test/trainings/{training.pk}"} in request.json["changes"]


@pytest.mark.django_db(transaction=True)
def test_a_hanging_partner_does_not_hold_back_the_others(dispatcher, partner, institute):
    hanging = Partner().start()
    hanging.default = Behaviour(hang=30)  # far past the 2 s timeout
    try:
        Webhook.objects.create(name="Hangs", url=hanging.url)
        Webhook.objects.create(name="Healthy", url=partner.url)
        hanging.wait_for(0)
        for n in range(3):
            saved_at = time.time()
            Training.objects.create(institute=institute, reference=f"R{n}", name="x")
            request = partner.wait_for(n + 1, timeout=10)[n]
            assert request.at - saved_at < 3.0, "the healthy partner waited on the hanging one"
    finally:
        hanging.stop()
