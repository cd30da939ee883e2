"""A real HTTP server on 127.0.0.1 that plays the partner in tests.

Each request consumes the next scripted behaviour (default: 200, or what `choose` picks).
Behaviours are real faults on a real socket: an error status, a hang past the timeout, a
connection reset, a half-close, a redirect, a slow drip of the headers or the body, a huge
body. Requests in flight are counted per URL path, so that each webhook of a test can have
its own path and the test can see whether one webhook ever had two requests at once.
"""

import json
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    answer: "Behaviour | None" = None

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
    drip: float = 0.0  # seconds between single bytes of the answer's body
    header_drip: float = 0.0  # seconds between single bytes of the status line and headers
    half_close: bool = False  # end our side (FIN) without answering, keep the socket 30 s
    body_size: int = 0  # stream this many bytes of body

    @property
    def answered_2xx(self) -> bool:
        """Whether a client that waits long enough gets a 2xx answer."""
        return 200 <= self.status < 300 and not (self.reset or self.half_close)


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
        self.in_flight_by_path: dict[str, int] = {}
        self.max_in_flight_by_path: dict[str, int] = {}
        # Picks the behaviour of a request when no scripted one is left (default: `default`).
        self.choose: Callable[[Received], Behaviour] | None = None
        self.stopped = threading.Event()
        partner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                path = self.path
                with partner.lock:
                    partner.in_flight += 1
                    partner.max_in_flight = max(partner.max_in_flight, partner.in_flight)
                    now_in_flight = partner.in_flight_by_path.get(path, 0) + 1
                    partner.in_flight_by_path[path] = now_in_flight
                    partner.max_in_flight_by_path[path] = max(
                        partner.max_in_flight_by_path.get(path, 0), now_in_flight
                    )
                    received = Received(path, dict(self.headers.items()), body, time.time())
                    partner.received.append(received)
                    if partner.script:
                        behaviour = partner.script.pop(0)
                    elif partner.choose is not None:
                        behaviour = partner.choose(received)
                    else:
                        behaviour = partner.default
                    received.answer = behaviour
                try:
                    partner._answer(self, behaviour)
                finally:
                    with partner.lock:
                        partner.in_flight -= 1
                        partner.in_flight_by_path[path] -= 1

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address) -> None:
                pass  # the client hung up on a fault we provoked: expected, not news

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def url_for(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

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
        if behaviour.half_close:
            # FIN on our side only: the client reads the end of the stream while the
            # connection stays open (the partner could still read) until the hang ends.
            handler.connection.shutdown(socket.SHUT_WR)
            self.stopped.wait(30)
            handler.close_connection = True
            return
        if behaviour.header_drip:
            head = (
                f"HTTP/1.1 {behaviour.status} Dripping\r\n"
                f"Content-Length: {len(behaviour.body)}\r\n\r\n"
            ).encode() + behaviour.body
            try:
                for byte in head:
                    handler.wfile.write(bytes([byte]))
                    handler.wfile.flush()
                    if self.stopped.wait(behaviour.header_drip):
                        return
            except OSError:
                pass
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
