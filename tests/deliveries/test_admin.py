from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

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


def test_the_webhook_list_shows_what_waits_and_the_lag_without_a_query_per_row(
    admin_client, history, partner
):
    record("update", "training", 8, 1)
    dispatch_tick()
    # The open (failing) batch holds the oldest entry not accepted: the lag counts from it.
    Delivery.objects.filter(webhook=history).update(
        created_at=timezone.now() - timedelta(hours=2, minutes=5)
    )
    url = reverse("admin:webhooks_webhook_changelist")
    page = admin_client.get(url).content.decode()
    assert '<td class="field-waiting">2</td>' in page, "one pending, one in the open batch"
    assert '<td class="field-lag">2\xa0hours, 5\xa0minutes</td>' in page
    with CaptureQueriesContext(connection) as few:
        admin_client.get(url)
    for n in range(3):
        Webhook.objects.create(name=f"More {n}", url=partner.url_for(f"/{n}"))
    record("update", "training", 9, 1)
    dispatch_tick()
    with CaptureQueriesContext(connection) as many:
        page = admin_client.get(url).content.decode()
    assert page.count('<td class="field-lag">') == 4
    assert len(many) == len(few)
