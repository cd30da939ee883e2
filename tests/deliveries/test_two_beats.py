"""Two Celery beats started by mistake send nothing twice (exactly one beat is
the rule, but a second one must not break the guarantees).

Real processes on PostgreSQL and a private Redis: one worker with four pool processes
and two beats ticking every 0.2 s, while this test records a steady stream of changes.
Every change is for an object of its own, so nothing coalesces and the check is exact:
each webhook receives every change once, in order, and each batch (webhook-id) once.
"""

import json
import time
from collections import Counter
from urllib.parse import quote

import pytest
from django.db import connection

from changes.services import change_record
from deliveries.models import Delivery
from tests.support.cluster import Cluster, RedisServer, redis_server_available
from tests.support.fast_partner import FastPartner
from webhooks.models import Webhook

pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.skipif(not redis_server_available(), reason="needs redis-server"),
]

WEBHOOKS = 20
STREAM_SECONDS = 15


def database_url() -> str:
    """The URL of the database this test runs on (the test database), for subprocesses."""
    db = connection.settings_dict
    password = f":{quote(db['PASSWORD'], safe='')}" if db["PASSWORD"] else ""
    return (
        f"postgres://{quote(db['USER'] or '', safe='')}{password}@{db['HOST'] or '127.0.0.1'}"
        f":{db['PORT'] or 5432}/{db['NAME']}"
    )


def received_ids(request) -> list[int]:
    return [entry["id"] for entry in json.loads(request.body)["changes"]]


@pytest.mark.django_db(transaction=True)
def test_two_beats_cause_no_duplicate_send(tmp_path, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_URLS = True
    with FastPartner(answer_delay=0.02) as partner, RedisServer(tmp_path / "redis") as broker:
        for number in range(WEBHOOKS):
            Webhook.objects.create(name=f"Partner {number}", url=f"{partner.url}/hook/{number}")
        environment = {
            "DJANGO_SETTINGS_MODULE": "springhook.settings",
            "DATABASE_URL": database_url(),
            "CELERY_BROKER_URL": broker.url,
            "WEBHOOK_ALLOW_PRIVATE_URLS": "1",
            "WEBHOOK_BUNDLE_DELAY": "0.5",
            "WEBHOOK_TICK_SECONDS": "0.2",
        }
        with Cluster(environment=environment, log_dir=tmp_path / "logs") as cluster:
            cluster.worker("worker", concurrency=4)
            cluster.beat("beat-1")
            cluster.beat("beat-2")

            recorded = 0
            stream_ends = time.monotonic() + STREAM_SECONDS
            while time.monotonic() < stream_ends:
                recorded += 1
                change_record(object_kind="training", object_id=recorded, action="update")
                time.sleep(0.05)

            expected = list(range(1, recorded + 1))
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                entries = sum(len(received_ids(request)) for request in partner.requests)
                if entries >= WEBHOOKS * recorded:
                    break
                time.sleep(0.5)
            time.sleep(1)  # a duplicate, if any, would arrive now
            ticks = {name: cluster.log(name).count("Sending due task") for name in ("beat-1",
                                                                                   "beat-2")}
        requests = partner.requests
        in_flight_peak = partner.in_flight_peak

    assert all(count >= STREAM_SECONDS for count in ticks.values()), ticks  # both beats ticked
    sent = Counter(request.webhook_id for request in requests)
    assert sent and max(sent.values()) == 1, [id_ for id_, n in sent.items() if n > 1]
    by_webhook: dict[str, list[int]] = {}
    for request in requests:  # in arrival order
        by_webhook.setdefault(request.path, []).extend(received_ids(request))
    assert len(by_webhook) == WEBHOOKS
    for path, ids in by_webhook.items():
        assert ids == expected, f"{path}: {len(ids)} entries, first differing order or loss"
    assert set(in_flight_peak.values()) == {1}
    delivered = Delivery.objects.filter(state=Delivery.State.DELIVERED)
    assert sorted(delivered.values_list("message_id", flat=True)) == sorted(sent)
    assert len(sent) > 2 * WEBHOOKS  # several batches per webhook, not one big one
