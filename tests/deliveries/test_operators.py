"""The operators group and the admin actions, through the admin with a real operator user:
what an operator can do, and what they cannot (change URLs, read or rotate secrets)."""

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Group, User
from django.urls import reverse

from deliveries.models import Delivery
from deliveries.services import dispatch_tick
from tests.deliveries.helpers import engine_run, record
from tests.support.partner import status
from webhooks.models import Webhook


@pytest.fixture
def operator(db) -> User:
    user = User.objects.create_user("olivia", password="operate-123", is_staff=True)
    user.groups.add(Group.objects.get(name="operators"))
    return user


@pytest.fixture
def operator_client(client, operator):
    client.force_login(operator)
    return client


@pytest.fixture
def webhook(db, fast_delivery, partner) -> Webhook:
    return Webhook.objects.create(name="Partner A", url=partner.url)


def operate_url(webhook, operation):
    return reverse("admin:webhooks_webhook_operate", args=[webhook.pk, operation])


def test_the_operators_group_is_made_by_migration_with_exactly_its_permissions(db):
    codenames = set(Group.objects.get(name="operators").permissions.values_list(
        "content_type__app_label", "codename"))
    assert ("webhooks", "operate_webhook") in codenames
    assert ("webhooks", "view_webhook") in codenames
    assert ("deliveries", "view_delivery") in codenames
    assert ("deliveries", "view_deliveryattempt") in codenames
    assert ("webhooks", "change_webhook") not in codenames
    assert ("webhooks", "view_webhook_secret") not in codenames
    assert ("webhooks", "add_webhook") not in codenames


def test_an_operator_sees_webhooks_deliveries_and_the_dashboard(operator_client, webhook):
    record("update", "training", 7, 1)
    dispatch_tick()
    engine_run(webhook.pk)
    delivery = Delivery.objects.get()
    operator_client.post(operate_url(webhook, "pause"))
    for url in [
        reverse("admin:deliveries_delivery_change", args=[delivery.pk]),
        reverse("admin:webhooks_webhook_history", args=[webhook.pk]),
        reverse("admin:deliveries_delivery_changelist") + "?q=training+7",
        "/metrics",
        reverse("admin:index"),
        reverse("admin:webhooks_webhook_changelist"),
        reverse("admin:webhooks_webhook_change", args=[webhook.pk]),
        reverse("admin:webhooks_webhook_dashboard"),
        reverse("admin:webhooks_webhook_health", args=[webhook.pk]),
        reverse("admin:deliveries_delivery_changelist"),
    ]:
        response = operator_client.get(url)
        assert response.status_code == 200, url
        assert webhook.secret not in response.content.decode(), url


def test_an_operator_cannot_change_a_webhook_url(operator_client, webhook):
    url = reverse("admin:webhooks_webhook_change", args=[webhook.pk])
    page = operator_client.get(url).content.decode()
    assert 'name="url"' not in page, "the form is read-only"
    response = operator_client.post(url, {"name": "X", "url": "http://evil.example/"})
    assert response.status_code == 403
    webhook.refresh_from_db()
    assert webhook.url.startswith("http://127.0.0.1")
    assert operator_client.get(reverse("admin:webhooks_webhook_add")).status_code == 403


def test_an_operator_never_sees_the_secret_nor_may_rotate_it(operator_client, webhook):
    page = operator_client.get(reverse("admin:webhooks_webhook_change", args=[webhook.pk]))
    assert webhook.secret not in page.content.decode()
    assert "Rotate secret" not in page.content.decode()
    changelist = operator_client.get(reverse("admin:webhooks_webhook_changelist")).content
    assert b"rotate_secret" not in changelist, "the action is not offered"
    assert b"retry_now" in changelist and b"pause" in changelist
    old_secret = webhook.secret
    assert operator_client.post(operate_url(webhook, "rotate-secret")).status_code == 403
    response = operator_client.post(
        reverse("admin:webhooks_webhook_changelist"),
        {"action": "rotate_secret", "_selected_action": [webhook.pk]},
    )
    webhook.refresh_from_db()
    assert webhook.secret == old_secret
    assert old_secret not in response.content.decode()


def test_a_staff_user_without_operate_permission_gets_403(client, webhook):
    user = User.objects.create_user("viewer", password="x", is_staff=True)
    from django.contrib.auth.models import Permission

    user.user_permissions.add(Permission.objects.get(codename="view_webhook"))
    client.force_login(user)
    assert client.post(operate_url(webhook, "pause")).status_code == 403
    assert client.get(reverse("admin:webhooks_webhook_dashboard")).status_code == 403
    webhook.refresh_from_db()
    assert webhook.is_active


def test_operator_pauses_and_resumes_with_a_message_and_a_log_entry(operator_client, webhook):
    response = operator_client.post(operate_url(webhook, "pause"), follow=True)
    webhook.refresh_from_db()
    assert not webhook.is_active and webhook.paused_by == "olivia"
    assert "Paused" in response.content.decode()
    response = operator_client.post(operate_url(webhook, "resume"), follow=True)
    webhook.refresh_from_db()
    assert webhook.is_active
    assert "Resumed" in response.content.decode()
    messages = list(LogEntry.objects.filter(object_id=str(webhook.pk)).values_list(
        "change_message", flat=True))
    assert any("Pause" in message for message in messages)
    assert any("Resume" in message for message in messages)


def test_partners_read_paused_by_staff_and_staff_read_who(operator_client, webhook):
    from django.test import Client

    from apikeys.services import api_key_create

    operator_client.post(operate_url(webhook, "pause"))
    _, raw_key = api_key_create(name="Partner", webhook_ids=[webhook.pk])
    partner = Client(headers={"X-API-Key": raw_key})
    for path in ("/webhooks", f"/webhooks/{webhook.pk}"):
        body = partner.get(path).content.decode()
        assert '"paused_reason": "Paused by staff."' in body, path
        assert "olivia" not in body, path
    for url in [
        reverse("admin:webhooks_webhook_changelist"),
        reverse("admin:webhooks_webhook_dashboard"),
        reverse("admin:webhooks_webhook_health", args=[webhook.pk]),
    ]:
        assert "Paused by staff (olivia)." in operator_client.get(url).content.decode(), url
    operator_client.post(operate_url(webhook, "resume"))
    webhook.refresh_from_db()
    assert (webhook.paused_reason, webhook.paused_by) == ("", "")


def test_the_migration_moves_staff_names_out_of_what_partners_read(db):
    from importlib import import_module

    from django.apps import apps

    migration = import_module("webhooks.migrations.0004_webhook_paused_by")
    stored = {
        "Paused by olivia.": ("Paused by staff.", "olivia"),
        "Paused by j.doe@example.org.": ("Paused by staff.", "j.doe@example.org"),
        "Paused by an operator.": ("Paused by an operator.", ""),
        "Paused by staff.": ("Paused by staff.", ""),
        "The partner answered 410 Gone.": ("The partner answered 410 Gone.", ""),
        "": ("", ""),
    }
    ids = {
        Webhook.objects.create(
            name="P", url="http://127.0.0.1:9/", is_active=False, paused_reason=reason
        ).pk: expected
        for reason, expected in stored.items()
    }
    migration.staff_names_move_out_of_paused_reason(apps, None)
    for webhook_id, expected in ids.items():
        webhook = Webhook.objects.get(pk=webhook_id)
        assert (webhook.paused_reason, webhook.paused_by) == expected


def test_the_buttons_need_post(operator_client, webhook):
    assert operator_client.get(operate_url(webhook, "pause")).status_code == 405
    webhook.refresh_from_db()
    assert webhook.is_active


def test_the_buttons_need_the_csrf_token(operator, webhook):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)
    assert client.post(operate_url(webhook, "pause")).status_code == 403
    webhook.refresh_from_db()
    assert webhook.is_active


def test_retry_now_makes_a_failing_batch_due_and_it_is_sent(operator_client, webhook, partner):
    partner.then(status(500))
    record("update", "training", 7, 1)
    dispatch_tick()
    engine_run(webhook.pk)
    delivery = Delivery.objects.get()
    assert delivery.state == "failing" and webhook.pk not in dispatch_tick()
    response = operator_client.post(
        reverse("admin:webhooks_webhook_changelist"),
        {"action": "retry_now", "_selected_action": [webhook.pk]}, follow=True,
    )
    assert "Retry queued" in response.content.decode()
    assert webhook.pk in dispatch_tick()
    engine_run(webhook.pk)
    delivery.refresh_from_db()
    assert delivery.state == "delivered" and len(partner.received) == 2
    assert partner.received[0].headers["webhook-id"] == partner.received[1].headers["webhook-id"]
    assert LogEntry.objects.filter(object_id=str(webhook.pk), change_message__contains="Retry")


def test_send_test_event_posts_a_signed_empty_batch_recorded_like_any(
    operator_client, webhook, partner
):
    from standardwebhooks import Webhook as Verifier

    response = operator_client.post(operate_url(webhook, "send-test"), follow=True)
    assert "Test event" in response.content.decode()
    dispatch_tick()
    engine_run(webhook.pk)
    delivery = Delivery.objects.get()
    assert delivery.is_test and delivery.state == "delivered" and delivery.attempts.count() == 1
    received = partner.received[0]
    assert received.json == {"changes": []}
    Verifier(webhook.secret).verify(received.body, received.headers)


def test_a_test_event_waits_for_an_open_batch(operator_client, webhook, partner):
    partner.then(status(500))
    record("update", "training", 7, 1)
    dispatch_tick()
    engine_run(webhook.pk)
    response = operator_client.post(operate_url(webhook, "send-test"), follow=True)
    assert "waiting to be accepted" in response.content.decode()
    assert Delivery.objects.filter(is_test=True).count() == 0


def test_rotate_secret_shows_the_new_secret_once_to_those_who_may_see_it(admin_client, webhook):
    old_secret = webhook.secret
    response = admin_client.post(operate_url(webhook, "rotate-secret"))
    webhook.refresh_from_db()
    assert webhook.secret != old_secret and webhook.previous_secret == old_secret
    assert webhook.secret in response.content.decode()
    entry = LogEntry.objects.get(object_id=str(webhook.pk))
    assert "Rotated" in entry.change_message and webhook.secret not in entry.change_message
    history = admin_client.get(reverse("admin:webhooks_webhook_history", args=[webhook.pk]))
    assert webhook.secret not in history.content.decode()


def test_rotate_as_a_list_action(admin_client, webhook):
    old_secret = webhook.secret
    response = admin_client.post(
        reverse("admin:webhooks_webhook_changelist"),
        {"action": "rotate_secret", "_selected_action": [webhook.pk]},
    )
    webhook.refresh_from_db()
    assert webhook.secret != old_secret and webhook.secret in response.content.decode()


def test_the_admin_index_links_the_dashboard_for_operators_only(operator_client, client, webhook):
    dashboard = reverse("admin:webhooks_webhook_dashboard")
    assert dashboard in operator_client.get(reverse("admin:index")).content.decode()
    user = User.objects.create_user("staff", password="x", is_staff=True)
    client.force_login(user)
    assert dashboard not in client.get(reverse("admin:index")).content.decode()


def test_the_change_page_has_the_buttons_for_whoever_may_use_them(admin_client, operator_client,
                                                                  webhook):
    url = reverse("admin:webhooks_webhook_change", args=[webhook.pk])
    admin_page = admin_client.get(url).content.decode()
    operator_page = operator_client.get(url).content.decode()
    for page in (admin_page, operator_page):
        assert operate_url(webhook, "retry") in page
        assert operate_url(webhook, "send-test") in page
        assert operate_url(webhook, "pause") in page
        assert "csrfmiddlewaretoken" in page
    assert operate_url(webhook, "rotate-secret") in admin_page
    assert operate_url(webhook, "rotate-secret") not in operator_page
    assert webhook.secret in admin_page, "staff with view_webhook_secret see it"
