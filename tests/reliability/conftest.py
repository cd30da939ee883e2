"""Fixtures for the fault tests: real subprocesses (Celery worker and beat, the embedded
dispatcher) pointed at the test database, and servers of the test's own that it may stop."""

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection

from tests.support.faults import Process, RedisServer, django_env

# Short enough for quick tests, long enough for a loaded 2-core machine: an attempt ends
# within 3 s, a killed worker's lease runs out 1 + 3 + 2 = 6 s after its claim.
FAST_ENV = {
    "WEBHOOK_BUNDLE_DELAY": "0",
    "WEBHOOK_TIMEOUT": "3",
    "WEBHOOK_CONNECT_TIMEOUT": "1",
    "WEBHOOK_LEASE_MARGIN": "2",
    "WEBHOOK_RETRY_SCHEDULE": "1",
    "WEBHOOK_TICK_SECONDS": "0.5",
    "DATABASE_CONN_MAX_AGE": "0",
    "LOG_LEVEL": "INFO",
}


def database_url() -> str:
    """The URL of the database this test runs on, for its subprocesses."""
    db = connection.settings_dict
    assert connection.vendor == "postgresql", "subprocesses need a shared server database"
    user = db["USER"] or ""
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    host = db["HOST"] or "127.0.0.1"
    port = db["PORT"] or 5432
    return f"postgres://{user}{password}@{host}:{port}/{db['NAME']}"


class Processes:
    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[Process] = []

    def start(self, name: str, args: list[str], **env: str) -> Process:
        process = Process(name, args, env=django_env(**{**FAST_ENV, **env}),
                          log_dir=self.log_dir)
        self.started.append(process.start())
        return process

    def logs(self) -> str:
        return "\n".join(f"--- {p.name} ({p.log_path})\n{p.log()}" for p in self.started)


@pytest.fixture
def processes(transactional_db, tmp_path, request) -> Iterator[Processes]:
    started = Processes(tmp_path)
    yield started
    for process in reversed(started.started):
        process.stop()
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(started.logs())


@pytest.fixture
def redis_server(tmp_path) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.skip("needs redis-server (apt-get install redis-server)")
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    # Lets the fixtures above see whether the test failed, to print the processes' logs.
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
