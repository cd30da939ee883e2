"""Telling staff: a mail when a webhook has failed for over an hour, once per
episode, and one when it recovers; a 410 Gone pause is mailed at once."""

from datetime import timedelta

import pytest
from django.utils import timezone

from deliveries.models import Delivery
from deliveries.services import dispatch_tick
from tests.deliveries.helpers import deliver, make_retry_due, record
from tests.support.partner import status
from webhooks.models import Webhook
from webhooks.services import webhook_resume

# The mails leave after the commit (on_commit), so the tests commit for real.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def webhook(db, fast_delivery, partner):
    fast_delivery.ADMINS = [("Ops", "ops@example.test")]
    return Webhook.objects.create(name="Partner", url=partner.url)


def failing_for(webhook, minutes: int) -> None:
    Webhook.objects.filter(pk=webhook.pk).update(
        failing_since=timezone.now() - timedelta(minutes=minutes)
    )


def test_one_mail_per_failing_episode_and_one_when_it_recovers(webhook, partner, mailoutbox):
    partner.default = status(500)
    record("update", "training", 7, 1)
    deliver(webhook)
    failing_for(webhook, 59)
    dispatch_tick()
    assert mailoutbox == [], "not yet an hour"

    failing_for(webhook, 61)
    for _ in range(3):  # more ticks and more failed attempts: still the one mail
        make_retry_due(webhook)
        deliver(webhook)
    assert len(mailoutbox) == 1
    (mail,) = mailoutbox
    assert mail.to == ["ops@example.test"]
    assert "failing for over an hour" in mail.subject and "Partner" in mail.subject
    assert "HTTP 500" in mail.body
    webhook.refresh_from_db()
    assert webhook.failure_notified_at is not None

    partner.default = status(200)
    make_retry_due(webhook)
    deliver(webhook)
    assert len(mailoutbox) == 2
    assert "recovered" in mailoutbox[1].subject
    webhook.refresh_from_db()
    assert (webhook.failure_notified_at, webhook.failing_since) == (None, None)

    # A new episode is a new mail.
    partner.default = status(500)
    record("update", "training", 8, 1)
    deliver(webhook)
    failing_for(webhook, 61)
    dispatch_tick()
    dispatch_tick()
    assert len(mailoutbox) == 3


def test_a_webhook_waiting_an_hour_for_its_retry_is_noticed_by_the_tick(
    webhook, partner, mailoutbox
):
    partner.then(status(500))
    record("update", "training", 7, 1)
    deliver(webhook)
    Delivery.objects.update(next_attempt_at=timezone.now() + timedelta(hours=1))
    failing_for(webhook, 61)
    assert deliver(webhook) == 0, "no attempt is due"
    assert len(mailoutbox) == 1


def test_a_short_failure_is_not_mailed_at_all(webhook, partner, mailoutbox):
    partner.then(status(500))
    record("update", "training", 7, 1)
    deliver(webhook)
    make_retry_due(webhook)
    deliver(webhook)
    assert Delivery.objects.get().state == "delivered"
    assert mailoutbox == []


def test_410_gone_mails_staff_and_the_recovery_after_resume(webhook, partner, mailoutbox):
    partner.then(status(410))
    record("update", "training", 7, 1)
    deliver(webhook)
    assert len(mailoutbox) == 1
    assert "410 Gone" in mailoutbox[0].subject
    failing_for(webhook, 120)
    dispatch_tick()
    assert len(mailoutbox) == 1, "paused, and staff were told already"

    webhook_resume(webhook_id=webhook.pk)
    make_retry_due(webhook)
    deliver(webhook)
    assert [m.subject for m in mailoutbox][1:] == ["[Springhook] Webhook 'Partner' recovered"]


def test_a_mail_that_cannot_be_sent_is_tried_again_at_the_next_tick(
    webhook, partner, mailoutbox, settings
):
    partner.then(status(500))
    record("update", "training", 7, 1)
    deliver(webhook)
    failing_for(webhook, 61)
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", 1  # nothing listens there
    dispatch_tick()
    webhook.refresh_from_db()
    assert webhook.failure_notified_at is None, "not marked as told"

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    dispatch_tick()
    assert len(mailoutbox) == 1
