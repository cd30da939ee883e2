import pytest
from django.urls import reverse

from deliveries.models import Delivery
from deliveries.services import dispatch_tick
from tests.deliveries.helpers import engine_run, record
from tests.support.partner import status
from webhooks.models import Webhook


@pytest.fixture
def history(db, fast_delivery, partner):
    webhook = Webhook.objects.create(name="Partner A", url=partner.url)
    partner.then(status(500))
    record("update", "training", 7, 1)
    dispatch_tick()
    engine_run(webhook.pk)
    return webhook


def test_the_delivery_list_shows_state_entries_attempts_and_status(admin_client, history):
    response = admin_client.get(reverse("admin:deliveries_delivery_changelist"))
    assert response.status_code == 200
    delivery = Delivery.objects.get()
    page = response.content.decode()
    assert delivery.message_id in page
    assert "failing" in page and "500" in page and "Partner A" in page


def test_the_delivery_list_filters_by_state_and_webhook(admin_client, history):
    # The parameters the list's filters make (adminpolicy accepts no other).
    url = reverse("admin:deliveries_delivery_changelist")
    assert Delivery.objects.get().message_id in admin_client.get(
        url, {"state__exact": "failing", "webhook__id__exact": history.pk}
    ).content.decode()
    assert Delivery.objects.get().message_id not in admin_client.get(
        url, {"state__exact": "delivered"}
    ).content.decode()


def test_the_delivery_detail_shows_payload_and_attempts(admin_client, history):
    delivery = Delivery.objects.get()
    response = admin_client.get(reverse("admin:deliveries_delivery_change", args=[delivery.pk]))
    page = response.content.decode()
    assert response.status_code == 200
    assert "&quot;training&quot;" in page or '"training"' in page
    assert "http_status" in page


def test_the_webhook_list_shows_pending_changes_and_health(admin_client, history):
    record("update", "training", 8, 1)
    dispatch_tick()
    page = admin_client.get(reverse("admin:webhooks_webhook_changelist")).content.decode()
    assert "failing since" in page
    assert '<td class="field-pending_changes">1</td>' in page, "one change waits behind the batch"
    assert history.secret not in page, "secrets never appear in the list"
