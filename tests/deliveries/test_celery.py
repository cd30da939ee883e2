"""A real Celery worker and beat, on PostgreSQL and Redis, deliver a saved training."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
import standardwebhooks
from django.db import connection

from catalog.models import Training
from webhooks.models import Webhook

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("REDIS_TEST_URL", "redis://127.0.0.1:6379/15")


def redis_available() -> bool:
    try:
        return redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError:
        return False


@pytest.fixture
def celery_env(tmp_path) -> dict[str, str]:
    if not redis_available():
        pytest.skip(f"needs Redis at {REDIS_URL} (REDIS_TEST_URL)")
    redis.Redis.from_url(REDIS_URL).flushdb()
    settings = connection.settings_dict
    database_url = (
        f"postgres://{settings['USER']}@{settings['HOST'] or '127.0.0.1'}:"
        f"{settings['PORT'] or 5432}/{settings['NAME']}"
    )
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": REDIS_URL,
        "WEBHOOK_BUNDLE_DELAY": "1",
        "WEBHOOK_ALLOW_PRIVATE_URLS": "1",
        "WEBHOOK_TICK_SECONDS": "0.5",
        "API_BASE_URL": "https://api.example.test",
        "CELERY_BEAT_SCHEDULE_FILE": str(tmp_path / "beat-schedule"),
    }


def start(env: dict[str, str], *args: str, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "springhook", *args],
        cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, 15)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_celery_worker_and_beat_deliver_a_saved_training(celery_env, partner, institute, tmp_path):
    webhook = Webhook.objects.create(name="Partner", url=partner.url)
    worker = start(
        celery_env, "worker", "-c", "2", "--without-gossip", "--without-mingle",
        "-l", "info", log=tmp_path / "worker.log",
    )
    beat = start(
        celery_env, "beat", "-l", "info", "-s", celery_env["CELERY_BEAT_SCHEDULE_FILE"],
        log=tmp_path / "beat.log",
    )
    try:
        time.sleep(3)  # let both connect to the broker before the clock starts
        assert worker.poll() is None, (tmp_path / "worker.log").read_text()
        assert beat.poll() is None, (tmp_path / "beat.log").read_text()
        saved_at = time.time()
        training = Training.objects.create(institute=institute, reference="R", name="Celery")
        try:
            (request, *_) = partner.wait_for(1, timeout=15)
        except AssertionError:
            print((tmp_path / "worker.log").read_text()[-4000:])
            print((tmp_path / "beat.log").read_text()[-2000:])
            raise
        assert request.at - saved_at < 3.0
        standardwebhooks.Webhook(webhook.secret).verify(request.body, request.headers)
        ids = [(entry["object"], entry["id"]) for entry in request.json["changes"]]
        assert ("training", training.pk) in ids
    finally:
        stop(beat)
        stop(worker)
