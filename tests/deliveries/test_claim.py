"""Claiming (deliveries/services/claim.py): due work taken under a lease, in one
transaction, one attempt per webhook, never one that is held, paused or waiting for its
retry, and never more webhooks than the limit."""

from datetime import timedelta

import pytest
from django.utils import timezone

from deliveries.models import Delivery, DeliveryAttempt
from deliveries.services import deliveries_claim
from tests.deliveries.helpers import collect, record
from webhooks.models import Webhook


@pytest.fixture
def hooks(db, fast_delivery):
    return [Webhook.objects.create(name=f"W{n}", url=f"http://127.0.0.1:9/{n}") for n in range(4)]


def claim_all(hooks, limit=10):
    return deliveries_claim(limit=limit, webhook_ids=[hook.pk for hook in hooks])


def test_due_work_is_taken_under_a_lease_one_attempt_per_webhook(hooks, settings):
    settings.WEBHOOK_BATCH_SIZE = 2
    for training_id in range(1, 6):  # more than one batch waits for each webhook
        record("update", "training", training_id, 10)
    collect()
    claims = claim_all(hooks)
    assert sorted(claim.webhook_id for claim in claims) == sorted(hook.pk for hook in hooks)
    now = timezone.now()
    for claim in claims:
        delivery = Delivery.objects.get(pk=claim.delivery_id)
        assert delivery.lease_token == claim.lease_token and delivery.is_held(now)
        assert delivery.attempt_count == 1 and delivery.entry_count == 2
        attempt = DeliveryAttempt.objects.get(pk=claim.attempt_id)
        assert attempt.error_kind == DeliveryAttempt.ErrorKind.IN_PROGRESS
    # Held: nothing more for these webhooks until their attempts are recorded.
    assert claim_all(hooks) == []


def test_a_lapsed_lease_is_taken_over_and_its_attempt_marked(hooks):
    record("update", "training", 1, 10)
    collect()
    (first, *_) = claim_all(hooks[:1])
    Delivery.objects.filter(pk=first.delivery_id).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    (again,) = claim_all(hooks[:1])
    assert again.delivery_id == first.delivery_id and again.attempt_number == 2
    assert again.lease_token != first.lease_token
    assert DeliveryAttempt.objects.get(pk=first.attempt_id).error_kind == "lease_expired"


def test_a_paused_webhook_or_a_retry_not_due_is_skipped(hooks):
    record("update", "training", 1, 10)
    collect()
    paused, failing, *others = hooks
    Webhook.objects.filter(pk=paused.pk).update(is_active=False)
    (claim,) = claim_all([failing])
    Delivery.objects.filter(pk=claim.delivery_id).update(
        state=Delivery.State.FAILING, lease_token="", lease_expires_at=None,
        next_attempt_at=timezone.now() + timedelta(seconds=60),
    )
    assert claim_all([paused, failing]) == []
    assert not Delivery.objects.filter(webhook=paused).exists()
    Delivery.objects.filter(pk=claim.delivery_id).update(next_attempt_at=timezone.now())
    assert [claim.webhook_id for claim in claim_all([paused, failing])] == [failing.pk]


def test_the_limit_is_respected(hooks):
    record("update", "training", 1, 10)
    collect()
    # The candidates as production finds them (webhooks_due): the limit caps the webhooks
    # locked, so a caller's candidates must be webhooks with work due.
    first = deliveries_claim(limit=3)
    assert len(first) == 3
    rest = deliveries_claim(limit=3)
    assert len(rest) == 1
    assert {claim.webhook_id for claim in first + rest} == {hook.pk for hook in hooks}
    assert deliveries_claim(limit=3) == []
