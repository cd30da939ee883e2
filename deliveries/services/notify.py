"""Telling staff: mail to the site admins when a webhook fails for long, recovers, or
answers 410 Gone."""

import logging
from datetime import datetime, timedelta

from django.core.mail import mail_admins
from django.db import transaction
from django.utils import timezone

from deliveries.models import DeliveryAttempt
from webhooks.models import Webhook

logger = logging.getLogger("springhook.deliveries")
ErrorKind = DeliveryAttempt.ErrorKind
# A webhook failing for longer than this is reported to the site admins.
FAILURE_NOTIFY_AFTER = timedelta(hours=1)


def staff_tell_on_commit(webhook: Webhook, subject: str, message: str) -> None:
    # After the commit: a rolled-back record must not have told anyone anything.
    webhook_id, full_subject = webhook.pk, f"Webhook {webhook.name!r} {subject}"
    transaction.on_commit(lambda: staff_tell(webhook_id, full_subject, message))


def staff_tell(webhook_id: int, subject: str, message: str) -> bool:
    try:
        mail_admins(subject, message, fail_silently=False)
    except Exception:
        # The mail server is down: the mark in the admin stays, the delivery goes on.
        logger.exception("webhook=%s could not mail the admins: %s", webhook_id, subject)
        return False
    return True


def recovered_message(webhook: Webhook, now: datetime) -> str:
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
        if staff_tell(webhook.pk, f"Webhook {webhook.name!r} failing for over an hour", message):
            reported += 1
        else:
            Webhook.objects.filter(pk=webhook.pk, failure_notified_at=now).update(
                failure_notified_at=None
            )
    return reported
