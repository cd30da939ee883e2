"""Resync: the whole catalogue (an import of every institute) queued for one webhook alone,
through the normal path; the service, the command, the admin button, list action and add
form."""

import re
from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.messages import get_messages
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from catalog import selectors as catalog_selectors
from catalog.models import Institute, Training
from changes.models import Change
from deliveries.services import ResyncTooSoon, webhook_resync
from tests.deliveries.helpers import (
    collect,
    keys,
    next_batch,
    pass_everything,
    record,
    waiting,
)
from webhooks.models import Webhook

pytestmark = pytest.mark.filterwarnings("ignore:No directory at:UserWarning")


@pytest.fixture
def webhooks(db, fast_delivery) -> list[Webhook]:
    return [
        Webhook.objects.create(name=f"Partner {n}", url=f"https://partner{n}.example/hook")
        for n in range(2)
    ]


@pytest.fixture
def catalogue(db) -> list[Institute]:
    institutes = [Institute.objects.create(name=f"Institute {n}") for n in range(3)]
    Training.objects.create(institute=institutes[0], reference="A", name="A")
    collect()  # those creations went to every webhook: out of the way
    pass_everything()
    return institutes


def test_a_resync_queues_an_import_of_every_institute_for_that_webhook_alone(
    webhooks, catalogue
):
    assert webhook_resync(webhook_id=webhooks[0].pk) == 3

    assert keys(next_batch(webhooks[0])) == [
        ("import", "institute", institute.pk) for institute in catalogue
    ]
    assert next_batch(webhooks[1]) is None
    assert Change.objects.count() == 0


def test_a_resync_coalesces_with_what_waits_and_keeps_the_order(webhooks, catalogue):
    first, second, third = catalogue
    record("destroy", "training", 9999, first.pk)
    record("update", "institute", second.pk)
    training = Training.objects.get()
    record("update", "training", training.pk, first.pk)

    webhook_resync(webhook_id=webhooks[0].pk)
    record("destroy", "institute", third.pk)  # after the resync: the latest change wins

    batch = keys(next_batch(webhooks[0]))
    # What waited goes first; the import absorbs the institute's waiting update, folds the
    # training's update in, and a later destroy wins over it.
    assert batch == [
        ("destroy", "training", 9999),
        ("import", "institute", first.pk),
        ("import", "institute", second.pk),
        ("destroy", "institute", third.pk),
    ]
    assert keys(next_batch(webhooks[1])) == [
        ("destroy", "training", 9999),
        ("update", "institute", second.pk),
        ("update", "training", training.pk),
        ("destroy", "institute", third.pk),
    ]


def test_the_catalogue_is_read_a_chunk_of_ids_at_a_time(db, monkeypatch):
    institutes = [Institute.objects.create(name=f"Institute {n}") for n in range(7)]
    monkeypatch.setattr(catalog_selectors, "_CATALOGUE_CHUNK", 3)

    with CaptureQueriesContext(connection) as queries:
        entries = list(catalog_selectors.catalogue_entries())

    assert [entry.object_id for entry in entries] == [institute.pk for institute in institutes]
    assert {entry.action for entry in entries} == {"import"}
    # 3 + 3 + 1 ids, then an empty chunk: no query ever reads them all.
    assert len(queries) == 4
    assert all("LIMIT 3" in query["sql"] for query in queries.captured_queries)


def test_a_paused_webhook_collects_the_resync_for_later(webhooks, catalogue):
    Webhook.objects.filter(pk=webhooks[0].pk).update(is_active=False)
    webhook_resync(webhook_id=webhooks[0].pk)
    collect()
    assert [action for action, _ in waiting(webhooks[0]).values()].count("import") == 3


def test_a_minimum_interval_refuses_a_resync_too_soon_and_says_how_long_to_wait(
    webhooks, catalogue
):
    webhook_resync(webhook_id=webhooks[0].pk, min_interval=timedelta(minutes=10))

    with pytest.raises(ResyncTooSoon) as refused:
        webhook_resync(webhook_id=webhooks[0].pk, min_interval=timedelta(minutes=10))
    assert 595 <= refused.value.retry_after <= 600
    assert Change.objects.count() == 3  # the refused one recorded nothing
    # Staff are not limited, and other webhooks have their own interval.
    assert webhook_resync(webhook_id=webhooks[0].pk) == 3
    assert webhook_resync(webhook_id=webhooks[1].pk, min_interval=timedelta(minutes=10)) == 3

    Webhook.objects.filter(pk=webhooks[0].pk).update(
        last_resync_at=timezone.now() - timedelta(minutes=11)
    )
    assert webhook_resync(webhook_id=webhooks[0].pk, min_interval=timedelta(minutes=10)) == 3


def test_staff_resyncs_do_not_count_toward_the_partners_interval(webhooks, catalogue):
    # Staff's onboarding resync (Start with the whole catalogue), then the partner's first.
    webhook_resync(webhook_id=webhooks[0].pk)
    assert webhook_resync(webhook_id=webhooks[0].pk, min_interval=timedelta(minutes=10)) == 3
    with pytest.raises(ResyncTooSoon):
        webhook_resync(webhook_id=webhooks[0].pk, min_interval=timedelta(minutes=10))


# --- The command --------------------------------------------------------------------------


def test_the_command_resyncs_one_webhook(webhooks, catalogue):
    out = StringIO()
    call_command("resync_webhook", str(webhooks[1].pk), stdout=out)

    assert out.getvalue().strip() == (
        f"Queued the whole catalogue for webhook {webhooks[1].pk}: 3 institutes."
    )
    assert next_batch(webhooks[0]) is None
    assert len(next_batch(webhooks[1])) == 3


def test_the_command_refuses_an_unknown_webhook(db):
    with pytest.raises(CommandError, match="webhook 424242 does not exist"):
        call_command("resync_webhook", "424242", stdout=StringIO())
    assert not Change.objects.exists()


# --- The admin ----------------------------------------------------------------------------


def test_the_change_page_button_sends_the_whole_catalogue(admin_client, webhooks, catalogue):
    page = admin_client.get(reverse("admin:webhooks_webhook_change", args=[webhooks[0].pk]))
    assert "Send the whole catalogue" in page.content.decode()

    response = admin_client.post(
        reverse("admin:webhooks_webhook_operate", args=[webhooks[0].pk, "resync"]), follow=True
    )

    assert response.status_code == 200
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        f"{webhooks[0]}: Queued the whole catalogue: 3 institutes."
    ]
    assert len(next_batch(webhooks[0])) == 3
    assert next_batch(webhooks[1]) is None
    assert LogEntry.objects.filter(object_id=str(webhooks[0].pk)).exists()


def test_the_list_action_reports_once_for_all_webhooks(admin_client, webhooks, catalogue):
    response = admin_client.post(
        reverse("admin:webhooks_webhook_changelist"),
        {"action": "send_whole_catalogue", "_selected_action": [w.pk for w in webhooks]},
        follow=True,
    )

    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        "2 webhooks: Queued the whole catalogue: 3 institutes."
    ]
    assert len(next_batch(webhooks[0])) == 3
    assert len(next_batch(webhooks[1])) == 3


def test_the_list_action_speaks_of_one_webhook_in_the_singular(
    admin_client, webhooks, catalogue
):
    Institute.objects.exclude(pk=catalogue[0].pk).delete()
    response = admin_client.post(
        reverse("admin:webhooks_webhook_changelist"),
        {"action": "send_whole_catalogue", "_selected_action": [webhooks[0].pk]},
        follow=True,
    )
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        f"{webhooks[0]}: Queued the whole catalogue: 1 institute."
    ]


def test_the_add_form_starts_a_webhook_with_the_whole_catalogue_by_default(
    admin_client, webhooks, catalogue
):
    page = admin_client.get(reverse("admin:webhooks_webhook_add")).content.decode()
    assert "Start with the whole catalogue" in page
    assert re.search(r'<input [^>]*name="send_catalogue"[^>]* checked', page)

    response = admin_client.post(
        reverse("admin:webhooks_webhook_add"),
        {"name": "New partner", "url": "https://new.example/hook", "is_active": "on",
         "send_catalogue": "on"},
        follow=True,
    )

    assert response.status_code == 200
    new = Webhook.objects.get(name="New partner")
    assert "Queued the whole catalogue for New partner: 3 institutes." in [
        str(m) for m in get_messages(response.wsgi_request)
    ]
    assert keys(next_batch(new)) == [("import", "institute", i.pk) for i in catalogue]
    assert next_batch(webhooks[0]) is None


def test_a_webhook_added_without_the_catalogue_gets_only_later_changes(
    admin_client, webhooks, catalogue
):
    admin_client.post(
        reverse("admin:webhooks_webhook_add"),
        {"name": "New partner", "url": "https://new.example/hook", "is_active": "on"},
    )
    new = Webhook.objects.get(name="New partner")
    assert next_batch(new) is None
    catalogue[1].save()
    assert keys(next_batch(new)) == [("update", "institute", catalogue[1].pk)]


def test_resync_all_webhooks_queues_the_catalogue_for_every_webhook_and_says_so(
    webhooks, catalogue
):
    """After a restore from backup: every webhook, paused ones too, gets an import of
    every institute, and the command says what it queued."""
    Webhook.objects.filter(pk=webhooks[1].pk).update(is_active=False)
    output = StringIO()
    call_command("resync_all_webhooks", stdout=output)

    assert keys(next_batch(webhooks[0])) == [
        ("import", "institute", institute.pk) for institute in catalogue
    ]
    collect()
    assert [action for action, _ in waiting(webhooks[1]).values()].count("import") == 3
    for webhook in webhooks:
        webhook.refresh_from_db()
        # Staff's resync starts no partner's rate-limit window.
        assert webhook.last_resync_at is None
    text = output.getvalue()
    for webhook in webhooks:
        assert f"webhook {webhook.pk} ({webhook.name})" in text
    assert "Resync queued for all 2 webhooks (3 institutes each)" in text


def test_resync_all_webhooks_without_webhooks_says_there_is_nothing_to_do(db):
    output = StringIO()
    call_command("resync_all_webhooks", stdout=output)
    assert output.getvalue() == "No webhooks: nothing to resync.\n"
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("action", ["resync", "test"])
def test_one_key_asking_for_two_webhooks_at_once_gets_one(fast_delivery, action):
    """The key's row lock makes the per-key limit hold between concurrent requests."""
    import threading

    from django.db import connections

    from apikeys.services import api_key_create
    from deliveries.services import TooSoon, delivery_test_send

    webhooks = [
        Webhook.objects.create(name=f"Partner {n}", url=f"https://partner{n}.example/hook")
        for n in range(2)
    ]
    api_key, _ = api_key_create(name="Partner", webhook_ids=[w.pk for w in webhooks])
    ask = {"resync": webhook_resync, "test": delivery_test_send}[action]
    start = threading.Barrier(2)
    outcomes: list[str] = []

    def asks(webhook: Webhook) -> None:
        try:
            start.wait()
            ask(webhook_id=webhook.pk, min_interval=timedelta(seconds=600),
                api_key_id=api_key.pk)
            outcomes.append("accepted")
        except TooSoon:
            outcomes.append("too soon")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=asks, args=(webhook,)) for webhook in webhooks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(outcomes) == ["accepted", "too soon"]
