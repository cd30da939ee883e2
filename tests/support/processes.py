"""Real processes for end-to-end tests: the server, the dispatcher, the reference receiver.

Each runs as its own subprocess with its output in a log file (a pipe nobody reads would
fill up and block it), and is pointed at the test database that pytest-django created.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

from django.db import connection

ROOT = Path(__file__).resolve().parents[2]
RECEIVER = ROOT / "examples" / "partner" / "receiver.py"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def current_database_url() -> str:
    """DATABASE_URL of the database this test runs on (the test database, not the real one).

    Other processes only see what the test has committed: use it with
    `django_db(transaction=True)`.
    """
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings['NAME']}"
    user = quote(settings.get("USER") or "", safe="")
    password = quote(settings.get("PASSWORD") or "", safe="")
    credentials = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = settings.get("HOST") or "127.0.0.1"
    port = settings.get("PORT") or 5432
    return f"postgres://{credentials}{host}:{port}/{settings['NAME']}"


class Service:
    """One subprocess, its log, and a clean stop."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.args = args
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> "Service":
        with self.log_path.open("ab") as log_file:
            self.process = subprocess.Popen(
                [sys.executable, *self.args],
                cwd=ROOT,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, pattern: str, timeout: float = 60) -> re.Match:
        deadline = time.monotonic() + timeout
        while True:
            match = re.search(pattern, self.log())
            if match:
                return match
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited at startup:\n{self.log()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: no {pattern!r} after {timeout}s:\n{self.log()}")
            time.sleep(0.1)

    def wait_listening(self, port: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    return
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited at startup:\n{self.log()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: port {port} not open after {timeout}s")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log().splitlines()[-lines:])


def server(*, port: int, env: dict[str, str], log_dir: Path) -> Service:
    return Service(
        "server", ["manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"], env, log_dir
    )


def dispatcher(*, env: dict[str, str], log_dir: Path) -> Service:
    return Service("dispatcher", ["manage.py", "run_dispatcher"], env, log_dir)


def receiver(
    *, secret: str, api_key: str, db_path: Path, log_dir: Path, name: str = "receiver",
    options: tuple[str, ...] = (),
) -> Service:
    return Service(
        name,
        [str(RECEIVER), "--port", "0", "--db", str(db_path), *options],
        {"PARTNER_SECRET": secret, "PARTNER_API_KEY": api_key},
        log_dir,
    )
