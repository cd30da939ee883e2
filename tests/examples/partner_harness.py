"""Test harness for the reference partner receiver: a fake Trainings API, the receiver
as a subprocess, and Standard Webhooks signing."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from standardwebhooks import Webhook

ROOT = Path(__file__).resolve().parents[2]
RECEIVER = ROOT / "examples" / "partner" / "receiver.py"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
API_KEY = "test-api-key"


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(0.02)


def load_receiver_module() -> ModuleType:
    """The receiver loaded as a module, for ``mirror_snapshot`` (it is not a package)."""
    spec = importlib.util.spec_from_file_location("partner_receiver", RECEIVER)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- A fake Trainings API ----------------------------------------------------------------


class FakeTrainingsApi:
    """The Trainings API's three GET endpoints, served from dicts in memory.

    ``gets`` counts answered GETs per path (query string included). Set ``fail_status``
    to make every request answer that status, e.g. 503 for an outage, and ``delay`` to
    make every answer take that many seconds.
    """

    def __init__(self, page_size: int = 2) -> None:
        self.page_size = page_size
        self.institutes: dict[int, str] = {}
        self.trainings: dict[int, dict[str, Any]] = {}
        self.gets: Counter[str] = Counter()
        self.fail_status: int | None = None
        # What GET /webhooks/<id> shows as the webhook's scope (webhook 1).
        self.scope: dict[str, Any] = {"institutes": None, "objects": ["institute", "training"]}
        self.delay = 0.0
        self.lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> FakeTrainingsApi:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # Catalogue content -----------------------------------------------------------------

    def add_institute(self, institute_id: int, name: str) -> None:
        self.institutes[institute_id] = name

    def add_training(self, training_id: int, institute_id: int, name: str) -> None:
        self.trainings[training_id] = {
            "institute": institute_id,
            "reference": f"r-{training_id}",
            "name": name,
        }

    def training_url(self, training_id: int) -> str:
        return f"{self.base_url}/trainings/{training_id}"

    def institute_url(self, institute_id: int) -> str:
        return f"{self.base_url}/institutes/{institute_id}"

    def _training_document(self, training_id: int) -> dict[str, Any]:
        training = self.trainings[training_id]
        return {
            "id": training_id,
            **training,
            "description": "",
            "price": "12.50",
            "created_at": "2025-01-01T00:00:00Z",
            "updated_at": "2025-01-01T00:00:00Z",
            "url": self.training_url(training_id),
        }

    def answer(self, path: str, query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        """Return (status, document) for a GET, as the real API would."""
        parts = path.strip("/").split("/")
        if parts == ["webhooks", "1"]:
            return 200, {"id": 1, "scope": self.scope}
        if parts in (["institutes"], ["trainings"]):
            return 200, self._list(parts[0], query)
        if len(parts) == 2 and parts[0] == "trainings" and parts[1].isdigit():
            if int(parts[1]) in self.trainings:
                return 200, self._training_document(int(parts[1]))
        elif parts[0] == "institutes" and len(parts) in (2, 3) and parts[1].isdigit():
            institute_id = int(parts[1])
            if institute_id in self.institutes and len(parts) == 2:
                return 200, {
                    "id": institute_id,
                    "name": self.institutes[institute_id],
                    "url": self.institute_url(institute_id),
                    "trainings_url": f"{self.institute_url(institute_id)}/trainings",
                }
            if institute_id in self.institutes and parts[2:] == ["trainings"]:
                return 200, self._trainings_page(institute_id, int(query.get("page", ["1"])[0]))
        return 404, {"error": "not_found", "message": f"{path} does not exist"}

    def _list(self, path: str, query: dict[str, list[str]]) -> dict[str, Any]:
        """GET /institutes (?id=…) or /trainings (?institute=…), all on one page."""
        if path == "institutes":
            wanted = {int(value) for value in query.get("id", [])}
            results = [
                {"id": i, "name": name, "url": self.institute_url(i)}
                for i, name in sorted(self.institutes.items()) if not wanted or i in wanted
            ]
        else:
            wanted = {int(value) for value in query.get("institute", [])}
            results = [
                self._training_document(t) for t, data in sorted(self.trainings.items())
                if not wanted or data["institute"] in wanted
            ]
        return {"count": len(results), "next": None, "previous": None, "results": results}

    def _trainings_page(self, institute_id: int, page: int) -> dict[str, Any]:
        ids = sorted(t for t, data in self.trainings.items() if data["institute"] == institute_id)
        start = (page - 1) * self.page_size
        list_url = f"{self.institute_url(institute_id)}/trainings"
        return {
            "count": len(ids),
            "next": f"{list_url}?page={page + 1}" if start + self.page_size < len(ids) else None,
            "previous": f"{list_url}?page={page - 1}" if page > 1 else None,
            "results": [self._training_document(t) for t in ids[start : start + self.page_size]],
        }

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                time.sleep(api.delay)
                url = urlsplit(self.path)
                with api.lock:
                    if api.fail_status is not None:
                        status, document = api.fail_status, {"error": "unavailable"}
                    elif self.headers.get("X-API-Key") != API_KEY:
                        status, document = 401, {"error": "unauthorized", "message": "bad key"}
                    else:
                        status, document = api.answer(url.path, parse_qs(url.query))
                        api.gets[self.path] += 1
                body = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


# --- The receiver as a real process ------------------------------------------------------


def signed_headers(
    body: bytes, msg_id: str, *, secret: str = SECRET, timestamp: datetime | None = None
) -> dict[str, str]:
    """Standard Webhooks headers for ``body``, signed with ``secret`` at ``timestamp``."""
    timestamp = timestamp or datetime.now(tz=UTC)
    signature = Webhook(secret).sign(msg_id, timestamp, body.decode())
    return {
        "Content-Type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": signature,
    }


class ReceiverProcess:
    """``examples/partner/receiver.py`` running in a subprocess on a free port."""

    def __init__(
        self, db_path: Path, log_path: Path, api: FakeTrainingsApi,
        options: tuple[str, ...] = (),
    ) -> None:
        self.db_path = db_path
        self.log_path = log_path
        self.api = api
        self.options = options
        self.url = ""
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ReceiverProcess:
        log_start = len(self.log())  # on a restart, only the new process's lines count
        # The log goes to a file: a pipe nobody reads would fill up and block the receiver.
        with self.log_path.open("ab") as log_file:
            self.process = subprocess.Popen(
                [sys.executable, str(RECEIVER), "--port", "0", "--db", str(self.db_path),
                 *self.options],
                env={**os.environ, "PARTNER_SECRET": SECRET, "PARTNER_API_KEY": API_KEY},
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        process = self.process

        def listening() -> re.Match[str] | None:
            if process.poll() is not None:
                pytest.fail(f"the receiver exited at startup:\n{self.log()[log_start:]}")
            return re.search(r"listening on (http://\S+)", self.log()[log_start:])

        self.url = wait_until(listening, what="the receiver to listen").group(1)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def post(self, changes: list[dict[str, Any]], msg_id: str, **sign: Any) -> requests.Response:
        body = json.dumps({"changes": changes}, separators=(",", ":")).encode()
        return requests.post(self.url, data=body, headers=signed_headers(body, msg_id, **sign))

    def inbox(self) -> int:
        return requests.get(f"{self.url}/healthz").json()["inbox"]

    def mirror(self) -> dict[str, Any]:
        return requests.get(f"{self.url}/mirror").json()
