"""What operators and partners ask for: retry a webhook now, send a test event, send the
whole catalogue (a resync)."""

import logging
import math
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from changes.services import catalogue_record
from core.logfmt import logfmt
from deliveries.models import Delivery
from deliveries.payload import payload_render
from deliveries.services.claim import delivery_open, message_id_generate
from webhooks.models import Webhook

logger = logging.getLogger("springhook.deliveries")


class DeliveryError(Exception):
    """An operator asked for something the delivery's state does not allow."""


class ResyncTooSoon(DeliveryError):
    """A resync was asked for sooner than the minimum interval after the last one."""

    def __init__(self, message: str, *, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


def webhook_retry_now(*, webhook_id: int) -> bool:
    """Make the webhook's next attempt due now (an operator's "retry now").

    A failing delivery is retried at the next tick instead of at its backoff time; with
    no open delivery, the pending entries are bundled now without waiting for the bundle
    delay. Returns False when there is nothing to send. Sending is left to the dispatcher,
    so the operator's request never waits on the partner.
    """
    now = timezone.now()
    with transaction.atomic():
        webhook = Webhook.objects.select_for_update(no_key=True).filter(pk=webhook_id).first()
        if webhook is None:
            raise DeliveryError(f"webhook {webhook_id} does not exist")
        open_delivery = (
            Delivery.objects.filter(webhook=webhook)
            .exclude(state=Delivery.State.DELIVERED)
            .select_for_update(no_key=True)
            .first()
        )
        if open_delivery is None:
            return delivery_open(webhook=webhook, now=now, force=True) is not None
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
        webhook = Webhook.objects.select_for_update(no_key=True).filter(pk=webhook_id).first()
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


def webhook_resync(*, webhook_id: int, min_interval: timedelta | None = None) -> int:
    """Queue the whole catalogue for this webhook alone: an `import` of every institute
    (of every institute in its scope, for a webhook with one).

    The entries travel the normal path (changes.services.catalogue_record): they coalesce
    with what already waits for the webhook, go out after what was recorded before them,
    and no other webhook receives anything. A paused webhook collects them for later.
    With `min_interval` (a partner's request) a resync within that time of the last one
    is refused with ResyncTooSoon, which says how many seconds to wait; staff are not
    limited. Returns the number of institutes queued.
    """
    with transaction.atomic():
        webhook = Webhook.objects.select_for_update(no_key=True).filter(pk=webhook_id).first()
        if webhook is None:
            raise DeliveryError(f"webhook {webhook_id} does not exist")
        now = timezone.now()
        if min_interval is not None and webhook.last_resync_at is not None:
            allowed_at = webhook.last_resync_at + min_interval
            if allowed_at > now:
                wait = max(1, math.ceil((allowed_at - now).total_seconds()))
                raise ResyncTooSoon(
                    f"The whole catalogue was queued for {webhook} at "
                    f"{webhook.last_resync_at:%Y-%m-%d %H:%M:%S} UTC; ask again in {wait} s.",
                    retry_after=wait,
                )
        webhook.last_resync_at = now
        webhook.save(update_fields=["last_resync_at"])
        count = catalogue_record(webhook_id=webhook.pk, institute_ids=webhook.scope_institutes)
    logger.info(logfmt("webhook_resync_queued", webhook=webhook_id, institutes=count))
    return count
