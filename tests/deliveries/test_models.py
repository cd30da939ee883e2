"""What "an open delivery" means, defined once in deliveries.models."""

from django.db.models import Q

from deliveries.models import OPEN_DELIVERY, Delivery
from webhooks.models import Webhook


def test_open_means_not_accepted_yet(db):
    assert ~Q(state=Delivery.State.DELIVERED) == OPEN_DELIVERY
    webhooks = [
        Webhook.objects.create(name=f"Partner {index}", url=f"https://p{index}.example/")
        for index in range(3)
    ]
    for webhook, state in zip(webhooks, Delivery.State.values, strict=True):
        Delivery.objects.create(
            webhook=webhook, message_id=f"msg_{state}", payload='{"changes":[]}',
            entry_count=0, state=state,
        )
    assert sorted(Delivery.objects.open().values_list("state", flat=True)) == [
        "failing", "pending"
    ]
