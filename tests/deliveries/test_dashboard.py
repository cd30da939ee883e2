"""The health dashboard and the per-webhook health page: what they show, and that the number
of queries does not grow with the number of webhooks or deliveries."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from deliveries.charts import hourly_chart_svg
from deliveries.models import Delivery, DeliveryAttempt, PendingEntry
from deliveries.selectors import attempt_stats_by_webhook, attempts_per_hour, webhooks_health
from webhooks.models import Webhook
from webhooks.services import webhook_pause


def history(webhook, *, now, accepted: int, failed: int, hours_ago: float, duration=0.1):
    """Deliveries with one attempt each, `hours_ago` hours before `now`."""
    at = now - timedelta(hours=hours_ago)
    for index in range(accepted + failed):
        ok = index < accepted
        delivery = Delivery.objects.create(
            webhook=webhook, message_id=f"msg_{webhook.pk}_{hours_ago}_{index}",
            payload='{"changes":[]}', entry_count=0,
            state="delivered" if ok else "failing",
            delivered_at=at if ok else None, attempt_count=1,
        )
        if not ok:
            # only one open batch per webhook: close the failed ones as later accepted
            Delivery.objects.filter(pk=delivery.pk).update(state="delivered", delivered_at=at)
        DeliveryAttempt.objects.create(
            delivery=delivery, number=1, started_at=at, duration=duration * (index + 1),
            accepted=ok, status_code=200 if ok else 500, error_kind="" if ok else "http_status",
        )


@pytest.fixture
def webhooks(db):
    return [
        Webhook.objects.create(name=f"Partner {index:02}", url=f"https://p{index}.example/hook")
        for index in range(3)
    ]


def test_stats_count_success_and_the_p95_duration(webhooks):
    now = timezone.now()
    history(webhooks[0], now=now, accepted=19, failed=1, hours_ago=2, duration=0.01)
    history(webhooks[0], now=now, accepted=5, failed=0, hours_ago=30)  # outside 24 h
    stats = attempt_stats_by_webhook(since=now - timedelta(hours=24), until=now)
    assert stats[webhooks[0].pk].attempts == 20
    assert stats[webhooks[0].pk].accepted == 19
    assert stats[webhooks[0].pk].success_rate == pytest.approx(0.95)
    # durations 0.01 … 0.20: the nearest-rank 95th percentile is the 19th, 0.19
    assert stats[webhooks[0].pk].p95_duration == pytest.approx(0.19)
    assert webhooks[1].pk not in stats


def test_hourly_buckets_cover_48_hours_including_empty_ones(webhooks):
    now = timezone.now()
    history(webhooks[0], now=now, accepted=3, failed=2, hours_ago=0)
    history(webhooks[1], now=now, accepted=1, failed=0, hours_ago=47)
    history(webhooks[1], now=now, accepted=4, failed=0, hours_ago=49)  # outside
    buckets = attempts_per_hour(now=now, hours=48)
    assert len(buckets) == 48
    assert (buckets[-1].accepted, buckets[-1].failed) == (3, 2)
    assert (buckets[0].accepted, buckets[0].failed) == (1, 0)
    assert sum(bucket.accepted + bucket.failed for bucket in buckets) == 6
    mine = attempts_per_hour(now=now, hours=48, webhook_id=webhooks[1].pk)
    assert sum(bucket.accepted for bucket in mine) == 1


def test_the_chart_is_an_svg_with_a_bar_per_nonempty_series(webhooks):
    now = timezone.now()
    history(webhooks[0], now=now, accepted=3, failed=2, hours_ago=0)
    svg = str(hourly_chart_svg(attempts_per_hour(now=now, hours=48)))
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert svg.count("<rect") == 2
    assert "3 accepted, 2 failed" in svg
    assert "http" not in svg.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_health_rows_show_state_backlog_and_open_batch(webhooks):
    now = timezone.now()
    first, second, third = webhooks
    PendingEntry.objects.create(
        webhook=first, object_kind="training", object_id=1, action="update",
        first_change_at=now - timedelta(minutes=5), last_change_at=now, seq=1,
    )
    PendingEntry.objects.create(
        webhook=first, object_kind="training", object_id=2, action="update",
        first_change_at=now - timedelta(minutes=1), last_change_at=now, seq=2,
    )
    Webhook.objects.filter(pk=second.pk).update(failing_since=now - timedelta(hours=2))
    Delivery.objects.create(webhook=second, message_id="msg_open", payload="{}", entry_count=3,
                            state="failing", attempt_count=4)
    webhook_pause(webhook_id=third.pk, reason="410 Gone")
    rows = {row.webhook.pk: row for row in webhooks_health(now=now)}
    assert rows[first.pk].state == "healthy" and rows[first.pk].pending_entries == 2
    assert rows[first.pk].oldest_pending_age(now) == timedelta(minutes=5)
    assert rows[second.pk].state == "failing"
    assert rows[second.pk].open_delivery.message_id == "msg_open"
    assert rows[third.pk].state == "paused"


def test_the_dashboard_page_shows_every_webhook(admin_client, webhooks):
    now = timezone.now()
    history(webhooks[0], now=now, accepted=2, failed=1, hours_ago=1)
    webhook_pause(webhook_id=webhooks[2].pk, reason="Paused by maintenance.")
    page = admin_client.get(reverse("admin:webhooks_webhook_dashboard")).content.decode()
    for webhook in webhooks:
        assert webhook.name in page
        assert reverse("admin:webhooks_webhook_health", args=[webhook.pk]) in page
    assert "paused: Paused by maintenance." in page
    assert "67% of 3" in page
    assert "<svg" in page


def test_the_webhook_health_page_shows_recent_deliveries(admin_client, webhooks):
    now = timezone.now()
    history(webhooks[0], now=now, accepted=2, failed=0, hours_ago=1)
    page = admin_client.get(
        reverse("admin:webhooks_webhook_health", args=[webhooks[0].pk])
    ).content.decode()
    assert f"msg_{webhooks[0].pk}_1_0" in page and f"msg_{webhooks[0].pk}_1_1" in page
    assert "<svg" in page and "100% of 2 attempts" in page


def test_the_pages_make_a_constant_number_of_queries(
    admin_client, django_assert_max_num_queries, webhooks
):
    now = timezone.now()
    dashboard = reverse("admin:webhooks_webhook_dashboard")
    detail = reverse("admin:webhooks_webhook_health", args=[webhooks[0].pk])
    admin_client.get(dashboard)  # session and user caches warm
    for index in range(30):
        webhook = Webhook.objects.create(name=f"More {index}", url=f"https://m{index}.example/")
        history(webhook, now=now, accepted=2, failed=1, hours_ago=index)
        Delivery.objects.create(webhook=webhook, message_id=f"open_{index}", payload="{}",
                                entry_count=1, state="failing", attempt_count=1)
    history(webhooks[0], now=now, accepted=20, failed=5, hours_ago=3)
    # session, user, webhooks, pending, open batches, 24 h stats (+1 on SQLite), chart, tick
    with django_assert_max_num_queries(10):
        response = admin_client.get(dashboard)
    assert response.status_code == 200 and "More 29" in response.content.decode()
    with django_assert_max_num_queries(12):
        assert admin_client.get(detail).status_code == 200


def test_every_attempt_knows_its_webhook(db, fast_delivery):
    from tests.deliveries.helpers import next_batch, record

    webhook = Webhook.objects.create(name="Partner", url="https://p.example/")
    record("update", "training", 1, 1)
    next_batch(webhook)
    assert DeliveryAttempt.objects.get().webhook_id == webhook.pk


def test_the_error_kind_filter_needs_no_query_over_the_history(admin_client, webhooks):
    Delivery.objects.create(webhook=webhooks[0], message_id="msg_timeout", payload="{}",
                            entry_count=1, state="failing", last_error_kind="timeout")
    Delivery.objects.create(webhook=webhooks[1], message_id="msg_dns", payload="{}",
                            entry_count=1, state="failing", last_error_kind="dns")
    page = admin_client.get(reverse("admin:deliveries_delivery_changelist"),
                            {"last_error_kind": "timeout"}).content.decode()
    assert "msg_timeout" in page and "msg_dns" not in page
