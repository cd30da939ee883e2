"""Every process logs one logfmt line per record (springhook/logs.py), read here by an
independent logfmt parser; an idle Celery worker and beat write nothing at INFO."""

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

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


def banner_skipped(text: str, last_banner_line: str) -> list[str]:
    """The lines after Celery's start-up banner (which ends with `last_banner_line`)."""
    lines = lines_after(text, last_banner_line)
    while lines and not lines[0].strip():
        lines.pop(0)
    return lines


@pytest.mark.slow
@pytest.mark.redis
@pytest.mark.skipif(not redis_server_available(), reason="needs redis-server")
@pytest.mark.django_db(transaction=True)
def test_a_worker_restarted_killed_and_stopped_writes_only_logfmt(tmp_path):
    """Beat queues ticks while no worker runs (each expires after a second); a worker then
    starts and discards them, loses its pool process to SIGKILL, and stops on SIGTERM.
    After the banner, every line of both is logfmt, and the discarded ticks are quiet."""
    environment = {"DATABASE_URL": current_database_url(), "WEBHOOK_TICK_SECONDS": "0.2",
                   "LOG_LEVEL": "INFO"}
    with RedisServer(tmp_path / "redis") as broker, Cluster(
        environment={**environment, "CELERY_BROKER_URL": broker.url}, log_dir=tmp_path / "logs",
    ) as cluster:
        cluster.beat("beat", loglevel="INFO")
        time.sleep(3)
        beat = cluster.processes.pop("beat")
        beat.send_signal(signal.SIGTERM)
        assert beat.wait(timeout=30) == 0
        time.sleep(1.5)  # every queued tick has expired
        cluster.worker("worker", concurrency=1)
        time.sleep(2)
        worker = cluster.processes["worker"]
        children = Path(f"/proc/{worker.pid}/task/{worker.pid}/children").read_text().split()
        os.kill(int(children[0]), signal.SIGKILL)
        wait_until(lambda: "exited with" in cluster.log("worker"), timeout=30,
                   what="the pool's report of its killed process")
    worker_lines = [read_whole(line)
                    for line in banner_skipped(cluster.log("worker"), "deliveries.send")]
    beat_lines = [read_whole(line) for line in banner_skipped(cluster.log("beat"), "maxinterval")]
    assert not [fields for fields in beat_lines if fields["level"] != "info"], beat_lines
    messages = [fields.get("msg", "") for fields in worker_lines]
    (killed,) = [fields for fields in worker_lines if "exited with" in fields.get("msg", "")]
    assert killed["level"] == "error" and "signal 9" in killed["msg"]
    assert "worker: Warm shutdown (MainProcess)" in messages
    assert not [message for message in messages if "Discarding" in message]


@pytest.mark.django_db(transaction=True)
def test_the_embedded_dispatcher_writes_only_logfmt(tmp_path):
    environment = {**os.environ, "DATABASE_URL": current_database_url(),
                   "WEBHOOK_TICK_SECONDS": "0.2", "LOG_LEVEL": "INFO", "PYTHONUNBUFFERED": "1"}
    environment.pop("CELERY_BROKER_URL", None)
    output = tmp_path / "dispatcher.log"
    with output.open("wb") as log:
        dispatcher = subprocess.Popen(
            [sys.executable, "manage.py", "run_dispatcher"], cwd=Path(__file__).parents[2],
            env=environment, stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: "dispatcher started" in output.read_text(), timeout=60,
                   what="the dispatcher's start")
        time.sleep(1)
    finally:
        dispatcher.send_signal(signal.SIGTERM)
        dispatcher.wait(timeout=30)
    lines = [read_whole(line) for line in output.read_text().splitlines()]
    assert "dispatcher started" in lines[0]["msg"]
    assert "dispatcher stopped" in lines[-1]["msg"]
