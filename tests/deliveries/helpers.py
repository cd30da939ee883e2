import json
from datetime import timedelta

from django.utils import timezone

from changes.services import change_record
from deliveries.http import SendResult
from deliveries.models import Delivery
from deliveries.services import (
    changes_collect,
    delivery_claim,
    delivery_record,
    dispatch_tick,
    webhook_deliver,
)


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


def deliver(webhook) -> int:
    """One dispatcher tick, then the webhook's due attempts; the number of attempts made."""
    dispatch_tick()
    return webhook_deliver(webhook_id=webhook.pk)


def make_retry_due(webhook) -> None:
    """Skip the backoff: the webhook's open delivery is due now."""
    Delivery.objects.filter(webhook=webhook).open().update(
        next_attempt_at=timezone.now() - timedelta(seconds=1)
    )
