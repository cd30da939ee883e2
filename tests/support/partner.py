"""A real HTTP server on 127.0.0.1 that plays the partner in tests.

Each request consumes the next scripted behaviour (default: 200). Behaviours are real
faults on a real socket: an error status, a hang past the timeout, a connection reset, a
redirect, a slow drip, a huge body.
"""

import json
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class Behaviour:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    hang: float = 0.0  # seconds to wait before answering
    reset: bool = False  # close the connection with RST instead of answering
    drip: float = 0.0  # seconds between single bytes of the answer
    body_size: int = 0  # stream this many bytes of body


def status(code: int, **headers: str) -> Behaviour:
    return Behaviour(status=code, headers=headers)


class Partner:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self.script: list[Behaviour] = []
        self.default = Behaviour()
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.stopped = threading.Event()
        partner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with partner.lock:
                    partner.in_flight += 1
                    partner.max_in_flight = max(partner.max_in_flight, partner.in_flight)
                    partner.received.append(
                        Received(self.path, dict(self.headers.items()), body, time.time())
                    )
                    behaviour = partner.script.pop(0) if partner.script else partner.default
                try:
                    partner._answer(self, behaviour)
                finally:
                    with partner.lock:
                        partner.in_flight -= 1

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address) -> None:
                pass  # the client hung up on a fault we provoked: expected, not news

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def start(self) -> "Partner":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopped.set()
        self.server.shutdown()
        self.server.server_close()

    def then(self, *behaviours: Behaviour) -> "Partner":
        with self.lock:
            self.script.extend(behaviours)
        return self

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.02)
        raise AssertionError(f"partner got {len(self.received)} requests, expected {count}")

    def _answer(self, handler: BaseHTTPRequestHandler, behaviour: Behaviour) -> None:
        if behaviour.hang:
            self.stopped.wait(behaviour.hang)
        if behaviour.reset:
            # SO_LINGER with a zero timeout makes close() send RST: a real reset.
            handler.connection.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
            handler.connection.close()
            handler.close_connection = True
            return
        handler.send_response(behaviour.status)
        for name, value in behaviour.headers.items():
            handler.send_header(name, value)
        if behaviour.body_size:
            handler.send_header("Content-Length", str(behaviour.body_size))
            handler.end_headers()
            chunk = b"x" * 65536
            sent = 0
            try:
                while sent < behaviour.body_size and not self.stopped.is_set():
                    piece = chunk[: behaviour.body_size - sent]
                    handler.wfile.write(piece)
                    sent += len(piece)
            except OSError:
                pass
            return
        handler.send_header("Content-Length", str(len(behaviour.body)))
        handler.end_headers()
        if behaviour.drip:
            try:
                for byte in behaviour.body:
                    if self.stopped.wait(behaviour.drip):
                        return
                    handler.wfile.write(bytes([byte]))
                    handler.wfile.flush()
            except OSError:
                pass
            return
        handler.wfile.write(behaviour.body)
