"""A partner written on a bare socket, for the framings an HTTP server library will not
produce on request: `Connection: close`, a body read to the end of the stream, chunks,
HTTP/1.0 — each dripped a byte at a time, in its head or its body — and for answers no
well-behaved server sends: any status and header lines, any bytes in the body.

It reads one request (head and Content-Length body), then writes `head` and `body`, one
byte every `drip_head` / `drip_body` seconds (0: at once), and closes unless the framing
keeps the connection alive. Every request served is counted, and the last request's head
is kept (`last_head`).
"""

import socket
import threading
from dataclasses import dataclass

from tests.support.loopback_server import LoopbackServer

FRAMINGS = {
    # name: (status line and headers, how the body is framed)
    "length-keepalive": ("HTTP/1.1 {status}\r\nContent-Length: {length}\r\n", "plain"),
    "length-close": (
        "HTTP/1.1 {status}\r\nContent-Length: {length}\r\nConnection: close\r\n", "plain"
    ),
    "chunked": ("HTTP/1.1 {status}\r\nTransfer-Encoding: chunked\r\n", "chunked"),
    "no-length": ("HTTP/1.1 {status}\r\nConnection: close\r\n", "plain"),
    "http10": ("HTTP/1.0 {status}\r\nContent-Type: text/plain\r\n", "plain"),
}


@dataclass
class RawAnswer:
    framing: str
    body: bytes = b"x" * 100
    drip_head: float = 0.0
    drip_body: float = 0.0
    status: str = "200 OK"
    # Further header lines, each character one byte (Latin-1, as http.client reads them):
    # `"Retry-After: ²"` writes the byte 0xB2.
    headers: tuple[str, ...] = ()

    def pieces(self) -> tuple[bytes, list[bytes]]:
        """The head, and the body as the pieces to write one after the other."""
        head, body_framing = FRAMINGS[self.framing]
        head = head.format(status=self.status, length=len(self.body))
        head = (head + "".join(f"{line}\r\n" for line in self.headers) + "\r\n")
        head = head.encode("latin-1")
        if body_framing == "chunked":
            # Each byte its own chunk, so that a drip writes one chunk per step.
            return head, [b"1\r\n" + bytes([byte]) + b"\r\n" for byte in self.body] + [b"0\r\n\r\n"]
        return head, [bytes([byte]) for byte in self.body]


class RawPartner(LoopbackServer):
    def __init__(self, answer: RawAnswer) -> None:
        super().__init__()
        self.answer = answer
        self.requests = 0
        self.last_head = b""
        self._lock = threading.Lock()

    def _handle(self, client: socket.socket) -> None:
        with client:
            reader = client.makefile("rb")
            try:
                while not self.stopped.is_set() and self._request_read(reader):
                    with self._lock:
                        self.requests += 1
                    head, body = self.answer.pieces()
                    self._write(client, [bytes([byte]) for byte in head], self.answer.drip_head)
                    self._write(client, body, self.answer.drip_body)
                    if self.answer.framing not in ("length-keepalive", "chunked"):
                        return
            except OSError:
                return  # the client gave up: expected at its deadline

    def _request_read(self, reader) -> bool:
        length = 0
        line = reader.readline()
        if not line:
            return False
        head = line
        while line not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
            line = reader.readline()
            head += line
        self.last_head = head
        reader.read(length)
        return True

    def _write(self, client: socket.socket, pieces: list[bytes], drip: float) -> None:
        if not drip:
            client.sendall(b"".join(pieces))
            return
        for piece in pieces:
            client.sendall(piece)
            if self.stopped.wait(drip):
                return
