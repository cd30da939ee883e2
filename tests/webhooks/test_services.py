from datetime import timedelta

import pytest
import standardwebhooks
from django.utils import timezone

from deliveries.services import dispatch_tick, webhook_signing_secrets
from tests.deliveries.helpers import engine_run, record
from webhooks.models import Webhook
from webhooks.services import (
    WebhookError,
    webhook_pause,
    webhook_resume,
    webhook_secret_rotate,
)


@pytest.fixture
def webhook(db, fast_delivery, partner):
    return Webhook.objects.create(name="Partner", url=partner.url)


def test_pause_and_resume(webhook):
    webhook_pause(webhook_id=webhook.pk, reason="Partner asked for a break.")
    webhook.refresh_from_db()
    assert (webhook.is_active, webhook.paused_reason) == (False, "Partner asked for a break.")
    webhook_resume(webhook_id=webhook.pk)
    webhook.refresh_from_db()
    assert (webhook.is_active, webhook.paused_reason) == (True, "")


def test_an_unknown_webhook_is_a_clear_error(db):
    with pytest.raises(WebhookError, match="webhook 424242 does not exist"):
        webhook_pause(webhook_id=424242)


def test_during_a_rotation_both_secrets_sign_and_both_verify(webhook, partner):
    old_secret = webhook.secret
    webhook_secret_rotate(webhook_id=webhook.pk)
    webhook.refresh_from_db()
    assert webhook.secret != old_secret and webhook.previous_secret == old_secret

    record("update", "training", 1, 1)
    dispatch_tick()
    engine_run(webhook.pk)
    (request,) = partner.wait_for(1)
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    for secret in (old_secret, webhook.secret):
        standardwebhooks.Webhook(secret).verify(request.body, request.headers)


def test_after_the_overlap_only_the_new_secret_signs(webhook):
    webhook_secret_rotate(webhook_id=webhook.pk, overlap=timedelta(hours=24))
    webhook.refresh_from_db()
    later = timezone.now() + timedelta(hours=24, seconds=1)
    assert webhook_signing_secrets(webhook, later) == (webhook.secret,)
