"""Retention: accepted deliveries older than WEBHOOK_RETENTION_DAYS go, in small batches,
with their attempts; pending and failing ones never, however old."""

from datetime import timedelta

import pytest
from django.utils import timezone

from deliveries.dispatcher import Dispatcher
from deliveries.models import Delivery, DeliveryAttempt
from deliveries.services import deliveries_prune
from deliveries.tasks import deliveries_prune_task
from springhook.celery import app
from webhooks.models import Webhook


def delivery(webhook, name, *, state, days_ago, attempts=2):
    at = timezone.now() - timedelta(days=days_ago)
    made = Delivery.objects.create(
        webhook=webhook, message_id=name, payload='{"changes":[]}', entry_count=0, state=state,
        delivered_at=at if state == "delivered" else None,
    )
    Delivery.objects.filter(pk=made.pk).update(created_at=at - timedelta(minutes=1))
    for number in range(1, attempts + 1):
        DeliveryAttempt.objects.create(delivery=made, number=number, started_at=at,
                                       duration=0.1, accepted=number == attempts)
    return made


def history_make(settings) -> list[Webhook]:
    settings.WEBHOOK_RETENTION_DAYS = 30
    hooks = [Webhook.objects.create(name=f"W{i}", url=f"https://w{i}.example/") for i in range(3)]
    for index in range(7):
        delivery(hooks[0], f"old_{index}", state="delivered", days_ago=31 + index)
    delivery(hooks[0], "recent", state="delivered", days_ago=29)
    delivery(hooks[1], "old_failing", state="failing", days_ago=90)
    delivery(hooks[2], "old_pending", state="pending", days_ago=90)
    return hooks


@pytest.fixture
def aged(db, settings):
    return history_make(settings)


def test_prune_removes_only_old_accepted_deliveries_and_their_attempts(aged):
    assert deliveries_prune(batch_size=3) == 7
    assert set(Delivery.objects.values_list("message_id", flat=True)) == {
        "recent", "old_failing", "old_pending"
    }
    assert DeliveryAttempt.objects.count() == 6
    assert not DeliveryAttempt.objects.filter(delivery__message_id__startswith="old_").exclude(
        delivery__message_id__in=["old_failing", "old_pending"]
    ).exists()
    assert deliveries_prune() == 0


def test_prune_stops_at_its_time_budget_and_a_later_run_continues(aged):
    assert deliveries_prune(batch_size=2, time_budget=0) == 2, "one batch, then the budget"
    assert deliveries_prune(batch_size=2) == 5


def test_an_old_delivery_accepted_recently_is_kept(aged, settings):
    kept = delivery(aged[1], "late", state="delivered", days_ago=1)
    Delivery.objects.filter(pk=kept.pk).update(created_at=timezone.now() - timedelta(days=60))
    deliveries_prune()
    assert Delivery.objects.filter(message_id="late").exists()


def test_the_celery_task_prunes_and_beat_schedules_it(aged):
    assert deliveries_prune_task.apply().get() == 7
    app.loader.import_default_modules()
    schedule = {entry["task"] for entry in app.conf.beat_schedule.values()}
    assert "deliveries.prune" in schedule


def test_the_embedded_dispatcher_prunes_at_its_first_tick(transactional_db, settings):
    # transactional: the tick closes its connection when done, as in production.
    history_make(settings)
    dispatcher = Dispatcher(sends_in_flight=1, tick_seconds=1)
    dispatcher.tick()
    assert not Delivery.objects.filter(message_id__startswith="old_", state="delivered").exists()
    assert dispatcher.periodic.next_run_at["prune"] > 0
