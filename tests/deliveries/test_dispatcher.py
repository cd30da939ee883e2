"""The embedded dispatcher end to end: a save reaches a real partner, signed, in time."""

import signal
import subprocess
import threading
import time

import pytest
import standardwebhooks

from catalog.models import Training
from deliveries.dispatcher import Dispatcher
from deliveries.models import DeliveryAttempt
from tests.support import processes
from tests.support.partner import Behaviour, Partner
from tests.support.raw_partner import RawAnswer, RawPartner
from webhooks.models import Webhook


@pytest.fixture
def dispatcher(fast_delivery):
    fast_delivery.WEBHOOK_BUNDLE_DELAY = 1
    running = Dispatcher(sends_in_flight=4, tick_seconds=0.2)
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


@pytest.mark.django_db(transaction=True)
def test_sigterm_stops_the_dispatcher_within_seconds_while_a_partner_drips(tmp_path, institute):
    # `Connection: close` and a body dripped a byte every 0.5 s (50 s in all): only the
    # attempt's deadline ends the send, and the dispatcher waits for its sends on SIGTERM.
    partner = RawPartner(RawAnswer("length-close", drip_body=0.5)).start()
    env = {
        "DATABASE_URL": processes.current_database_url(),
        "WEBHOOK_ALLOW_PRIVATE_URLS": "1",
        "WEBHOOK_BUNDLE_DELAY": "0",
        "WEBHOOK_TIMEOUT": "3",
        "WEBHOOK_CONNECT_TIMEOUT": "1",
        "WEBHOOK_TICK_SECONDS": "0.2",
    }
    dispatcher = processes.dispatcher(env=env, log_dir=tmp_path)
    try:
        Webhook.objects.create(name="Drips", url=partner.url)
        Training.objects.create(institute=institute, reference="R", name="x")
        dispatcher.start()
        deadline = time.monotonic() + 60
        while partner.requests == 0:
            assert time.monotonic() < deadline, f"no request sent:\n{dispatcher.tail()}"
            time.sleep(0.1)
        time.sleep(0.5)  # the answer is dripping now
        stopping = time.monotonic()
        dispatcher.process.send_signal(signal.SIGTERM)
        try:
            dispatcher.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the dispatcher did not stop within 20 s:\n{dispatcher.tail()}")
        stopped_after = time.monotonic() - stopping
    finally:
        dispatcher.stop()
        partner.stop()
    assert stopped_after <= 3 + 3, f"stopped {stopped_after:.1f} s after SIGTERM"
    assert "dispatcher stopped" in dispatcher.log()
    attempt = DeliveryAttempt.objects.get()
    assert (attempt.error_kind, attempt.accepted) == ("timeout", False)
