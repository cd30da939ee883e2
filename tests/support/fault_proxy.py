"""A fault-injecting HTTP proxy: put it between the sender and a real partner.

Every POST is handled according to the proxy's current `mode`, which a test switches at
any time (for stretches of an outage):

- ``pass``: forward to the partner and relay its answer;
- ``error``: answer 500 without forwarding;
- ``throttle``: answer 503 with ``Retry-After: 1`` without forwarding;
- ``hang``: read the request and never answer, until `hang_seconds` have passed;
- ``drop``: reset the connection (RST) without forwarding;
- ``lost_answer``: forward (the partner accepts it), then reset the connection: the
  sender cannot know the batch arrived and sends it again;
- ``late_answer``: forward, then hold the answer past the sender's timeout.

Real sockets and a real partner process: no part of the sender is mocked.
"""

import http.client
import socket
import struct
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

MODES = ("pass", "error", "throttle", "hang", "drop", "lost_answer", "late_answer")
# Headers of the sender's request the partner needs (the signature covers id and timestamp).
_FORWARDED = ("Content-Type", "User-Agent", "webhook-id", "webhook-timestamp", "webhook-signature")


class FaultProxy:
    def __init__(self, target_url: str, *, hang_seconds: float) -> None:
        target = urlsplit(target_url)
        self.target_host = target.hostname
        self.target_port = target.port
        self.target_path = target.path or "/"
        self.hang_seconds = hang_seconds
        self.mode = "pass"
        # How many requests met each mode, and how the partner answered forwarded ones.
        self.handled: Counter[str] = Counter()
        self.partner_statuses: Counter[int] = Counter()
        # Bodies the partner accepted (2xx), once per webhook-id, in the order it did.
        self.accepted: list[bytes] = []
        self._accepted_ids: set[str] = set()
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with proxy.lock:
                    mode = proxy.mode
                    proxy.handled[mode] += 1
                proxy._handle(self, mode, body)

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address) -> None:
                pass  # the sender hung up on a fault we provoked: expected

        self.server = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def start(self) -> "FaultProxy":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopped.set()
        self.server.shutdown()
        self.server.server_close()

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}")
        with self.lock:
            self.mode = mode

    # --- faults ---------------------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler, mode: str, body: bytes) -> None:
        if mode == "error":
            self._answer(handler, 500, {}, b'{"error": "injected"}')
        elif mode == "throttle":
            self._answer(handler, 503, {"Retry-After": "1"}, b"")
        elif mode == "hang":
            self.stopped.wait(self.hang_seconds)
            handler.close_connection = True
        elif mode == "drop":
            self._reset(handler)
        else:
            status, headers, answer = self._forward(handler, body)
            if mode == "lost_answer":
                self._reset(handler)
            elif mode == "late_answer":
                self.stopped.wait(self.hang_seconds)
                handler.close_connection = True
            else:
                self._answer(handler, status, headers, answer)

    def _forward(self, handler: BaseHTTPRequestHandler, body: bytes):
        headers = {name: handler.headers[name] for name in _FORWARDED if name in handler.headers}
        connection = http.client.HTTPConnection(self.target_host, self.target_port, timeout=30)
        try:
            connection.request("POST", self.target_path, body=body, headers=headers)
            response = connection.getresponse()
            answer = response.read()
        except OSError:
            # The partner itself is unreachable: the sender sees a gateway error.
            return 502, {}, b""
        finally:
            connection.close()
        with self.lock:
            self.partner_statuses[response.status] += 1
            message_id = headers.get("webhook-id", "")
            if 200 <= response.status < 300 and message_id not in self._accepted_ids:
                self._accepted_ids.add(message_id)
                self.accepted.append(body)
        kept = {
            name: value
            for name, value in response.getheaders()
            if name.lower() in ("content-type", "retry-after")
        }
        return response.status, kept, answer

    @staticmethod
    def _answer(handler, status: int, headers: dict[str, str], body: bytes) -> None:
        handler.send_response(status)
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    @staticmethod
    def _reset(handler) -> None:
        # SO_LINGER with a zero timeout makes close() send RST: a real dropped connection.
        handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        handler.connection.close()
        handler.close_connection = True
