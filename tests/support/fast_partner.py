"""A fast local webhook partner for benchmarks: answers every request with 200 at once.

The point is to measure the sender, so the partner must never be the bottleneck: it is a
hand-rolled HTTP/1.1 server on asyncio streams (stdlib only) that reads a request,
records it and writes a fixed ``200`` with an empty body. Connections are kept alive.
Only ``Content-Length`` bodies are understood, which is what webhook senders send;
chunked bodies are refused with 411.

From Python::

    with FastPartner(hang_paths={"/dead"}) as partner:
        ...  # POST to partner.url + "/any/path"
        assert len(partner.requests) == 3

From the shell, printing requests per second each second::

    python -m bench.partner --port 9100
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from types import TracebackType

_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
_OK_CLOSE = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
_BAD_REQUEST = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
_LENGTH_REQUIRED = b"HTTP/1.1 411 Length Required\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
_MAX_HEAD_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    """One request as the partner received it."""

    arrived_at: float  # time.time() when the whole request (head and body) had been read
    method: str
    path: str  # as sent, query string included
    webhook_id: str | None
    body: bytes
    connection: int  # number of the TCP connection, from 1: equal numbers = same connection


class _BadRequest(Exception):
    def __init__(self, response: bytes) -> None:
        self.response = response


class FastPartner:
    """An HTTP server on 127.0.0.1 in a background thread with its own event loop.

    Every request is answered ``200`` with an empty body as soon as it is read, except
    requests to a path in ``hang_paths`` (compared without the query string): those are
    recorded and never answered; their connection stays open until :meth:`stop`.

    ``requests`` lists every request received since start or the last :meth:`reset`,
    in arrival order. With ``record=False`` only the counters are kept, for long runs.

    ``answer_delay`` (seconds) makes every answer wait that long, like a real partner's
    processing time, so that a sender's concurrency shows. ``in_flight_peak`` maps each
    path (without the query string) to the most requests that were in flight on it at
    once, from read to answered: 1 for a sender that keeps one request per webhook.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        hang_paths: Iterable[str] = (),
        record: bool = True,
        answer_delay: float = 0.0,
    ) -> None:
        self.host = host
        self.port = port
        self.hang_paths = frozenset(hang_paths)
        self.record = record
        self.answer_delay = answer_delay
        self.request_count = 0
        self.bytes_received = 0  # request bodies only
        self._records: list[ReceivedRequest] = []
        # Only the event loop's thread touches these, between awaits: no lock needed.
        self._in_flight: dict[str, int] = {}
        self._in_flight_peak: dict[str, int] = {}
        self._lock = threading.Lock()  # the loop appends while other threads read or reset
        self._connection_count = 0
        self._handlers: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_requested: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None

    # --- Public interface ----------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``, without a trailing slash."""
        return f"http://{self.host}:{self.port}"

    @property
    def requests(self) -> list[ReceivedRequest]:
        """A copy of the requests received so far, oldest first."""
        with self._lock:
            return list(self._records)

    @property
    def in_flight_peak(self) -> dict[str, int]:
        """Path -> the most requests in flight on it at once (since start or reset)."""
        return dict(self._in_flight_peak)

    def reset(self) -> None:
        """Forget the recorded requests and zero the counters."""
        with self._lock:
            self._records.clear()
            self.request_count = 0
            self.bytes_received = 0
            self._in_flight_peak = {}

    def start(self) -> FastPartner:
        """Start serving; return once the port is listening (``url`` is then final)."""
        self._thread = threading.Thread(target=self._run, name="fast-partner", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._startup_error is not None:
            raise self._startup_error
        return self

    def stop(self) -> None:
        """Close the listening socket and every connection, hanging ones included."""
        if self._loop is not None and self._stop_requested is not None:
            self._loop.call_soon_threadsafe(self._stop_requested.set)
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._loop = None

    def __enter__(self) -> FastPartner:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # --- The server ----------------------------------------------------------------------

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:
            if self._ready.is_set():
                raise
            self._startup_error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._stop_requested = asyncio.Event()
        server = await asyncio.start_server(
            self._handle_connection, self.host, self.port, limit=_MAX_HEAD_BYTES, backlog=1024
        )
        self.port = server.sockets[0].getsockname()[1]
        self._loop = asyncio.get_running_loop()
        self._ready.set()
        try:
            await self._stop_requested.wait()
        finally:
            server.close()
            for handler in list(self._handlers):
                handler.cancel()
            await asyncio.gather(*self._handlers, return_exceptions=True)
            await server.wait_closed()

    async def _handle_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        self._connection_count += 1
        connection = self._connection_count
        try:
            while await self._handle_request(reader, writer, connection):
                pass
        except _BadRequest as exc:
            writer.write(exc.response)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the client went away or sent a head over the limit: just close
        except asyncio.CancelledError:
            pass  # stop(): end quietly (asyncio logs a cancelled connection task as an error)
        finally:
            self._handlers.discard(handler)
            writer.close()

    async def _handle_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, connection: int
    ) -> bool:
        """Read one request and answer it; return whether the connection stays open."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                raise
            return False  # closed cleanly between two requests
        request_line, _, header_block = head[:-4].partition(b"\r\n")
        try:
            method, target, version = request_line.decode("latin-1").split(" ")
        except ValueError:
            raise _BadRequest(_BAD_REQUEST) from None
        keep_alive = version == "HTTP/1.1"
        content_length = 0
        webhook_id = None
        # Only the headers this server acts on are parsed; the rest is skipped unread.
        for line in header_block.split(b"\r\n"):
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                if not value.strip().isdigit():
                    raise _BadRequest(_BAD_REQUEST)
                content_length = int(value)
            elif name == b"webhook-id":
                webhook_id = value.strip().decode("latin-1")
            elif name == b"connection":
                token = value.strip().lower()
                keep_alive = token == b"keep-alive" or (keep_alive and token != b"close")
            elif name == b"transfer-encoding":
                raise _BadRequest(_LENGTH_REQUIRED)
        body = await reader.readexactly(content_length) if content_length else b""

        received = ReceivedRequest(time.time(), method, target, webhook_id, body, connection)
        with self._lock:
            self.request_count += 1
            self.bytes_received += content_length
            if self.record:
                self._records.append(received)

        path = target.partition("?")[0]
        in_flight = self._in_flight.get(path, 0) + 1
        self._in_flight[path] = in_flight
        if in_flight > self._in_flight_peak.get(path, 0):
            self._in_flight_peak = {**self._in_flight_peak, path: in_flight}
        try:
            if path in self.hang_paths:
                await asyncio.Event().wait()  # never set: cancelled by stop()
            if self.answer_delay:
                await asyncio.sleep(self.answer_delay)
            writer.write(_OK if keep_alive else _OK_CLOSE)
            await writer.drain()
        finally:
            self._in_flight[path] -= 1
        return keep_alive


# --- Command line ------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fast local webhook partner for benchmarks.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100, help="0 picks a free port")
    parser.add_argument("--hang", action="append", default=[], help="path never answered")
    args = parser.parse_args(argv)

    partner = FastPartner(host=args.host, port=args.port, hang_paths=args.hang, record=False)
    partner.start()
    print(f"listening on {partner.url}", flush=True)
    last_count, last_time = 0, time.monotonic()
    try:
        while True:
            time.sleep(1)
            now, count = time.monotonic(), partner.request_count
            rate = (count - last_count) / (now - last_time)
            print(
                f"{rate:8.0f} requests/s  {count:10d} requests  {partner.bytes_received:12d} bytes",
                flush=True,
            )
            last_count, last_time = count, now
    except KeyboardInterrupt:
        pass
    finally:
        partner.stop()


if __name__ == "__main__":
    main()
