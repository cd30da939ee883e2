"""Every process logs one logfmt line per record (springhook/logs.py), read here by an
independent logfmt parser; an idle Celery worker and beat write nothing at INFO."""

import logging
import sys
import time

import logfmtkv
import pytest

from deliveries.models import Delivery, DispatcherHeartbeat
from springhook.logs import LogfmtFormatter
from tests.deliveries.helpers import record
from tests.support.cluster import Cluster, RedisServer, redis_server_available
from tests.support.partner import status
from tests.support.processes import current_database_url
from webhooks.models import Webhook


def read_whole(line: str) -> dict[str, str]:
    """The fields of a logfmt line, read as go-logfmt reads it (strict, no repeated key);
    fails on any word that is not a key=value pair."""
    fields = logfmtkv.parse(line, strict=True, duplicates="error")
    bare = [key for key, value in fields.items() if value is True]
    assert not bare, f"not key=value: {bare} in {line!r}"
    assert {"time", "level", "logger", "event"} <= fields.keys(), line
    return fields


def formatted(message: str, *args, exc_info=None) -> str:
    record = logging.LogRecord("springhook.test", logging.WARNING, __file__, 1, message, args,
                               exc_info)
    return LogfmtFormatter().format(record)


def test_structured_plain_and_failing_records_are_each_one_logfmt_line():
    line = formatted("event=attempt webhook=%s status=%s error=-", 3, 200)
    fields = read_whole(line)
    assert fields["event"] == "attempt" and fields["webhook"] == "3"
    assert fields["level"] == "warning" and fields["logger"] == "springhook.test"
    assert fields["time"].endswith("Z")

    fields = read_whole(formatted('dispatcher started (tick %.2fs) "quoted" a=b', 1.0))
    assert fields["event"] == "log"
    assert fields["msg"] == 'dispatcher started (tick 1.00s) "quoted" a=b'

    try:
        raise ValueError("boom")
    except ValueError:
        exc_info = sys.exc_info()
    for message in ("delivering webhook 3 failed", "event=attempt webhook=3"):
        line = formatted(message, exc_info=exc_info)
        assert "\n" not in line
        assert "ValueError: boom" in read_whole(line)["exc"]


def lines_after(text: str, marker: str) -> list[str]:
    """The lines after the first one containing `marker` (Celery's banner comes before)."""
    lines = text.splitlines()
    start = next(index for index, line in enumerate(lines) if marker in line)
    return lines[start + 1:]


def wait_until(condition, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"no {what} after {timeout}s"
        time.sleep(0.1)


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.skipif(not redis_server_available(), reason="needs redis-server")
@pytest.mark.django_db(transaction=True)
def test_idle_worker_and_beat_are_quiet_and_every_line_is_logfmt(tmp_path, partner):
    environment = {
        "DATABASE_URL": current_database_url(),
        "WEBHOOK_ALLOW_PRIVATE_URLS": "1",
        "WEBHOOK_BUNDLE_DELAY": "0",
        "WEBHOOK_TICK_SECONDS": "0.2",
        "WEBHOOK_RETRY_SCHEDULE": "0.5",
        "LOG_LEVEL": "INFO",
    }
    with RedisServer(tmp_path / "redis") as broker, Cluster(
        environment={**environment, "CELERY_BROKER_URL": broker.url}, log_dir=tmp_path / "logs",
    ) as cluster:
        cluster.worker("worker", concurrency=1)
        cluster.beat("beat", loglevel="INFO")
        wait_until(lambda: DispatcherHeartbeat.objects.exists(), timeout=60, what="tick")
        time.sleep(1)
        before = {name: len(cluster.log(name).splitlines()) for name in ("worker", "beat")}
        time.sleep(6)  # 30 ticks: at INFO, Celery's own lines made 90 here
        after = {name: len(cluster.log(name).splitlines()) for name in ("worker", "beat")}
        assert after == before, {n: cluster.log(n).splitlines()[before[n]:] for n in before}

        webhook = Webhook.objects.create(name="Partner", url=partner.url)
        partner.then(status(500))
        record("update", "training", 7, 1)
        partner.wait_for(2, timeout=30)
        wait_until(
            lambda: Delivery.objects.filter(webhook=webhook, state="delivered").exists()
            and "webhook_recovered" in cluster.log("worker"),
            timeout=30, what="accepted delivery",
        )
        worker_log = cluster.log("worker")
    events = [read_whole(line) for line in lines_after(worker_log, "ready.")]
    attempts = [fields for fields in events if fields["event"] == "attempt"]
    assert [(a["status"], a["accepted"]) for a in attempts] == [("500", "false"), ("200", "true")]
    assert all(a["webhook"] == str(webhook.pk) and a["entries"] == "1" for a in attempts)
    assert attempts[0]["delivery"] == attempts[1]["delivery"]
    names = [fields["event"] for fields in events]
    assert "webhook_failing" in names and "webhook_recovered" in names
    assert {fields["logger"] for fields in events if fields["event"] == "attempt"} == {
        "springhook.deliveries"
    }
