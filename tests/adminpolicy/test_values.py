"""A changelist filter's value is data: one that no database can compare gets the admin's
usual answer to a bad filter (a redirect to the unfiltered list with ?e=1), and a lookup
that no list filter makes is refused with 400, whatever its value."""

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from apikeys.services import api_key_create
from deliveries.models import Delivery
from webhooks.models import Webhook

DELIVERIES = "admin:deliveries_delivery_changelist"
WEBHOOKS = "admin:webhooks_webhook_changelist"
API_KEYS = "admin:apikeys_apikey_changelist"
TRAININGS = "admin:catalog_training_changelist"


@pytest.fixture
def admin_client(client, db, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_URLS = True
    client.force_login(User.objects.create_superuser("root", password="root-123"))
    # Two webhooks: Django shows (and applies) a relation filter only with two choices.
    first = Webhook.objects.create(name="Partner", url="http://127.0.0.1:9/hook")
    Webhook.objects.create(name="Other", url="http://127.0.0.1:9/other")
    Delivery.objects.create(webhook=first, message_id="msg_1", payload='{"changes": []}',
                            entry_count=0)
    api_key_create(name="Partner key", webhook_ids=[first.pk])
    return client


def assert_invalid_filter(response) -> None:
    assert response.status_code == 302, response.status_code
    assert response.url.endswith("?e=1"), response.url


@pytest.mark.parametrize(
    ("changelist", "params"),
    [
        (DELIVERIES, {"state__exact": "\x00"}),
        (DELIVERIES, {"last_error_kind": "\x00"}),
        (DELIVERIES, {"is_test__exact": "\x00"}),
        (DELIVERIES, {"webhook__id__exact": "\x00"}),
        (DELIVERIES, {"webhook__id__exact": "1\x00"}),
        (DELIVERIES, {"webhook__isnull": "\x00"}),
        (WEBHOOKS, {"is_active__exact": "1\x00"}),
    ],
)
def test_a_nul_in_a_filter_value_is_an_invalid_filter(admin_client, changelist, params):
    assert_invalid_filter(admin_client.get(reverse(changelist), params))


@pytest.mark.parametrize("changelist", [DELIVERIES, WEBHOOKS, API_KEYS, TRAININGS])
@pytest.mark.parametrize(
    "value",
    [
        "2026-01-01 00:00:00+20:00",  # PostgreSQL keeps no offset of 16 hours or more
        "2026-01-01 00:00:00-16:00",
        "0001-01-01 00:00:00+01:00",  # before year 1 in UTC
        "9999-12-31 23:00:00-05:00",  # after year 9999 in UTC
        "2026-01-01 00:00:00\x00+00:00",
        "yesterday",
    ],
)
@pytest.mark.parametrize("bound", ["gte", "lt"])
def test_a_time_no_database_can_compare_is_an_invalid_filter(admin_client, changelist, value,
                                                             bound):
    field = "updated_at" if changelist == TRAININGS else "created_at"
    assert_invalid_filter(admin_client.get(reverse(changelist), {f"{field}__{bound}": value}))


@pytest.mark.parametrize("changelist", [DELIVERIES, WEBHOOKS, API_KEYS])
def test_the_times_the_date_filter_makes_still_filter(admin_client, changelist):
    url = reverse(changelist)
    for since, until, shown in [
        ("2000-01-01 00:00:00+00:00", "2999-01-01 00:00:00+00:00", True),
        ("2000-01-01 00:00:00+14:00", "2001-01-01 00:00:00-12:00", False),
        ("0001-01-01 00:00:00+00:00", "9999-12-31 23:59:59+00:00", True),
    ]:
        response = admin_client.get(url, {"created_at__gte": since, "created_at__lt": until})
        assert response.status_code == 200, (since, until)
        assert bool(response.context["cl"].result_list) is shown, (since, until)


@pytest.mark.parametrize(
    ("changelist", "lookup", "value"),
    [
        (DELIVERIES, "webhook__id__regex", "("),
        (DELIVERIES, "webhook__id__regex", "^1"),
        (DELIVERIES, "webhook__id__in", "1,2"),
        (DELIVERIES, "webhook__id__gt", "0"),
        (DELIVERIES, "webhook__id", "1"),
        (DELIVERIES, "webhook", "1"),
        (DELIVERIES, "state__regex", "("),
        (DELIVERIES, "state", "pending"),
        (DELIVERIES, "created_at__gt", "2026-01-01 00:00:00+00:00"),
        (DELIVERIES, "created_at__year", "2026"),
        (DELIVERIES, "last_error_kind__exact", "timeout"),
        (WEBHOOKS, "is_active__regex", "("),
        (API_KEYS, "webhooks__id__exact", "1"),
        (TRAININGS, "institute__name__exact", "x"),
    ],
)
def test_only_the_parameters_a_list_filter_makes_are_accepted(admin_client, changelist, lookup,
                                                               value):
    assert admin_client.get(reverse(changelist), {lookup: value}).status_code == 400, lookup


def test_an_invalid_filter_twice_is_the_admins_error_page_not_a_500(admin_client):
    response = admin_client.get(reverse(DELIVERIES), {"state__exact": "\x00", "e": "1"})
    assert response.status_code == 200
    assert response.context["title"] == "Database error"


def test_the_staff_lists_follow_the_same_policy(admin_client):
    users = reverse("admin:auth_user_changelist")
    groups = reverse("admin:auth_group_changelist")
    assert admin_client.get(users, {"is_staff__exact": "1"}).status_code == 200
    assert_invalid_filter(admin_client.get(users, {"is_staff__exact": "\x00"}))
    assert_invalid_filter(admin_client.get(users, {"groups__id__exact": "\x00"}))
    for changelist, lookup in [(users, "username"), (users, "last_login__gte"),
                               (users, "groups__name__regex"), (groups, "name__exact")]:
        assert admin_client.get(changelist, {lookup: "\x00"}).status_code == 400, lookup
