"""What operators and partners ask for: retry a webhook now, send a test event, send the
whole catalogue (a resync), send again what was sent since a time (a replay); and what
happens to a waiting test event when its webhook's URL changes.

A partner's resyncs, replays and test events cost us (the whole catalogue; a delivery kept
for 30 days), so each is limited: once per interval per webhook, and once per interval per
API key whichever of its webhooks it names, so that a key with many webhooks gets no more.
Staff are not limited, and what they ask for starts no partner's interval.
"""

import logging
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from changes.kinds import OBJECT_KINDS
from changes.services import ChangeEntry, catalogue_record, changes_record
from core.logfmt import logfmt
from deliveries.models import Delivery
from deliveries.payload import payload_render
from deliveries.selectors import delivery_changes, webhook_batches_since
from deliveries.services.claim import delivery_open, message_id_generate
from deliveries.services.errors import DeliveryError, ResyncTooSoon, TestTooSoon
from deliveries.services.limits import partner_limit_take
from webhooks.models import Webhook

logger = logging.getLogger("springhook.deliveries")


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
            Delivery.objects.open().filter(webhook=webhook).select_for_update(no_key=True).first()
        )
        if open_delivery is None:
            return delivery_open(webhook=webhook, now=now, force=True) is not None
        if not open_delivery.is_held(now):
            open_delivery.make_due(now=now)
            open_delivery.save(update_fields=Delivery.MAKE_DUE_FIELDS)
        return True


def delivery_test_send(
    *, webhook_id: int, min_interval: timedelta | None = None, api_key_id: int | None = None
) -> Delivery:
    """Queue a test event for the webhook: a signed `{"changes": []}` batch, due now.

    It is a Delivery like any other (signed, retried, recorded, `is_test` set), so it
    keeps the order rules: it is refused while the webhook has an open batch (a later batch
    never overtakes an earlier one) or is paused (nothing is sent while paused). The
    dispatcher sends it at its next tick. With `min_interval` (a partner's request) a test
    within that time of the webhook's last one, or of the last one `api_key_id` asked for,
    is refused with TestTooSoon; staff are not limited, and their tests do not count. A
    test event still waiting when the webhook's URL changes is dropped
    (delivery_tests_drop): it never goes to an address it was not asked for.
    """
    now = timezone.now()
    with transaction.atomic():
        webhook = Webhook.objects.select_for_update(no_key=True).filter(pk=webhook_id).first()
        if webhook is None:
            raise DeliveryError(f"webhook {webhook_id} does not exist")
        if not webhook.is_active:
            raise DeliveryError(f"{webhook} is paused: resume it to send a test event")
        if Delivery.objects.open().filter(webhook=webhook).exists():
            raise DeliveryError(
                f"{webhook} has a batch waiting to be accepted; a test event can go once "
                "it was (use retry now)"
            )
        if min_interval is not None:
            partner_limit_take(
                webhook=webhook, api_key_id=api_key_id, field="last_test_at",
                min_interval=min_interval, now=now, what="a test event",
                too_soon=TestTooSoon,
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


def test_interval_take(*, webhook_id: int, api_key_id: int | None,
                       min_interval: timedelta) -> None:
    """Count a partner's test POST that is not a delivery (the one that proves a new URL
    before the webhook moves to it) against the test events' limit, per webhook and per
    key: TestTooSoon within `min_interval` of the last one."""
    with transaction.atomic():
        webhook = Webhook.objects.select_for_update(no_key=True).filter(pk=webhook_id).first()
        if webhook is None:
            raise DeliveryError(f"webhook {webhook_id} does not exist")
        partner_limit_take(
            webhook=webhook, api_key_id=api_key_id, field="last_test_at",
            min_interval=min_interval, now=timezone.now(), what="a test event",
            too_soon=TestTooSoon,
        )


def delivery_tests_drop(*, webhook_id: int, reason: str) -> list[str]:
    """Drop the webhook's test events that wait to be accepted (pending or failing, also
    one in flight, whose answer is then not recorded): called when the webhook's URL
    changes, so that a test goes to the URL it was asked for or nowhere, and its answer
    is never one from another address. Logs each with `reason`; returns their message
    ids."""
    with transaction.atomic():
        Webhook.objects.select_for_update(no_key=True).filter(pk=webhook_id).first()
        waiting = list(
            Delivery.objects.open()
            .filter(webhook_id=webhook_id, is_test=True)
            .select_for_update(no_key=True)
            .values_list("pk", "message_id")
        )
        Delivery.objects.filter(pk__in=[pk for pk, _ in waiting]).delete()
    for _, message_id in waiting:
        logger.info(logfmt("test_event_dropped", webhook=webhook_id, delivery=message_id,
                           reason=reason))
    return [message_id for _, message_id in waiting]


def _resync_lock_and_limit(
    *, webhook_id: int, min_interval: timedelta | None, api_key_id: int | None
) -> Webhook:
    """The webhook, locked, for a resync or a replay (they share one limit): with
    `min_interval`, a partner's request, ResyncTooSoon within it of the webhook's or the
    key's last one. Inside the caller's transaction."""
    webhook = Webhook.objects.select_for_update(no_key=True).filter(pk=webhook_id).first()
    if webhook is None:
        raise DeliveryError(f"webhook {webhook_id} does not exist")
    if min_interval is not None:
        partner_limit_take(
            webhook=webhook, api_key_id=api_key_id, field="last_resync_at",
            min_interval=min_interval, now=timezone.now(), what="a resync or replay",
            too_soon=ResyncTooSoon,
        )
    return webhook


def webhook_resync(
    *, webhook_id: int, min_interval: timedelta | None = None, api_key_id: int | None = None
) -> int:
    """Queue the whole catalogue for this webhook alone: an `import` of every institute
    (of every institute in its scope, for a webhook with one).

    The entries travel the normal path (changes.services.catalogue_record): they coalesce
    with what already waits for the webhook, go out after what was recorded before them,
    and no other webhook receives anything. A paused webhook collects them for later.
    With `min_interval` (a partner's request) a resync within that time of the webhook's
    last resync or replay, or of the last one `api_key_id` asked for (whichever webhook),
    is refused with ResyncTooSoon, which says how many seconds to wait; staff are not
    limited, and their resyncs do not count toward it. Returns the number of institutes
    queued.
    """
    with transaction.atomic():
        webhook = _resync_lock_and_limit(
            webhook_id=webhook_id, min_interval=min_interval, api_key_id=api_key_id
        )
        count = catalogue_record(webhook_id=webhook.pk, institute_ids=webhook.scope_institutes)
    logger.info(logfmt("webhook_resync_queued", webhook=webhook_id, institutes=count))
    return count


def webhook_replay(
    *, webhook_id: int, since: datetime, min_interval: timedelta | None = None,
    api_key_id: int | None = None,
) -> tuple[int, int]:
    """Queue again, for this webhook alone, every entry of its batches made since `since`.

    The entries are recorded as changes for the webhook (like a resync), in the order
    they were sent, so the collector coalesces them with each other and with what waits
    for the webhook, and they go out through its ordered channel after what was recorded
    before. The batches are read from what retention kept. A resync and a replay share
    one rate limit (`min_interval` and `api_key_id`, a partner's request; staff are not
    limited). Returns (batches read, entries queued).
    """
    batches = entries_queued = 0

    def entries():
        nonlocal batches, entries_queued
        for delivery in webhook_batches_since(webhook_id=webhook_id, since=since):
            batches += 1
            for entry in delivery_changes(delivery):
                # A kind no longer known could not be rendered again: it is left out.
                if entry.get("object") not in OBJECT_KINDS:
                    continue
                entries_queued += 1
                yield ChangeEntry(entry["object"], entry["id"], entry["action"])

    with transaction.atomic():
        webhook = _resync_lock_and_limit(
            webhook_id=webhook_id, min_interval=min_interval, api_key_id=api_key_id
        )
        changes_record(entries=entries(), webhook_id=webhook.pk)
    logger.info(logfmt("webhook_replay_queued", webhook=webhook_id, batches=batches,
                       entries=entries_queued, since=since.isoformat()))
    return batches, entries_queued
