"""No changelist lookup tells anything about a secret: every role, every secret-bearing
field, every kind of lookup, directly and through relations — refused with 400, the same
answer whether the guess is right or wrong."""

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.urls import reverse
from django.utils import timezone

from apikeys.models import ApiKey
from apikeys.services import api_key_create
from deliveries.models import Delivery, DeliveryAttempt
from webhooks.models import Webhook
from webhooks.services import webhook_secret_rotate


@pytest.fixture
def superuser(db) -> User:
    return User.objects.create_superuser("root", password="root-123")


@pytest.fixture
def editor(db) -> User:
    """Staff who may change webhooks and read API keys, but not see webhook secrets."""
    user = User.objects.create_user("eddie", password="edit-123", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=[
        "view_webhook", "change_webhook", "view_delivery", "view_deliveryattempt",
        "view_apikey", "change_apikey",
    ]))
    return user


@pytest.fixture
def operator(db) -> User:
    user = User.objects.create_user("olivia", password="operate-123", is_staff=True)
    user.groups.add(Group.objects.get(name="operators"))
    return user


@pytest.fixture
def secrets(db, settings):
    """A webhook with a current and a previous secret, a delivery and an attempt of it,
    and an API key: (the webhook, the key's raw hash)."""
    settings.WEBHOOK_ALLOW_PRIVATE_URLS = True
    webhook = Webhook.objects.create(name="Partner", url="http://127.0.0.1:9/hook")
    webhook = webhook_secret_rotate(webhook_id=webhook.pk)
    delivery = Delivery.objects.create(
        webhook=webhook, message_id="msg_1", payload='{"changes": []}', entry_count=0,
        lease_token="lease-token-value",
    )
    DeliveryAttempt.objects.create(
        delivery=delivery, webhook=webhook, number=1, started_at=timezone.now()
    )
    api_key, _raw = api_key_create(name="Partner key", webhook_ids=[webhook.pk])
    return webhook, api_key


KINDS = ["exact", "iexact", "startswith", "regex", "iregex", "gt", "lt", "contains", "in",
         "isnull", "endswith", "range"]


def guesses(kind: str, value: str) -> tuple[str, str]:
    """A right and a wrong guess of `value` for a lookup kind."""
    if kind == "isnull":
        return "False", "True"
    if kind in {"startswith", "regex", "iregex", "contains"}:
        right = value[:8] if kind != "regex" else "^" + value[:8]
        return right, "^zzz" if "regex" in kind else "zzz"
    if kind == "gt":
        return "", value
    if kind == "lt":
        return "~", value[:1]
    if kind == "range":
        return f"{value[:1]},{value[:1]}~", "0,1"
    return value, value + "x"


def secret_paths(webhook: Webhook, api_key: ApiKey):
    """(changelist, lookup path, the secret it leads to)."""
    webhooks = reverse("admin:webhooks_webhook_changelist")
    deliveries = reverse("admin:deliveries_delivery_changelist")
    keys = reverse("admin:apikeys_apikey_changelist")
    secret, previous = webhook.secret, webhook.previous_secret
    return [
        (webhooks, "secret", secret),
        (webhooks, "previous_secret", previous),
        (webhooks, "deliveries__webhook__secret", secret),
        (webhooks, "pending_entries__webhook__previous_secret", previous),
        (webhooks, "deliveries__lease_token", "lease-token-value"),
        (deliveries, "webhook__secret", secret),
        (deliveries, "webhook__previous_secret", previous),
        (deliveries, "attempts__webhook__secret", secret),
        (deliveries, "attempts__delivery__webhook__previous_secret", previous),
        (deliveries, "lease_token", "lease-token-value"),
        (keys, "key_hash", api_key.key_hash),
        # A partner's key and its webhooks reach each other's secrets through the relation.
        (webhooks, "api_keys__key_hash", api_key.key_hash),
        (keys, "webhooks__secret", secret),
    ]


@pytest.mark.parametrize("role", ["superuser", "editor", "operator"])
def test_no_lookup_on_a_secret_is_answered_for_any_role(client, request, secrets, role):
    webhook, api_key = secrets
    client.force_login(request.getfixturevalue(role))
    checked = 0
    for changelist, path, value in secret_paths(webhook, api_key):
        if client.get(changelist).status_code == 403:
            assert role == "operator" and "apikey" in changelist  # may not see keys at all
            continue
        for kind in KINDS:
            answers = []
            for guess in guesses(kind, value):
                response = client.get(changelist, {f"{path}__{kind}": guess})
                answers.append((response.status_code, response.content))
            assert answers[0][0] == 400, (changelist, path, kind, answers[0][0])
            assert answers[0] == answers[1], f"{path}__{kind}: the answer depends on the guess"
            checked += 1
        # With no lookup type, and in Django's `_0`-indexed spelling of a value.
        for lookup in (path, f"{path}__0", f"{path}__in_0"):
            assert client.get(changelist, {lookup: value}).status_code == 400, lookup
    assert checked >= 8 * len(KINDS)


def test_a_lookup_outside_the_list_filters_is_refused(admin_client, secrets):
    # Not only secrets: nothing the changelist does not offer as a filter is accepted.
    webhooks = reverse("admin:webhooks_webhook_changelist")
    deliveries = reverse("admin:deliveries_delivery_changelist")
    for changelist, lookup in [
        (webhooks, "name__startswith"),
        (webhooks, "pending_count__gt"),
        (webhooks, "pk__in"),
        (deliveries, "payload__contains"),
        (deliveries, "webhook__name__regex"),
        (deliveries, "webhook__url__startswith"),
        (deliveries, "last_error_kind__regex"),
    ]:
        assert admin_client.get(changelist, {lookup: "x"}).status_code == 400, lookup


def test_the_list_filters_still_work_for_an_operator(client, operator, secrets):
    webhook, _ = secrets
    # A second webhook: Django shows (and applies) a relation filter only with two choices.
    other = Webhook.objects.create(name="Other", url="http://127.0.0.1:9/other", is_active=False)
    client.force_login(operator)
    deliveries = reverse("admin:deliveries_delivery_changelist")
    webhooks = reverse("admin:webhooks_webhook_changelist")
    for changelist, params, shown in [
        (deliveries, {"webhook__id__exact": webhook.pk}, True),
        (deliveries, {"webhook__id__exact": other.pk}, False),
        (deliveries, {"state__exact": "pending", "is_test__exact": "0"}, True),
        (deliveries, {"last_error_kind": "timeout"}, False),
        (deliveries, {"created_at__gte": "2000-01-01 00:00:00+00:00",
                      "created_at__lt": "2999-01-01 00:00:00+00:00"}, True),
        (webhooks, {"is_active__exact": "1"}, True),
        (webhooks, {"is_active__exact": "0", "created_at__gte": "2000-01-01 00:00:00+00:00"}, True),
    ]:
        response = client.get(changelist, params)
        assert response.status_code == 200, params
        assert (len(response.context["cl"].result_list) == 1) is shown, params


def test_the_user_list_refuses_password_lookups(admin_client, superuser):
    users = reverse("admin:auth_user_changelist")
    for lookup in ("password__startswith", "groups__user__password__startswith"):
        assert admin_client.get(users, {lookup: "pbkdf2"}).status_code == 400, lookup
