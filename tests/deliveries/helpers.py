import json
from datetime import timedelta

from django.utils import timezone

from changes.services import change_record
from deliveries.engine import Engine
from deliveries.http import SendResult
from deliveries.models import Delivery, PendingEntry, StreamEntry, WebhookCursor
from deliveries.services import (
    action_merge,
    changes_collect,
    delivery_claim,
    delivery_record,
    dispatch_tick,
)
from deliveries.stream import webhooks_backlog


def record(action: str, kind: str, object_id: int, parent_id: int | None = None) -> None:
    change_record(object_kind=kind, object_id=object_id, action=action, parent_id=parent_id)


def collect() -> None:
    while changes_collect():
        pass


def next_batch(webhook) -> list[dict] | None:
    """Collect, claim the webhook's next batch and mark it accepted; its entries, or None."""
    collect()
    claim = delivery_claim(webhook_id=webhook.pk)
    if claim is None:
        return None
    delivery_record(claim, SendResult(200, "", "", "", 0.01))
    return json.loads(claim.body)["changes"]


def keys(entries: list[dict]) -> list[tuple[str, str, int]]:
    return [(entry["action"], entry["object"], entry["id"]) for entry in entries]


def engine_run(*webhook_ids: int) -> int:
    """The delivery engine that production runs (deliveries.engine), over these webhooks
    until none of them has an attempt due; the number of attempts recorded."""
    engine = Engine(sends_in_flight=len(webhook_ids), webhook_ids=list(webhook_ids),
                    close_connection=False)
    return engine.run(until_idle=True, time_budget=10.0)


def deliver(webhook) -> int:
    """One dispatcher tick, then the webhook's due attempts; the number of attempts made."""
    dispatch_tick()
    return engine_run(webhook.pk)


def make_retry_due(webhook) -> None:
    """Skip the backoff: the webhook's open delivery is due now."""
    Delivery.objects.filter(webhook=webhook).open().update(
        next_attempt_at=timezone.now() - timedelta(seconds=1)
    )


def waiting(webhook) -> dict[tuple[str, int], tuple[str, int | None]]:
    """What waits for the webhook, per object: (action, parent id), its stream rows after
    its cursor and its own pending entries merged in seq order, as a batch merges them."""
    cursor = WebhookCursor.objects.filter(webhook=webhook).first()
    rows = [
        (entry.seq, entry.object_kind, entry.object_id, entry.action, entry.parent_id)
        for entry in (StreamEntry.objects.filter(seq__gt=cursor.seq) if cursor else [])
    ] + [
        (entry.seq, entry.object_kind, entry.object_id, entry.action, entry.parent_id)
        for entry in PendingEntry.objects.filter(webhook=webhook)
    ]
    merged: dict[tuple[str, int], tuple[str, int | None]] = {}
    for _, kind, object_id, action, parent_id in sorted(rows):
        earlier = merged.get((kind, object_id))
        if earlier is not None:
            action = action_merge(earlier[0], action)
            parent_id = parent_id if parent_id is not None else earlier[1]
        merged[(kind, object_id)] = (action, parent_id)
    return merged


def backdate(seconds: float) -> None:
    """Every waiting change was first made `seconds` ago."""
    at = timezone.now() - timedelta(seconds=seconds)
    StreamEntry.objects.update(first_change_at=at)
    PendingEntry.objects.update(first_change_at=at)


def pass_everything() -> None:
    """As if every webhook had received everything collected so far."""
    head = StreamEntry.objects.order_by("-seq").values_list("seq", flat=True).first()
    if head is not None:
        WebhookCursor.objects.update(seq=head)
    PendingEntry.objects.all().delete()


def nothing_waits() -> bool:
    """No webhook has anything collected and not yet put into a delivery."""
    return not webhooks_backlog()
