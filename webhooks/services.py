"""Writes to webhooks that operators and the dispatcher trigger: pause, resume, rotate."""

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from core.logfmt import logfmt
from webhooks.models import Webhook, WebhookAction
from webhooks.secrets import secret_generate

logger = logging.getLogger("springhook.webhooks")

# How long the secret before a rotation keeps signing next to the new one.
SECRET_OVERLAP = timedelta(hours=24)


class WebhookError(Exception):
    """The webhook does not exist or its state does not allow the operation."""


def _locked(webhook_id: int) -> Webhook:
    # No key changes here: FOR NO KEY UPDATE, the lock the delivery engine takes, so that
    # foreign-key checks (a change collected for this webhook) never wait for it.
    webhook = Webhook.objects.select_for_update(no_key=True).filter(pk=webhook_id).first()
    if webhook is None:
        raise WebhookError(f"webhook {webhook_id} does not exist")
    return webhook


# What partners read when staff paused their webhook: staff names are not for partners.
STAFF_PAUSE_REASON = "Paused by staff."


def webhook_pause(
    *, webhook_id: int, reason: str = STAFF_PAUSE_REASON, paused_by: str = ""
) -> Webhook:
    """Stop sending. Changes keep collecting (coalesced) and go out when resumed.

    `reason` is what the partner reads (never a person's name); `paused_by` names the staff
    member who paused it, which only staff see (Webhook.paused_reason_for_staff).
    """
    with transaction.atomic():
        webhook = _locked(webhook_id)
        webhook.is_active = False
        webhook.paused_reason = reason[:255]
        webhook.paused_by = paused_by[:150]
        webhook.save(update_fields=["is_active", "paused_reason", "paused_by", "updated_at"])
    logger.info(logfmt("webhook_paused", webhook=webhook_id, reason=webhook.paused_reason,
                       by=webhook.paused_by))
    return webhook


def webhook_resume(*, webhook_id: int) -> Webhook:
    """Send again, starting with the backlog collected while paused."""
    with transaction.atomic():
        webhook = _locked(webhook_id)
        webhook.is_active = True
        webhook.paused_reason = webhook.paused_by = ""
        webhook.save(update_fields=["is_active", "paused_reason", "paused_by", "updated_at"])
    logger.info(logfmt("webhook_resumed", webhook=webhook_id))
    return webhook


def webhook_secret_rotate(*, webhook_id: int, overlap: timedelta = SECRET_OVERLAP) -> Webhook:
    """Give the webhook a new secret; the old one keeps signing too for `overlap`.

    While both are valid every request carries both signatures, so the partner can switch
    its verifier at any moment in the window without rejecting a request. Rotating again
    within the window drops the oldest secret at once.
    """
    with transaction.atomic():
        webhook = _locked(webhook_id)
        webhook.previous_secret = webhook.secret
        webhook.previous_secret_expires_at = timezone.now() + overlap
        webhook.secret = secret_generate()
        webhook.save(
            update_fields=[
                "secret", "previous_secret", "previous_secret_expires_at", "updated_at"
            ]
        )
    # That it happened and until when the old one signs; never the secrets themselves.
    logger.info(
        logfmt(
            "webhook_secret_rotated", webhook=webhook_id,
            previous_valid_until=webhook.previous_secret_expires_at.isoformat(),
        )
    )
    return webhook


@dataclass(frozen=True)
class Actor:
    """Who asks for an action, as staff will read it: a staff user in the admin, or a
    partner's API key through the portal or the API."""

    channel: str  # WebhookAction.Channel
    label: str
    staff_user_id: int | None = None
    api_key_id: int | None = None


def webhook_action_record(*, webhook_id: int, actor: Actor, action: str,
                          outcome: str) -> WebhookAction:
    """Record for staff that `actor` did `action` to the webhook, and what it did (the words
    the actor was told). Called after the action succeeded, by whatever ran it; the record
    never holds a secret."""
    return WebhookAction.objects.create(
        webhook_id=webhook_id, channel=actor.channel, action=action, outcome=outcome[:2000],
        actor=actor.label[:255], staff_user_id=actor.staff_user_id,
        api_key_id=actor.api_key_id,
    )
