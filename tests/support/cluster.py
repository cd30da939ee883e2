"""Real Celery processes for benchmarks and tests: a private Redis, workers and beats.

Each process is started the way production starts it (`celery -A springhook worker`,
`celery -A springhook beat`), with the environment given, and writes its log to a file
of its own, so that a run can be read afterwards and checked (for example that two beats
really both ticked). :meth:`Cluster.stop` ends every process it started, and only those.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import redis

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def redis_server_available() -> bool:
    return shutil.which("redis-server") is not None


class RedisServer:
    """A throwaway redis-server on a free port, keeping nothing on disk."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        client = redis.Redis(host="127.0.0.1", port=self.port)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                return self
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


class Cluster:
    """Celery workers and beats of the `springhook` app, sharing one environment."""

    def __init__(self, *, environment: dict[str, str], log_dir: Path) -> None:
        self.environment = {**os.environ, **environment, "PYTHONUNBUFFERED": "1"}
        self.log_dir = log_dir
        self.processes: dict[str, subprocess.Popen] = {}

    def log(self, name: str) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _start(self, name: str, arguments: list[str]) -> subprocess.Popen:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_dir / f"{name}.log", "wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "springhook", *arguments],
                cwd=ROOT,
                env=self.environment,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own process group, so that a worker that ignores SIGTERM is killed
                # together with its pool's children.
                start_new_session=True,
            )
        self.processes[name] = process
        return process

    def worker(self, name: str, *, concurrency: int) -> None:
        """Start a worker with `concurrency` prefork child processes; wait until ready."""
        self._start(
            name,
            ["worker", "-n", f"{name}@%h", "--pool", "prefork", "-c", str(concurrency),
             "--loglevel", "INFO", "--without-gossip", "--without-mingle"],
        )
        self._wait_for(name, "ready.")

    def beat(self, name: str, *, loglevel: str = "DEBUG") -> None:
        """Start a beat with a schedule file of its own; wait until it ticks.

        At DEBUG beat logs each task it sends ("Sending due task"), which tells that it
        ticks; at INFO it logs nothing after its banner, so only that is waited for."""
        schedule = self.log_dir / f"{name}-schedule"
        self._start(name, ["beat", "--schedule", str(schedule), "--loglevel", loglevel])
        self._wait_for(name, "Sending due task" if loglevel == "DEBUG" else "LocalTime")

    def _wait_for(self, name: str, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log(name):
            if self.processes[name].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start:\n{self.log(name)[-3000:]}")
            time.sleep(0.1)

    def stop(self, timeout: float = 30) -> None:
        """Warm shutdown (SIGTERM: running tasks finish) of every process started here."""
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.processes = {}

    def __enter__(self) -> Cluster:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
