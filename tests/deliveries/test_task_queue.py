"""The dispatch tick queues each due webhook in at most one send task (deliveries/tasks.py),
many webhooks per task.

A due webhook stays due until its task runs; the tick must not queue another task for
it every tick, or a backlog floods the broker with tasks that expire unrun. Real parts:
a private redis-server as the broker, the real Celery app publishing to it.
"""

import base64
import json

import pytest
import redis

from deliveries import tasks
from springhook.celery import app
from tests.deliveries.helpers import record
from tests.support.cluster import RedisServer, redis_server_available
from webhooks.models import Webhook

pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(not redis_server_available(), reason="needs redis-server"),
]


@pytest.fixture
def broker(tmp_path, settings):
    """The Celery app and the tasks publish to a private Redis for this test."""
    with RedisServer(tmp_path / "redis") as server:
        settings.CELERY_BROKER_URL = server.url
        saved_url, saved_pool = app.conf.broker_url, app._pool
        app.conf.broker_url, app._pool = server.url, None
        app.amqp._producer_pool = None  # it holds connections of the pool made before
        tasks._broker.cache_clear()
        try:
            yield redis.Redis.from_url(server.url)
        finally:
            if app._pool is not None:
                app._pool.force_close_all()
            app.conf.broker_url, app._pool = saved_url, saved_pool
            app.amqp._producer_pool = None
            tasks._broker.cache_clear()


def queued_tasks(client: redis.Redis) -> list[list[int]]:
    """The webhook ids of each queued send task."""
    messages = [json.loads(raw) for raw in client.lrange("celery", 0, -1)]
    return [json.loads(_body(message))[0][0] for message in messages]


def queued_webhook_ids(client: redis.Redis) -> list[int]:
    return sorted(webhook_id for task in queued_tasks(client) for webhook_id in task)


def _body(message: dict) -> str:
    return base64.b64decode(message["body"]).decode()


@pytest.mark.django_db
def test_a_due_webhook_has_at_most_one_queued_task(broker, fast_delivery, partner):
    webhooks = [Webhook.objects.create(name=f"P{n}", url=partner.url) for n in range(3)]
    record("update", "training", 1)

    tasks.dispatch_tick_task()
    tasks.dispatch_tick_task()
    tasks.dispatch_tick_task()

    # One task carries the three webhooks' work.
    assert queued_tasks(broker) == [sorted(webhook.pk for webhook in webhooks)]
    assert broker.llen("dispatch") == 0  # ticks go to their own queue, from beat

    # Its task starting clears the marks: work arriving later is queued again.
    assert tasks.deliveries_send_task([webhooks[0].pk]) == 1
    assert len(partner.received) == 1
    record("update", "training", 2)
    tasks.dispatch_tick_task()
    assert queued_webhook_ids(broker) == sorted([webhooks[0].pk, *[w.pk for w in webhooks]])


def test_the_dispatch_tick_has_its_own_queue_that_plain_workers_consume():
    assert app.amqp.router.route({}, "deliveries.dispatch_tick")["queue"].name == "dispatch"
    assert app.amqp.router.route({}, "deliveries.send")["queue"].name == "celery"
    # A worker started without -Q consumes every queue declared here.
    assert {"celery", "dispatch"} <= set(app.amqp.queues)


@pytest.mark.django_db
def test_a_tick_shares_the_due_webhooks_evenly_among_as_few_tasks_as_it_may(
    broker, fast_delivery, partner, monkeypatch
):
    monkeypatch.setattr(tasks, "WEBHOOKS_PER_TASK", 20)
    webhooks = [Webhook.objects.create(name=f"P{n}", url=partner.url) for n in range(45)]
    record("update", "training", 1)

    tasks.dispatch_tick_task()

    # Three tasks (20 at most each), of 15: not 20, 20 and a remainder of 5.
    sizes = sorted(len(task) for task in queued_tasks(broker))
    assert sizes == [15, 15, 15]
    assert queued_webhook_ids(broker) == sorted(webhook.pk for webhook in webhooks)
