"""Recording: store an attempt's outcome and schedule what follows."""

import logging
import random
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.logfmt import logfmt
from deliveries.http import SendResult
from deliveries.models import Delivery, DeliveryAttempt
from deliveries.services.claim import Claim
from deliveries.services.notify import recovered_message, staff_tell_on_commit
from webhooks.models import Webhook

logger = logging.getLogger("springhook.deliveries")
# Retry-After is honoured up to this: a partner cannot park us for days.
RETRY_AFTER_CAP = 3600.0
# Spread of the backoff, so that many webhooks failing together do not retry in step.
JITTER = 0.1


def retry_delay(*, failed_attempts: int, retry_after: str | None = None) -> float:
    """Seconds until the next attempt after `failed_attempts` failures: the steps of
    WEBHOOK_RETRY_SCHEDULE, then its last step forever, with jitter."""
    schedule = settings.WEBHOOK_RETRY_SCHEDULE
    base = schedule[min(failed_attempts, len(schedule)) - 1]
    delay = base * random.uniform(1 - JITTER, 1 + JITTER)
    requested = _retry_after_seconds(retry_after)
    if requested is not None:
        delay = max(delay, min(requested, RETRY_AFTER_CAP))
    return delay


def _retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - timezone.now()).total_seconds())


def delivery_record(claim: Claim, result: SendResult) -> bool:
    """Store the attempt's outcome and schedule what follows. Returns True if accepted.

    An accepted batch is done. A failed one is retried on the schedule (Retry-After on 429
    and 503 honoured, up to an hour); a 410 Gone pauses the webhook, keeping everything.
    If the lease was lost meanwhile (the attempt outlived it), the attempt is still
    recorded, and an acceptance still completes the delivery.
    """
    now = timezone.now()
    with transaction.atomic():
        # The webhook row first, then the delivery: the order delivery_claim locks them in.
        # The other order deadlocked against a claim for the same webhook (two tasks for
        # one webhook at once), and PostgreSQL then rolled back the record of an accepted
        # batch, which went out again when its lease expired.
        list(Webhook.objects.select_for_update().filter(pk=claim.webhook_id).values_list("pk"))
        delivery = Delivery.objects.select_for_update().get(pk=claim.delivery_id)
        DeliveryAttempt.objects.filter(pk=claim.attempt_id).update(
            duration=result.duration,
            accepted=result.accepted,
            status_code=result.status_code,
            error_kind=result.error_kind,
            error_message=result.error_message,
            response_body=result.response_body,
        )
        holds_lease = delivery.lease_token == claim.lease_token
        if delivery.state == Delivery.State.DELIVERED:
            return result.accepted
        fields = ["last_status_code", "last_error_kind"]
        delivery.last_status_code = result.status_code
        delivery.last_error_kind = result.error_kind
        if result.accepted:
            delivery.state = Delivery.State.DELIVERED
            delivery.delivered_at = now
            delivery.next_attempt_at = None
            delivery.lease_token = ""
            delivery.lease_expires_at = None
            fields += ["state", "delivered_at", "next_attempt_at", "lease_token",
                       "lease_expires_at"]
        elif holds_lease:
            retry_after = result.retry_after if result.status_code in (429, 503) else None
            delay = retry_delay(failed_attempts=delivery.attempt_count, retry_after=retry_after)
            delivery.state = Delivery.State.FAILING
            delivery.next_attempt_at = now + timedelta(seconds=delay)
            delivery.lease_token = ""
            delivery.lease_expires_at = None
            fields += ["state", "next_attempt_at", "lease_token", "lease_expires_at"]
        delivery.save(update_fields=fields)
        _webhook_health_record(claim.webhook_id, result, now)
    logger.info(
        logfmt(
            "attempt", webhook=claim.webhook_id, delivery=claim.message_id,
            attempt=claim.attempt_number, entries=delivery.entry_count,
            status=result.status_code, error=result.error_kind,
            accepted=str(result.accepted).lower(), duration=result.duration,
        )
    )
    return result.accepted


def _webhook_health_record(webhook_id: int, result: SendResult, now: datetime) -> None:
    webhook = Webhook.objects.select_for_update().filter(pk=webhook_id).first()
    if webhook is None:
        return
    if result.accepted:
        if webhook.failing_since is not None:
            logger.info(logfmt("webhook_recovered", webhook=webhook_id,
                               failing_since=webhook.failing_since.isoformat()))
        webhook.last_success_at = now
        webhook.failing_since = None
        fields = ["last_success_at", "failing_since"]
        if webhook.failure_notified_at is not None:
            webhook.failure_notified_at = None
            fields.append("failure_notified_at")
            staff_tell_on_commit(webhook, "recovered", recovered_message(webhook, now))
        webhook.save(update_fields=[*fields, "updated_at"])
        return
    fields = []
    if webhook.failing_since is None:
        webhook.failing_since = now
        fields.append("failing_since")
        logger.warning(logfmt("webhook_failing", webhook=webhook_id,
                              status=result.status_code, error=result.error_kind))
    if result.status_code == 410 and webhook.is_active:
        webhook.is_active = False
        webhook.paused_reason = "The partner answered 410 Gone."
        # Staff are told now; the failing episode counts as reported, so the recovery after
        # a resume is reported too, and no second "failing" mail follows in this episode.
        webhook.failure_notified_at = now
        fields += ["is_active", "paused_reason", "failure_notified_at"]
        logger.warning(logfmt("webhook_paused", webhook=webhook_id, reason=webhook.paused_reason))
        staff_tell_on_commit(webhook, "paused: the partner answered 410 Gone", (
            f"The partner of webhook {webhook.name!r} ({webhook.url}) answered 410 Gone, so "
            "the webhook was paused. Its changes keep collecting and nothing is dropped; "
            "resume it in the admin once the partner is ready again."
        ))
    if fields:
        webhook.save(update_fields=[*fields, "updated_at"])
