"""Delivering batches: claim with a lease, send without any transaction, record.

The database is the queue of record. A delivery is claimed in a short transaction that
sets a lease; the HTTP request runs with no transaction and no row lock; the outcome is
recorded in a second short transaction. A worker that dies mid-send leaves its lease to
expire, and the next claim takes the delivery over with the same `webhook-id`.
"""

import logging
import random
import secrets as secrets_module
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

from django.conf import settings
from django.core.mail import mail_admins
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, Subquery
from django.utils import timezone

import springhook
from deliveries.bundling import batch_take, bundle_delay, changes_collect
from deliveries.http import SendResult, webhook_post
from deliveries.models import Delivery, DeliveryAttempt, DispatcherHeartbeat, PendingEntry
from deliveries.payload import payload_render
from deliveries.signing import signature_header
from springhook.logfmt import logfmt
from webhooks.models import Webhook

logger = logging.getLogger("springhook.deliveries")

ErrorKind = DeliveryAttempt.ErrorKind
# Retry-After is honoured up to this (SPEC §4): a partner cannot park us for days.
RETRY_AFTER_CAP = 3600.0
# Spread of the backoff, so that many webhooks failing together do not retry in step.
JITTER = 0.1
# A webhook failing for longer than this is reported to the site admins (SPEC §4).
FAILURE_NOTIFY_AFTER = timedelta(hours=1)
USER_AGENT = f"Springhook/{springhook.__version__}"


class DeliveryError(Exception):
    """An operator asked for something the delivery's state does not allow."""


@dataclass(frozen=True)
class Claim:
    """What a worker needs to make one attempt, taken under a lease."""

    webhook_id: int
    delivery_id: int
    attempt_id: int
    attempt_number: int
    lease_token: str
    message_id: str
    url: str
    body: bytes
    secrets: tuple[str, ...]


def lease_seconds() -> float:
    # Longer than any attempt can take (connect + total timeout), so a live worker never
    # loses its lease; short enough that a dead worker's batch goes out again soon.
    return (
        settings.WEBHOOK_CONNECT_TIMEOUT + settings.WEBHOOK_TIMEOUT + settings.WEBHOOK_LEASE_MARGIN
    )


def retry_delay(*, failed_attempts: int, retry_after: str | None = None) -> float:
    """Seconds until the next attempt after `failed_attempts` failures (SPEC §4)."""
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


def message_id_generate() -> str:
    return "msg_" + secrets_module.token_hex(16)


def webhook_signing_secrets(webhook: Webhook, now: datetime) -> tuple[str, ...]:
    """The new secret, and the previous one while its overlap window lasts."""
    if webhook.previous_secret and (
        webhook.previous_secret_expires_at is None or webhook.previous_secret_expires_at > now
    ):
        return (webhook.secret, webhook.previous_secret)
    return (webhook.secret,)


def delivery_claim(*, webhook_id: int, force: bool = False) -> Claim | None:
    """Take the webhook's next attempt under a lease, or None when there is nothing to do.

    Returns the open delivery if its retry is due and nobody holds it; otherwise, when no
    delivery is open, builds the next batch from the pending entries if one is due. At
    most one delivery per webhook is open (a database constraint), and a claimed one is
    held by a lease, so no two workers ever send one webhook's batches at once.
    """
    now = timezone.now()
    with transaction.atomic():
        webhook = (
            Webhook.objects.select_for_update(skip_locked=True)
            .filter(pk=webhook_id, is_active=True)
            .first()
        )
        if webhook is None:  # paused, deleted, or another worker is claiming it right now
            return None
        delivery = (
            Delivery.objects.select_for_update()
            .filter(webhook=webhook)
            .exclude(state=Delivery.State.DELIVERED)
            .first()
        )
        if delivery is not None:
            if delivery.lease_expires_at is not None and delivery.lease_expires_at > now:
                return None  # in flight
            if delivery.next_attempt_at is not None and delivery.next_attempt_at > now:
                return None  # waiting for its retry
            if delivery.lease_token:
                # The last holder neither finished nor renewed: its worker died mid-send.
                DeliveryAttempt.objects.filter(
                    delivery=delivery, error_kind=ErrorKind.IN_PROGRESS
                ).update(
                    error_kind=ErrorKind.LEASE_EXPIRED,
                    error_message="the worker stopped before recording an answer",
                )
        else:
            delivery = _delivery_open(webhook=webhook, now=now, force=force)
            if delivery is None:
                return None
        delivery.attempt_count += 1
        delivery.lease_token = uuid.uuid4().hex
        delivery.lease_expires_at = now + timedelta(seconds=lease_seconds())
        delivery.last_attempt_at = now
        delivery.save(
            update_fields=["attempt_count", "lease_token", "lease_expires_at", "last_attempt_at"]
        )
        attempt = DeliveryAttempt.objects.create(
            delivery=delivery,
            webhook_id=webhook.pk,
            number=delivery.attempt_count,
            started_at=now,
            error_kind=ErrorKind.IN_PROGRESS,
        )
        return Claim(
            webhook_id=webhook.pk,
            delivery_id=delivery.pk,
            attempt_id=attempt.pk,
            attempt_number=attempt.number,
            lease_token=delivery.lease_token,
            message_id=delivery.message_id,
            url=webhook.url,
            body=delivery.payload.encode("utf-8"),
            secrets=webhook_signing_secrets(webhook, now),
        )


def _delivery_open(*, webhook: Webhook, now: datetime, force: bool) -> Delivery | None:
    # Inside the claim's transaction, with the webhook row locked.
    entries = batch_take(webhook=webhook, now=now, force=force)
    if not entries:
        return None
    return Delivery.objects.create(
        webhook=webhook,
        message_id=message_id_generate(),
        payload=payload_render(entries),
        entry_count=len(entries),
        next_attempt_at=now,
    )


def delivery_send(claim: Claim) -> SendResult:
    """Make the attempt: sign it anew with this attempt's own timestamp, and POST it."""
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "webhook-id": claim.message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(
            secrets=list(claim.secrets),
            message_id=claim.message_id,
            timestamp=timestamp,
            body=claim.body,
        ),
    }
    return webhook_post(url=claim.url, body=claim.body, headers=headers)


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
            _staff_tell_on_commit(webhook, "recovered", _recovered_message(webhook, now))
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
        _staff_tell_on_commit(webhook, "paused: the partner answered 410 Gone", (
            f"The partner of webhook {webhook.name!r} ({webhook.url}) answered 410 Gone, so "
            "the webhook was paused. Its changes keep collecting and nothing is dropped; "
            "resume it in the admin once the partner is ready again."
        ))
    if fields:
        webhook.save(update_fields=[*fields, "updated_at"])


def _staff_tell_on_commit(webhook: Webhook, subject: str, message: str) -> None:
    # After the commit: a rolled-back record must not have told anyone anything.
    webhook_id, full_subject = webhook.pk, f"Webhook {webhook.name!r} {subject}"
    transaction.on_commit(lambda: _staff_tell(webhook_id, full_subject, message))


def _staff_tell(webhook_id: int, subject: str, message: str) -> bool:
    try:
        mail_admins(subject, message, fail_silently=False)
    except Exception:
        # The mail server is down: the mark in the admin stays, the delivery goes on.
        logger.exception("webhook=%s could not mail the admins: %s", webhook_id, subject)
        return False
    return True


def _recovered_message(webhook: Webhook, now: datetime) -> str:
    since = webhook.failing_since or webhook.failure_notified_at
    return (
        f"Webhook {webhook.name!r} ({webhook.url}) delivered again at {now:%Y-%m-%d %H:%M} UTC"
        + (f" after failing since {since:%Y-%m-%d %H:%M} UTC." if since else ".")
    )


def webhooks_failure_notify(*, now: datetime | None = None) -> int:
    """Mail the site admins about every active webhook failing for over an hour, once per
    failing episode. Returns the number of webhooks reported.

    `failure_notified_at` marks the episode as reported (and shows in the admin); an
    accepted delivery clears it and mails that the webhook recovered. Runs from the
    dispatch tick, so a webhook that waits an hour for its next retry is noticed on time.
    Each webhook is marked before it is mailed, with a conditional update, so that two
    dispatchers never both mail it; if the mail fails the mark is taken back and the next
    tick tries again.
    """
    now = now or timezone.now()
    failing = Webhook.objects.filter(
        is_active=True,
        failing_since__lte=now - FAILURE_NOTIFY_AFTER,
        failure_notified_at__isnull=True,
    )
    reported = 0
    for webhook in failing.only("id", "name", "url", "failing_since"):
        marked = Webhook.objects.filter(pk=webhook.pk, failure_notified_at__isnull=True).update(
            failure_notified_at=now
        )
        if not marked:
            continue  # another dispatcher reported it
        last = (
            DeliveryAttempt.objects.filter(delivery__webhook_id=webhook.pk)
            .exclude(error_kind=ErrorKind.IN_PROGRESS)
            .order_by("-started_at", "-id")
            .first()
        )
        last_error = ""
        if last is not None:
            last_error = (
                f"\nLast attempt: {last.started_at:%Y-%m-%d %H:%M:%S} UTC, "
                f"{last.status_code or '-'} {last.error_kind or ''} {last.error_message}"
            )
        message = (
            f"Webhook {webhook.name!r} ({webhook.url}) has failed every attempt since "
            f"{webhook.failing_since:%Y-%m-%d %H:%M} UTC. Springhook keeps the changes and "
            f"keeps retrying; you will get another mail when it recovers.{last_error}"
        )
        if _staff_tell(webhook.pk, f"Webhook {webhook.name!r} failing for over an hour", message):
            reported += 1
        else:
            Webhook.objects.filter(pk=webhook.pk, failure_notified_at=now).update(
                failure_notified_at=None
            )
    return reported


def webhook_deliver(*, webhook_id: int, time_budget: float = 10.0) -> int:
    """Send the webhook's due batches one after the other until none is due, one fails, or
    the time budget is spent (so that one busy webhook does not hold a worker forever).
    Returns the number of attempts made."""
    deadline = time.monotonic() + time_budget
    attempts = 0
    while True:
        claim = delivery_claim(webhook_id=webhook_id)
        if claim is None:
            return attempts
        result = delivery_send(claim)
        attempts += 1
        if not delivery_record(claim, result) or time.monotonic() >= deadline:
            return attempts


def webhooks_due(*, now: datetime | None = None) -> list[int]:
    """Active webhooks with an attempt to make now: a retry that is due and not held, or,
    with no open delivery, pending entries that waited the bundle delay or fill a batch."""
    now = now or timezone.now()
    open_deliveries = Delivery.objects.filter(webhook=OuterRef("pk")).exclude(
        state=Delivery.State.DELIVERED
    )
    rows = Webhook.objects.filter(is_active=True).annotate(
        open_due=Exists(
            open_deliveries.filter(
                Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now),
                Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lte=now),
            )
        ),
        has_open=Exists(open_deliveries),
        oldest_pending=Subquery(
            PendingEntry.objects.filter(webhook=OuterRef("pk"))
            .order_by("first_change_at")
            .values("first_change_at")[:1]
        ),
        # Whether a full batch waits, in the same query (one query per tick, not one per
        # webhook): an entry at offset batch_size - 1 exists.
        full_batch=Exists(
            PendingEntry.objects.filter(webhook=OuterRef("pk")).order_by()[
                settings.WEBHOOK_BATCH_SIZE - 1 : settings.WEBHOOK_BATCH_SIZE
            ]
        ),
    )
    due = []
    for webhook in rows.only("id", "bundle_delay"):
        if webhook.open_due:
            due.append(webhook.pk)
        elif not webhook.has_open and webhook.oldest_pending is not None:
            waited = webhook.oldest_pending <= now - timedelta(seconds=bundle_delay(webhook))
            if waited or webhook.full_batch:
                due.append(webhook.pk)
    return due


def dispatch_tick(*, time_budget: float = 5.0) -> list[int]:
    """One tick of the dispatcher: move recorded changes into the webhooks' pending entries
    (for up to `time_budget` seconds), tell staff about webhooks failing for over an hour,
    then return the webhooks with an attempt due."""
    dispatcher_heartbeat_record()
    deadline = time.monotonic() + time_budget
    while changes_collect() and time.monotonic() < deadline:
        pass
    webhooks_failure_notify()
    return webhooks_due()


def webhook_retry_now(*, webhook_id: int) -> bool:
    """Make the webhook's next attempt due now (an operator's "retry now").

    A failing delivery is retried at the next tick instead of at its backoff time; with
    no open delivery, the pending entries are bundled now without waiting for the bundle
    delay. Returns False when there is nothing to send. Sending is left to the dispatcher,
    so the operator's request never waits on the partner.
    """
    now = timezone.now()
    with transaction.atomic():
        webhook = Webhook.objects.select_for_update().filter(pk=webhook_id).first()
        if webhook is None:
            raise DeliveryError(f"webhook {webhook_id} does not exist")
        open_delivery = (
            Delivery.objects.filter(webhook=webhook)
            .exclude(state=Delivery.State.DELIVERED)
            .select_for_update()
            .first()
        )
        if open_delivery is None:
            return _delivery_open(webhook=webhook, now=now, force=True) is not None
        if open_delivery.lease_expires_at is None or open_delivery.lease_expires_at <= now:
            open_delivery.next_attempt_at = now
            open_delivery.save(update_fields=["next_attempt_at"])
        return True


def delivery_test_send(*, webhook_id: int) -> Delivery:
    """Queue a test event for the webhook: a signed `{"changes": []}` batch, due now.

    It is a Delivery like any other (signed, retried, recorded, `is_test` set), so it
    keeps the order rules: it is refused while the webhook has an open batch (a later batch
    never overtakes an earlier one) or is paused (nothing is sent while paused). The
    dispatcher sends it at its next tick.
    """
    now = timezone.now()
    with transaction.atomic():
        webhook = Webhook.objects.select_for_update().filter(pk=webhook_id).first()
        if webhook is None:
            raise DeliveryError(f"webhook {webhook_id} does not exist")
        if not webhook.is_active:
            raise DeliveryError(f"{webhook} is paused: resume it to send a test event")
        if Delivery.objects.filter(webhook=webhook).exclude(
            state=Delivery.State.DELIVERED
        ).exists():
            raise DeliveryError(
                f"{webhook} has a batch waiting to be accepted; a test event can go once "
                "it was (use retry now)"
            )
        delivery = Delivery.objects.create(
            webhook=webhook,
            message_id=message_id_generate(),
            payload=payload_render([]),
            entry_count=0,
            is_test=True,
            next_attempt_at=now,
        )
    logger.info(logfmt("test_event_queued", webhook=webhook_id, delivery=delivery.message_id))
    return delivery


# Rows deleted per transaction by the retention sweep: short transactions, no long locks.
PRUNE_BATCH = 500


def deliveries_prune(
    *, now: datetime | None = None, batch_size: int = PRUNE_BATCH, time_budget: float = 5.0
) -> int:
    """Delete accepted deliveries (and their attempts) accepted more than
    WEBHOOK_RETENTION_DAYS ago, `batch_size` per transaction, for up to `time_budget`
    seconds. Pending and failing deliveries are never removed, however old. Returns the
    number of deliveries deleted; a later run continues where this one stopped."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.WEBHOOK_RETENTION_DAYS)
    deadline = time.monotonic() + time_budget
    deleted = 0
    while True:
        with transaction.atomic():
            ids = list(
                Delivery.objects.filter(state=Delivery.State.DELIVERED, delivered_at__lt=cutoff)
                .order_by("delivered_at")
                .values_list("id", flat=True)[:batch_size]
            )
            if not ids:
                break
            DeliveryAttempt.objects.filter(delivery_id__in=ids).delete()
            Delivery.objects.filter(id__in=ids).delete()
        deleted += len(ids)
        if len(ids) < batch_size or time.monotonic() >= deadline:
            break
    if deleted:
        logger.info(logfmt("deliveries_pruned", deleted=deleted, before=cutoff.isoformat()))
    return deleted


# The heartbeat row is written at most this often, however fast the dispatcher ticks.
HEARTBEAT_INTERVAL = 1.0
_heartbeat_written_at = 0.0


def dispatcher_heartbeat_record(*, force: bool = False) -> None:
    """Record that the dispatcher ticks now (for /healthz), at most once a second per
    process unless `force`: one tiny UPDATE, never a row lock held beyond it."""
    global _heartbeat_written_at
    if not force and time.monotonic() - _heartbeat_written_at < HEARTBEAT_INTERVAL:
        return
    now = timezone.now()
    if not DispatcherHeartbeat.objects.filter(pk=1).update(ticked_at=now):
        DispatcherHeartbeat.objects.get_or_create(pk=1, defaults={"ticked_at": now})
    _heartbeat_written_at = time.monotonic()
