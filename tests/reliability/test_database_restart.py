"""PostgreSQL restarted while the embedded dispatcher is sending: it recovers by itself
and every committed change arrives. A throwaway cluster of the test's own (initdb on a
free port), never the machine's shared server."""

import http.client
import json
import subprocess
import sys
import time

import pytest

from tests.reliability.conftest import FAST_ENV, Processes
from tests.support.faults import (
    ROOT,
    PostgresCluster,
    Process,
    django_env,
    free_port,
    manage,
    postgres_available,
    wait_until,
)
from tests.support.partner import Behaviour

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.fixture
def cluster():
    reason = postgres_available()
    if reason:
        pytest.skip(reason)
    server = PostgresCluster().create()
    yield server
    server.destroy()


def test_the_dispatcher_recovers_from_a_database_restart(cluster, partner, tmp_path):
    env = django_env(**{**FAST_ENV, "DATABASE_URL": cluster.url, "WEBHOOK_BATCH_SIZE": "5"})
    migrate = Process("migrate", manage("migrate", "--noinput"), env=env, log_dir=tmp_path)
    assert migrate.start().popen.wait(timeout=120) == 0, migrate.log()

    partner.default = Behaviour(hang=0.3)  # slow answers: sends are in flight at the restart
    processes = Processes(tmp_path)
    writer = Process(
        "writer",
        [sys.executable, "-m", "tests.support.writer", "--first", "1", "--last", "60",
         "--every", "0.12", "--webhook", partner.url_for("/restart")],
        env=env, log_dir=tmp_path,
    )
    try:
        dispatcher = processes.start(
            "dispatcher", manage("run_dispatcher", "--sends-in-flight", "4"),
            DATABASE_URL=cluster.url, WEBHOOK_BATCH_SIZE="5",
        )
        writer.start()
        partner.wait_for(2, timeout=60)

        cluster.stop("fast")  # drops every connection, like a restart or failover does
        time.sleep(3)
        cluster.start()

        assert writer.popen.wait(timeout=120) == 0, writer.log()
        committed = set(json.loads(writer.log().strip().splitlines()[-1])["committed"])
        assert committed == set(range(1, 61))

        def delivered() -> set[int]:
            return {
                entry["id"] for request in list(partner.received)
                for entry in request.json["changes"]
            }

        wait_until(lambda: committed <= delivered(), timeout=120,
                   what="every committed change to arrive")
        assert dispatcher.alive, "the dispatcher recovered by itself"
        assert "dispatch tick failed" in dispatcher.log() or "failed" in dispatcher.log(), (
            "the restart was noticed (else the test did not test a restart)"
        )
    finally:
        print(processes.logs(), writer.log())  # shown when the test fails
        writer.stop()
        for process in processes.started:
            process.stop()


def test_the_web_answers_no_500_after_a_database_restart(cluster, tmp_path):
    """gunicorn (two workers, connections kept for DATABASE_CONN_MAX_AGE=60 as in
    production) serves API requests that read the database; PostgreSQL restarts between
    two series of requests. Each worker's kept connection is dead after the restart: the
    health check before reuse replaces it, so no request answers 500."""
    env = django_env(DATABASE_URL=cluster.url, DATABASE_CONN_MAX_AGE="60", LOG_LEVEL="INFO")
    assert subprocess.run(manage("migrate", "--noinput", "-v", "0"), cwd=ROOT, env=env,
                          capture_output=True).returncode == 0
    created = subprocess.run(manage("create_api_key", "restart test"), cwd=ROOT, env=env,
                             capture_output=True, text=True, check=True)
    api_key = created.stdout.strip().splitlines()[-1]
    port = free_port()
    web = Process("web", [sys.executable, "-m", "gunicorn", "springhook.wsgi"],
                  env={**env, "WEB_BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "2"},
                  log_dir=tmp_path)

    def answers(count: int) -> list[int]:
        statuses = []
        for _ in range(count):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            connection.request("GET", "/trainings", headers={"X-API-Key": api_key})
            statuses.append(connection.getresponse().status)
            connection.close()
        return statuses

    try:
        web.start()
        wait_until(lambda: web.log().count("Booting worker") >= 2, timeout=60,
                   what="two gunicorn workers")
        # Every worker opens (and keeps) its connection.
        assert set(answers(20)) == {200}, web.log()

        cluster.stop("fast")  # drops every connection, like a restart or failover does
        cluster.start()

        after = answers(20)
        assert after == [200] * 20, web.log()
    finally:
        web.stop()
    assert "level=error" not in web.log(), web.log()
