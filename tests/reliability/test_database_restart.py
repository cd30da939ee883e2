"""PostgreSQL restarted while the embedded dispatcher is sending: it recovers by itself
and every committed change arrives. A throwaway cluster of the test's own (initdb on a
free port), never the machine's shared server."""

import json
import sys
import time

import pytest

from tests.reliability.conftest import FAST_ENV, Processes
from tests.support.faults import (
    PostgresCluster,
    Process,
    django_env,
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
