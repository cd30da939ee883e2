"""A partner starts from an empty or stale mirror: the reference receiver reconciles with the
lists at start, or asks for a resync and receives the whole catalogue through its webhook.

Real parts: the API is served by Django (pytest-django's live server, on this test's
database), the receiver runs as a subprocess, and deliveries are made by the dispatcher's
own services to the receiver's socket.
"""

import sqlite3
import time

import pytest
import requests

from apikeys.services import api_key_create
from catalog.models import Institute, Training
from tests.deliveries.helpers import deliver, waiting
from tests.support import processes
from webhooks.models import Webhook

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.filterwarnings("ignore:No directory at:UserWarning"),
]


def catalogue() -> dict:
    return {
        "institutes": {str(i): name for i, name in Institute.objects.values_list("id", "name")},
        "trainings": {
            str(t): [institute_id, reference, name]
            for t, institute_id, reference, name in Training.objects.values_list(
                "id", "institute_id", "reference", "name"
            )
        },
    }


def make_catalogue() -> None:
    for n in range(4):
        institute = Institute.objects.create(name=f"Institute {n}")
        for m in range(3):
            Training.objects.create(institute=institute, reference=f"R{m}", name=f"Course {m}")


def wait_for_mirror(url: str, expected: dict, step=None, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        if step:
            step()
        mirror = requests.get(f"{url}/mirror", timeout=5).json()
        if mirror == expected or time.monotonic() > deadline:
            return mirror
        time.sleep(0.1)


@pytest.fixture
def settings_for_partners(settings, live_server):
    settings.API_BASE_URL = live_server.url
    settings.WEBHOOK_BUNDLE_DELAY = 0
    settings.WEBHOOK_ALLOW_PRIVATE_URLS = True
    return settings


def test_reconcile_at_start_makes_a_stale_mirror_the_catalogue(
    settings_for_partners, live_server, tmp_path
):
    make_catalogue()
    gone = Institute.objects.create(name="Gone soon")
    _, api_key = api_key_create(name="Partner")
    db_path = tmp_path / "mirror.sqlite3"
    # A stale mirror: an institute since removed, a training renamed since, one unknown.
    mirror = sqlite3.connect(db_path)
    mirror.executescript(
        "CREATE TABLE institutes (id INTEGER PRIMARY KEY, name TEXT, data TEXT);"
        "CREATE TABLE trainings (id INTEGER PRIMARY KEY, institute_id INTEGER, "
        "reference TEXT, name TEXT, data TEXT);"
    )
    mirror.execute("INSERT INTO institutes VALUES (?, 'Gone soon', '{}')", (gone.pk,))
    mirror.execute("INSERT INTO trainings VALUES (999999, ?, 'X', 'Removed', '{}')", (gone.pk,))
    first = Training.objects.order_by("id").first()
    mirror.execute("INSERT INTO trainings VALUES (?, ?, ?, 'Old name', '{}')",
                   (first.pk, first.institute_id, first.reference))
    mirror.commit()
    mirror.close()
    gone.delete()

    receiver = processes.receiver(
        secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", api_key=api_key, db_path=db_path,
        log_dir=tmp_path, options=("--reconcile", "--api-url", live_server.url),
    ).start()
    try:
        url = receiver.wait_for_log(r"listening on (http://\S+)").group(1)
        receiver.wait_for_log(r"reconciled with the API: 4 institutes, 12 trainings")
        assert wait_for_mirror(url, catalogue()) == catalogue(), receiver.tail()
    finally:
        receiver.stop()


def test_resync_at_start_fills_an_empty_mirror_through_the_webhook(
    settings_for_partners, live_server, tmp_path
):
    make_catalogue()
    # Joins later: receives only changes made after it was created, until it resyncs.
    webhook = Webhook.objects.create(name="New partner", url="http://127.0.0.1:9/")
    other = Webhook.objects.create(name="Another partner", url="http://127.0.0.1:9/")
    _, api_key = api_key_create(name="New partner", webhook_ids=[webhook.pk])
    receiver = processes.receiver(
        secret=webhook.secret, api_key=api_key, db_path=tmp_path / "mirror.sqlite3",
        log_dir=tmp_path, options=("--resync", "--api-url", live_server.url),
    ).start()
    try:
        url = receiver.wait_for_log(r"listening on (http://\S+)").group(1)
        Webhook.objects.filter(pk=webhook.pk).update(url=url)
        receiver.wait_for_log(r"resync of webhook \d+ queued: 4 institutes")

        mirror = wait_for_mirror(url, catalogue(), step=lambda: deliver(webhook))

        assert mirror == catalogue(), receiver.tail()
        # Nobody else received the catalogue.
        assert "import" not in {action for action, _ in waiting(other).values()}
        # Asked again at once: limited, and the receiver says why instead of failing.
        again = requests.post(f"{live_server.url}/webhooks/{webhook.pk}/resync",
                              headers={"X-API-Key": api_key}, timeout=5)
        assert again.status_code == 429
    finally:
        receiver.stop()
