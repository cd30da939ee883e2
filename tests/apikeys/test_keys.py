"""API keys (apikeys): stored as a hash, checked per request, tied to a partner's
webhooks; the create_api_key command and the admin."""

import hashlib
import re
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from apikeys.models import ApiKey
from apikeys.services import api_key_check, api_key_create
from webhooks.models import Webhook

pytestmark = pytest.mark.filterwarnings("ignore:No directory at:UserWarning")

RAW_KEY = re.compile(r"sk_[A-Za-z0-9_-]{43}")


@pytest.fixture
def raw_key(db) -> str:
    api_key, raw_key = api_key_create(name="Partner")
    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=timezone.now())
    return raw_key


# --- Key storage ---------------------------------------------------------------------


def test_a_key_is_stored_only_as_its_hash(db):
    api_key, raw_key = api_key_create(name="Partner")
    assert RAW_KEY.fullmatch(raw_key)
    assert api_key.prefix == raw_key[:8]
    assert api_key.key_hash == hashlib.sha256(raw_key.encode()).hexdigest()
    stored = ApiKey.objects.filter(pk=api_key.pk).values().get()
    assert all(raw_key not in str(value) for value in stored.values())
    assert api_key_create(name="Partner")[1] != raw_key


def test_last_used_at_is_written_at_most_once_a_minute(db, django_assert_num_queries):
    api_key, raw_key = api_key_create(name="Partner")
    assert api_key.last_used_at is None

    with django_assert_num_queries(2):  # the lookup and the first use
        api_key_check(raw_key=raw_key)
    first_use = ApiKey.objects.get().last_used_at
    assert first_use is not None

    with django_assert_num_queries(1):  # within the minute: read only
        api_key_check(raw_key=raw_key)
    assert ApiKey.objects.get().last_used_at == first_use

    ApiKey.objects.update(last_used_at=first_use - timedelta(minutes=2))
    with django_assert_num_queries(2):
        api_key_check(raw_key=raw_key)
    assert ApiKey.objects.get().last_used_at > first_use - timedelta(minutes=1)


# --- create_api_key --------------------------------------------------------------------


def test_create_api_key_prints_a_working_key_on_its_last_line(training):
    out = StringIO()

    call_command("create_api_key", "Media partner", stdout=out)

    raw_key = out.getvalue().splitlines()[-1]
    assert RAW_KEY.fullmatch(raw_key)
    api_key = ApiKey.objects.get()
    assert api_key.name == "Media partner"
    assert api_key.key_hash == hashlib.sha256(raw_key.encode()).hexdigest()
    assert all(raw_key not in str(value) for value in ApiKey.objects.values().get().values())
    response = Client(headers={"X-API-Key": raw_key}).get(f"/trainings/{training.pk}")
    assert response.status_code == 200


def test_create_api_key_refuses_a_blank_name(db):
    with pytest.raises(CommandError, match="name"):
        call_command("create_api_key", "  ", stdout=StringIO())
    assert not ApiKey.objects.exists()


# --- Admin -----------------------------------------------------------------------------------


def test_the_admin_shows_a_new_key_once_and_never_its_hash(admin_client, training):
    response = admin_client.post(
        "/admin/apikeys/apikey/add/", {"name": "Media partner"}, follow=True
    )

    assert response.status_code == 200
    page = response.content.decode()
    shown = RAW_KEY.findall(page)
    assert len(set(shown)) == 1
    raw_key = shown[0]
    api_key = ApiKey.objects.get()
    assert api_key.name == "Media partner"
    assert api_key.is_active
    assert api_key.key_hash == hashlib.sha256(raw_key.encode()).hexdigest()
    api_client = Client(headers={"X-API-Key": raw_key})
    assert api_client.get(f"/trainings/{training.pk}").status_code == 200

    for url in [
        "/admin/apikeys/apikey/",
        f"/admin/apikeys/apikey/{api_key.pk}/change/",
        f"/admin/apikeys/apikey/{api_key.pk}/history/",
    ]:
        later = admin_client.get(url).content.decode()
        assert raw_key not in later, url
        assert api_key.key_hash not in later, url
    assert api_key.prefix in admin_client.get("/admin/apikeys/apikey/").content.decode()


def test_a_new_key_is_on_the_answer_page_and_in_no_cookie_message_or_session(
    admin_client, training
):
    response = admin_client.post("/admin/apikeys/apikey/add/", {"name": "Media partner"})

    # The answer to the add form is the page with the key, not a redirect to another page
    # that would need the key carried there.
    assert response.status_code == 200
    page = response.content.decode()
    raw_key = RAW_KEY.findall(page)[0]
    api_key = ApiKey.objects.get()
    assert api_key_check(raw_key=raw_key) == api_key
    assert f"/admin/apikeys/apikey/{api_key.pk}/change/" in page
    assert "no-store" in response["Cache-Control"]

    assert raw_key not in str(response.cookies)  # every Set-Cookie header of the answer
    assert raw_key not in str(admin_client.cookies)
    stored_messages = [str(message) for message in response.wsgi_request._messages]
    assert all(raw_key not in message for message in stored_messages)
    session = admin_client.session
    assert all(raw_key not in str(value) for value in session.values())
    assert all(raw_key not in str(value) for value in ApiKey.objects.values().get().values())
    from django.contrib.admin.models import LogEntry

    assert all(raw_key not in str(entry.__dict__) for entry in LogEntry.objects.all())
    for raw_part in (raw_key[8:], raw_key[-20:]):  # nothing beyond the visible prefix either
        assert raw_part not in str(response.cookies)
    # The next page has nothing left to show.
    assert raw_key not in admin_client.get("/admin/apikeys/apikey/").content.decode()


def test_the_admin_add_form_asks_only_for_a_name_and_webhooks(admin_client):
    page = admin_client.get("/admin/apikeys/apikey/add/").content.decode()
    assert 'name="name"' in page
    assert 'name="webhooks"' in page
    assert 'name="key_hash"' not in page
    assert 'name="prefix"' not in page


def test_the_admin_can_deactivate_a_key(admin_client, raw_key, training):
    api_key = ApiKey.objects.get()
    response = admin_client.post(
        f"/admin/apikeys/apikey/{api_key.pk}/change/", {"name": api_key.name}
    )
    assert response.status_code == 302
    assert not ApiKey.objects.get().is_active
    response = Client(headers={"X-API-Key": raw_key}).get(f"/trainings/{training.pk}")
    assert response.status_code == 401


# --- Partner keys: a key that belongs to webhooks -------------------------------------------


@pytest.fixture
def webhooks(db) -> list[Webhook]:
    return [
        Webhook.objects.create(name=f"Partner {n}", url=f"https://partner{n}.example/hook")
        for n in range(3)
    ]


def test_create_api_key_ties_the_key_to_the_webhooks_given(webhooks):
    out = StringIO()

    call_command(
        "create_api_key", "Media partner", "--webhook", str(webhooks[0].pk),
        "--webhook", str(webhooks[2].pk), stdout=out,
    )

    api_key = ApiKey.objects.get()
    assert set(api_key.webhooks.all()) == {webhooks[0], webhooks[2]}
    assert f"for webhooks {webhooks[0].pk}, {webhooks[2].pk}" in out.getvalue()
    assert api_key_check(raw_key=out.getvalue().splitlines()[-1]) == api_key


def test_create_api_key_refuses_an_unknown_webhook_and_creates_nothing(webhooks):
    with pytest.raises(CommandError, match="webhook 999999 does not exist"):
        call_command(
            "create_api_key", "Media partner", "--webhook", str(webhooks[0].pk),
            "--webhook", "999999", stdout=StringIO(),
        )
    assert not ApiKey.objects.exists()


def test_the_admin_creates_a_key_for_webhooks(admin_client, webhooks):
    response = admin_client.post(
        "/admin/apikeys/apikey/add/",
        {"name": "Media partner", "webhooks": [webhooks[1].pk]},
        follow=True,
    )

    assert response.status_code == 200
    raw_key = RAW_KEY.findall(response.content.decode())[0]
    api_key = api_key_check(raw_key=raw_key)
    assert list(api_key.webhooks.all()) == [webhooks[1]]


def test_the_admin_changes_a_keys_webhooks(admin_client, webhooks):
    api_key, _ = api_key_create(name="Partner", webhook_ids=[webhooks[0].pk])
    response = admin_client.post(
        f"/admin/apikeys/apikey/{api_key.pk}/change/",
        {"name": "Partner", "is_active": "on", "webhooks": [webhooks[1].pk, webhooks[2].pk]},
    )
    assert response.status_code == 302
    assert set(api_key.webhooks.all()) == {webhooks[1], webhooks[2]}
