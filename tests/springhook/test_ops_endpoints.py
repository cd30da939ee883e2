"""/healthz and /metrics: real database, real broker (Redis) when configured, and the
metrics parsed with prometheus_client's own text parser."""

import os
import re
import socket
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from deliveries.models import Delivery, DeliveryAttempt, DispatcherHeartbeat, PendingEntry
from deliveries.services import dispatch_tick, dispatcher_heartbeat_record
from webhooks.models import Webhook
from webhooks.services import webhook_pause


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def ticked(db):
    dispatcher_heartbeat_record(force=True)


def test_healthz_is_ok_with_a_fresh_tick_and_no_broker(client, ticked, settings):
    settings.CELERY_BROKER_URL = ""
    response = client.get("/healthz")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "ok" and body["database"] == "ok"
    assert body["broker"] == "not configured"
    assert 0 <= body["dispatcher"]["last_tick_age_seconds"] < 30


def test_dispatch_tick_records_the_heartbeat(db):
    import deliveries.services.periodic as periodic

    periodic._heartbeat_written_at = 0.0
    before = timezone.now()
    dispatch_tick()
    assert DispatcherHeartbeat.objects.get().ticked_at >= before


def test_healthz_is_503_when_the_dispatcher_never_ticked_or_stopped(client, db, settings):
    settings.CELERY_BROKER_URL = ""
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["dispatcher"]["status"] == "never ticked"
    DispatcherHeartbeat.objects.create(pk=1, ticked_at=timezone.now() - timedelta(seconds=61))
    response = client.get("/healthz")
    assert response.status_code == 503 and response.json()["dispatcher"]["status"] == "stale"


def test_healthz_is_503_when_the_broker_is_down(client, ticked, settings):
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{free_port()}/0"  # nobody listens
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["broker"].startswith("error")


@pytest.mark.redis
@pytest.mark.skipif(not os.environ.get("REDIS_TEST_URL"), reason="needs REDIS_TEST_URL")
def test_healthz_is_ok_with_a_live_broker(client, ticked, settings):
    settings.CELERY_BROKER_URL = os.environ["REDIS_TEST_URL"]
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json()["broker"] == "ok"


def test_metrics_parse_and_carry_pending_outcomes_and_durations(client, db):
    now = timezone.now()
    alpha = Webhook.objects.create(name="Alpha", url="https://a.example/")
    beta = Webhook.objects.create(name='Beta "quoted"', url="https://b.example/")
    webhook_pause(webhook_id=beta.pk)
    for object_id, minutes in ((1, 10), (2, 1)):
        PendingEntry.objects.create(
            webhook=alpha, object_kind="training", object_id=object_id, action="update",
            first_change_at=now - timedelta(minutes=minutes), last_change_at=now,
            seq=object_id,
        )
    for index, (state, duration, accepted) in enumerate(
        [("delivered", 0.03, True), ("delivered", 0.7, True), ("failing", 3.0, False)]
    ):
        delivery = Delivery.objects.create(
            webhook=alpha if state == "delivered" else beta, message_id=f"m{index}",
            payload="{}", entry_count=1, state=state,
            delivered_at=now if state == "delivered" else None,
        )
        DeliveryAttempt.objects.create(delivery=delivery, number=1, started_at=now,
                                       duration=duration, accepted=accepted)
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(response.content.decode())}

    def value(family, **labels):
        [sample] = [s for s in families[family].samples
                    if s.name == family and all(s.labels.get(k) == v for k, v in labels.items())]
        return sample.value

    assert value("springhook_pending_entries", webhook="Alpha") == 2
    assert value("springhook_pending_entries", webhook='Beta "quoted"') == 0
    assert 590 < value("springhook_pending_oldest_age_seconds", webhook="Alpha") < 700
    assert value("springhook_webhook_state", webhook='Beta "quoted"', state="paused") == 1
    assert value("springhook_webhook_state", webhook="Alpha", state="healthy") == 1
    assert value("springhook_deliveries_accepted_24h") == 2
    assert value("springhook_deliveries_open", state="failing") == 1
    assert value("springhook_deliveries_open", state="pending") == 0
    histogram = families["springhook_attempt_duration_seconds"]
    assert histogram.type == "histogram"
    buckets = {s.labels["le"]: s.value for s in histogram.samples if s.name.endswith("_bucket")}
    assert buckets["0.05"] == 1 and buckets["1.0"] == 2 and buckets["5.0"] == 3
    assert buckets["+Inf"] == 3
    [total] = [s.value for s in histogram.samples if s.name.endswith("_sum")]
    assert total == pytest.approx(3.73)
    assert value("springhook_webhook_attempts_24h", webhook="Alpha", outcome="accepted") == 2
    assert value("springhook_webhook_attempts_24h", webhook='Beta "quoted"',
                 outcome="failed") == 1
    assert "whsec_" not in response.content.decode() and "https://" not in response.content.decode()


def test_a_tick_from_a_clock_ahead_counts_as_age_zero(client, db, settings):
    settings.CELERY_BROKER_URL = ""
    DispatcherHeartbeat.objects.create(pk=1, ticked_at=timezone.now() + timedelta(seconds=5))
    health = client.get("/healthz").json()
    assert health["dispatcher"]["last_tick_age_seconds"] == 0
    assert health["dispatcher"]["status"] == "ok"
    families = {f.name: f for f in text_string_to_metric_families(
        client.get("/metrics").content.decode())}
    [sample] = families["springhook_dispatcher_last_tick_age_seconds"].samples
    assert sample.value == 0


def test_metrics_need_the_bearer_token_when_one_is_set(client, db, settings):
    settings.METRICS_TOKEN = "s3cret-token"
    for headers in (
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": "Bearer s3cret-toke"},
        {"Authorization": "Basic s3cret-token"},
        {"Authorization": "s3cret-token"},
    ):
        response = client.get("/metrics", headers=headers)
        assert response.status_code == 401, headers
        assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
        assert b"springhook_" not in response.content
    for value in ("Bearer s3cret-token", "bearer s3cret-token"):
        response = client.get("/metrics", headers={"Authorization": value})
        assert response.status_code == 200
        assert b"springhook_deliveries_open" in response.content


def test_metrics_are_open_without_a_token(client, db, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 200


ROOT = Path(__file__).resolve().parents[2]
METRIC_NAME = re.compile(r"`(springhook_[a-z0-9_]+)(?:\{([a-z_, ]*)\})?`")


def served_metrics(client) -> dict[str, set[str]]:
    """{family name: label names} of what /metrics serves, with a webhook in every state."""
    Webhook.objects.create(name="One", url="https://one.example/")
    DispatcherHeartbeat.objects.create(pk=1, ticked_at=timezone.now())
    text = client.get("/metrics").content.decode()
    served = {}
    for family in text_string_to_metric_families(text):
        labels = {name for sample in family.samples for name in sample.labels} - {"le"}
        served[family.name] = labels
    return served


def metrics_paragraphs(path: Path) -> list[str]:
    """The paragraphs (and table rows) of a Markdown page that are about /metrics."""
    text = path.read_text()
    blocks = re.split(r"\n\s*\n", text)
    return [block for block in blocks if "/metrics" in block or "| `springhook_" in block]


def test_every_metric_the_docs_name_is_served_with_its_labels(client, db):
    served = served_metrics(client)
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    named = 0
    for page in pages:
        for block in metrics_paragraphs(page):
            for name, labels in METRIC_NAME.findall(block):
                named += 1
                assert name in served, f"{page.name} names {name}, which /metrics does not serve"
                for label in filter(None, (part.strip() for part in labels.split(","))):
                    assert label in served[name], f"{page.name}: {name} has no label {label}"
    assert named >= len(served)


def test_the_operations_table_lists_exactly_the_served_metrics(client, db):
    served = served_metrics(client)
    table = {}
    for line in (ROOT / "docs" / "operations.md").read_text().splitlines():
        row = re.match(r"^\| `(springhook_[a-z0-9_]+)` \|([^|]*)\|", line)
        if row:
            table[row.group(1)] = set(re.findall(r"`([a-z_]+)`", row.group(2)))
    assert table == served
