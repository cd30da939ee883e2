"""The admin reads like a product: durations in ms and s, attempts named by their outcome,
one summary message per list action, links and redirects within their own admin site."""

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.messages import get_messages
from django.urls import reverse

from deliveries.models import Delivery, DeliveryAttempt
from deliveries.services import dispatch_tick
from deliveries.templatetags.delivery_format import duration
from tests.deliveries.helpers import engine_run, record
from tests.support.partner import status
from webhooks.models import Webhook


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "–"), (0.0004, "0.4 ms"), (0.00994, "9.9 ms"), (0.010225269000329718, "10 ms"),
        (0.2499, "250 ms"), (0.9996, "1.0 s"), (1.234, "1.2 s"), (15.0, "15.0 s"),
    ],
)
def test_durations_read_as_people_read_them(seconds, text):
    assert duration(seconds) == text


@pytest.fixture
def webhooks(db, fast_delivery, partner) -> list[Webhook]:
    return [
        Webhook.objects.create(name=f"Partner {letter}", url=partner.url + f"/{letter}")
        for letter in "ABC"
    ]


def summary(response) -> list[tuple[str, str]]:
    return [(message.level_tag, str(message)) for message in get_messages(response.wsgi_request)]


def test_an_attempt_row_shows_its_outcome_and_a_readable_duration(admin_client, webhooks, partner):
    partner.then(status(500))
    record("update", "training", 7, 1)
    dispatch_tick()
    engine_run(webhooks[0].pk)
    attempt = DeliveryAttempt.objects.get()
    DeliveryAttempt.objects.filter(pk=attempt.pk).update(duration=0.010225269000329718)
    page = admin_client.get(
        reverse("admin:deliveries_delivery_change", args=[attempt.delivery_id])
    ).content.decode()
    assert "Attempt 1: HTTP 500" in page
    assert f"of {attempt.delivery_id}" not in page
    assert "10 ms" in page and "0.0102" not in page


def test_an_attempts_name_says_what_happened(webhooks):
    delivery = Delivery.objects.create(
        webhook=webhooks[0], message_id="msg_1", payload='{"changes":[]}', entry_count=0
    )

    def attempt(**fields) -> str:
        return str(DeliveryAttempt(delivery=delivery, number=2, **fields))

    assert attempt(accepted=True, status_code=204) == "Attempt 2: accepted (HTTP 204)"
    assert attempt(status_code=503, error_kind="http_status") == "Attempt 2: HTTP 503"
    assert attempt(error_kind="timeout") == "Attempt 2: timeout"
    assert attempt(error_kind="lease_expired") == "Attempt 2: worker lost (lease expired)"


def test_a_list_action_on_many_webhooks_sends_one_summary(admin_client, webhooks):
    response = admin_client.post(
        reverse("admin:webhooks_webhook_changelist"),
        {"action": "pause", "_selected_action": [webhook.pk for webhook in webhooks]},
    )
    assert summary(response) == [
        ("success", "3 webhooks: Paused: changes keep collecting and go out when resumed.")
    ]
    assert not Webhook.objects.filter(is_active=True).exists()
    assert LogEntry.objects.filter(change_message__startswith="Pause: Paused").count() == 3


def test_refusals_are_summed_up_in_one_warning_naming_each(admin_client, webhooks):
    Webhook.objects.filter(pk__in=[webhooks[0].pk, webhooks[1].pk]).update(is_active=False)
    response = admin_client.post(
        reverse("admin:webhooks_webhook_changelist"),
        {"action": "send_test_event", "_selected_action": [webhook.pk for webhook in webhooks]},
    )
    (queued, refused) = summary(response)
    assert queued == ("success", "Partner C: Test event queued.")
    assert refused[0] == "warning"
    assert refused[1].startswith("Refused for 2 webhooks: Partner A: ")
    assert "Partner B: " in refused[1]
    assert Delivery.objects.get(is_test=True).webhook == webhooks[2]
    entry = LogEntry.objects.get(object_id=str(webhooks[2].pk))
    assert entry.change_message == "Send test event: Test event queued."


@pytest.mark.parametrize(
    ("next_url", "followed"),
    [
        ("/admin/webhooks/webhook/?is_active__exact=1", True),
        ("https://evil.example/admin/", False),
        ("//evil.example/admin/", False),
        ("javascript:alert(1)", False),
        ("", False),
    ],
)
def test_a_button_returns_to_next_only_within_the_site(admin_client, webhooks, next_url,
                                                       followed):
    webhook = webhooks[0]
    response = admin_client.post(
        reverse("admin:webhooks_webhook_operate", args=[webhook.pk, "pause"]),
        {"next": next_url},
    )
    assert response.status_code == 302
    change_page = reverse("admin:webhooks_webhook_change", args=[webhook.pk])
    assert response["Location"] == (next_url if followed else change_page)


@pytest.mark.urls("tests.support.second_admin_urls")
def test_a_second_admin_site_links_and_redirects_within_itself(admin_client, webhooks):
    webhook = webhooks[0]
    dashboard = reverse("admin:webhooks_webhook_dashboard", current_app="ops")
    assert dashboard == "/ops/webhooks/webhook/health/"
    page = admin_client.get(dashboard).content.decode()
    assert f'href="/ops/webhooks/webhook/{webhook.pk}/health/"' in page
    assert 'action="/ops/deliveries/delivery/"' in page
    assert 'href="/admin/webhooks' not in page
    health = admin_client.get(f"/ops/webhooks/webhook/{webhook.pk}/health/").content.decode()
    assert f'action="/ops/webhooks/webhook/{webhook.pk}/operate/pause/"' in health
    response = admin_client.post(f"/ops/webhooks/webhook/{webhook.pk}/operate/pause/")
    assert response["Location"] == f"/ops/webhooks/webhook/{webhook.pk}/change/"
