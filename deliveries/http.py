"""The one module that talks HTTP to partners.

It owns the rules of a send: connect and total timeouts, redirects never followed, the
response read only up to a cap, and the address guard at every attempt — the host is
resolved once, every address checked, and the connection made to the checked address
only, so that DNS rebinding cannot switch it between the check and the connect.

The total timeout is a hard deadline. requests' read timeout applies to each socket read,
so a partner that drips its answer one byte a second would never trip it; instead a
watchdog thread shuts the attempt's sockets down at the deadline, whatever the partner does
and however the answer is framed.
The name lookup, which the C resolver runs without any timeout of ours, is bounded by
running it in a small thread pool and giving up after the connect timeout.

What is kept of an answer is text that every database stores (answer_excerpt): we ask for
no compression, keep no compressed body, and replace NUL bytes and invalid UTF-8, saying so
in the result.
"""

import codecs
import contextlib
import heapq
import itertools
import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import requests
import urllib3
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from core.text import text_storable
from deliveries.models import DeliveryAttempt
from webhooks.addresses import (
    AddressRefused,
    HostUnresolvable,
    InvalidWebhookURL,
    host_ascii,
    host_resolve,
    url_validate,
)

ErrorKind = DeliveryAttempt.ErrorKind
# The first bytes of a response kept for the history (2 KiB).
RESPONSE_BODY_KEEP = 2048
# Read at most this much of an answer: enough to reuse the connection after a normal
# reply, and a hard stop for a partner that answers with an endless body.
RESPONSE_READ_CAP = 64 * 1024
_READ_CHUNK = 8192
# Lookups that outlive the connect timeout are abandoned, but their thread stays blocked in
# the C resolver until it gives up by itself: a few threads, so that a dead DNS server
# costs a bounded number of them (further lookups wait in the queue and time out too).
_RESOLVER_THREADS = 4


def _resolver_pool_new() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=_RESOLVER_THREADS, thread_name_prefix="springhook-dns")


_resolver_pool = _resolver_pool_new()
# The name lookup itself: a module attribute, so that a test can put a resolver that never
# answers in its place (the system's resolver cannot be made to hang from a test).
_resolver = socket.getaddrinfo


@dataclass(frozen=True)
class AnswerExcerpt:
    """What is kept of an answer's body: text that every database stores."""

    text: str = ""
    # NUL bytes or invalid UTF-8 were replaced with U+FFFD.
    bytes_replaced: bool = False
    # The Content-Encoding of an answer compressed although we asked for none (not kept).
    encoding: str = ""


@dataclass(frozen=True)
class SendResult:
    status_code: int | None
    error_kind: str
    error_message: str
    response_body: str
    duration: float
    retry_after: str | None = None
    response_bytes_replaced: bool = False
    response_encoding: str = ""

    @property
    def accepted(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300 and not (
            self.error_kind
        )


class AttemptDeadline:
    """Ends one attempt at its deadline by shutting down the sockets it uses.

    The connection classes below register each socket the moment it is connected, and the
    pools register a kept-alive connection's socket when an attempt reuses it. The deadline
    holds the socket object itself, not the connection: a response that ends with its
    connection (`Connection: close`, HTTP/1.0, a body read to the end of the stream) takes
    the socket over and the connection forgets it, but the read still blocks on that
    socket. A shut down socket makes the blocked read return at once, so the attempt ends
    however slowly the partner sends; the connection is then broken and the pool replaces
    it.
    """

    def __init__(self, seconds: float) -> None:
        self.fired = False
        self.finished = False
        self.ends_at = time.monotonic() + seconds
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []

    def __enter__(self) -> "AttemptDeadline":
        _local.deadline = self
        _watchdog.watch(self)
        return self

    def __exit__(self, *exc_info) -> None:
        with self._lock:
            # From now on the socket may serve the thread's next attempt: hands off.
            self.finished = True
            self._sockets.clear()
        _local.deadline = None

    def socket_add(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._lock:
            if self.finished:
                return
            self._sockets.append(sock)
            fired = self.fired
        if fired:
            _socket_shutdown(sock)

    def fire(self) -> None:
        with self._lock:
            if self.finished:
                return
            self.fired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _socket_shutdown(sock)


class _Watchdog:
    """One thread that fires the deadlines of all attempts of this process when due (a
    timer thread per attempt would cost a thread start per request)."""

    def __init__(self) -> None:
        self._wakeup = threading.Condition()
        self._due: list[tuple[float, int, AttemptDeadline]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def watch(self, deadline: AttemptDeadline) -> None:
        with self._wakeup:
            heapq.heappush(self._due, (deadline.ends_at, next(self._order), deadline))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="springhook-deadlines", daemon=True
                )
                self._thread.start()
            if self._due[0][2] is deadline:
                self._wakeup.notify()  # a new earliest deadline: wait for it instead

    def _run(self) -> None:
        while True:
            with self._wakeup:
                while self._due and self._due[0][2].finished:
                    heapq.heappop(self._due)  # ended in time: nothing to do
                now = time.monotonic()
                if not self._due or self._due[0][0] > now:
                    self._wakeup.wait(self._due[0][0] - now if self._due else None)
                    continue
                deadline = heapq.heappop(self._due)[2]
            deadline.fire()


_watchdog = _Watchdog()


def _after_fork_in_child() -> None:
    # A forked child (a Celery pool process) has none of the parent's threads, but would
    # inherit their bookkeeping (and maybe a lock held at the fork): start afresh.
    global _resolver_pool, _watchdog
    _resolver_pool = _resolver_pool_new()
    _watchdog = _Watchdog()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _socket_shutdown(sock: socket.socket) -> None:
    # socket.socket's own shutdown, not SSLSocket's: that one would first drop the TLS state
    # under the reading thread's feet; this only ends the TCP stream. OSError: closed already
    # (a closed socket object has no descriptor any more, so this never reaches another
    # connection's socket).
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _current_deadline() -> AttemptDeadline | None:
    return getattr(_local, "deadline", None)


class _DeadlineConnectionMixin:
    def connect(self) -> None:
        # The TCP connect and the TLS handshake are bounded per step by the connect timeout;
        # from here on the attempt's deadline can end every read.
        super().connect()
        deadline = _current_deadline()
        if deadline is not None:
            deadline.socket_add(self.sock)


class _DeadlineHTTPConnection(_DeadlineConnectionMixin, HTTPConnection):
    pass


class _DeadlineHTTPSConnection(_DeadlineConnectionMixin, HTTPSConnection):
    pass


class _DeadlinePoolMixin:
    def _make_request(self, conn, *args, **kwargs):
        deadline = _current_deadline()
        if deadline is not None:
            # A kept-alive connection is connected already: register its socket now (a new
            # one registers itself when it connects).
            deadline.socket_add(getattr(conn, "sock", None))
        return super()._make_request(conn, *args, **kwargs)


class _DeadlineHTTPPool(_DeadlinePoolMixin, HTTPConnectionPool):
    ConnectionCls = _DeadlineHTTPConnection


class _DeadlineHTTPSPool(_DeadlinePoolMixin, HTTPSConnectionPool):
    ConnectionCls = _DeadlineHTTPSConnection


class PinnedAddressAdapter(HTTPAdapter):
    """Connect to the already-checked IP in the URL, while TLS (SNI and certificate check)
    and the Host header use the webhook's real host name."""

    def build_connection_pool_key_attributes(self, request, verify, cert=None):
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(
            request, verify, cert
        )
        hostname = getattr(request, "springhook_hostname", None)
        if hostname and host_params["scheme"] == "https":
            pool_kwargs["server_hostname"] = hostname
            pool_kwargs["assert_hostname"] = hostname
        return host_params, pool_kwargs

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        # Pools whose connections the attempt's deadline can shut down.
        self.poolmanager.pool_classes_by_scheme = {
            "http": _DeadlineHTTPPool, "https": _DeadlineHTTPSPool,
        }


_local = threading.local()


def address_resolve(host: str, port: int, *, timeout: float) -> str:
    """The checked address to connect to, looked up in at most `timeout` seconds.

    Raises HostUnresolvable when the name does not resolve in time, AddressRefused when
    the guard refuses it.
    """
    lookup = _resolver_pool.submit(
        host_resolve, host, port, allow_private=settings.WEBHOOK_ALLOW_PRIVATE_URLS,
        resolver=_resolver,
    )
    try:
        return lookup.result(timeout=timeout)[0]
    except FutureTimeout:
        lookup.cancel()
        raise HostUnresolvable(
            f"webhook host {host!r} did not resolve within {timeout:g} s", host=host
        ) from None



def http_session() -> requests.Session:
    """The worker's session (one per thread, reused, so connections to partners are kept)."""
    session = getattr(_local, "session", None)
    if session is None:
        session = requests.Session()
        session.trust_env = False  # no proxies or netrc from the environment
        adapter = PinnedAddressAdapter(pool_connections=64, pool_maxsize=4, max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        _local.session = session
    return session


def webhook_post(*, url: str, body: bytes, headers: dict[str, str]) -> SendResult:
    """POST body to url once. Never raises for anything the partner or network does.

    The whole attempt, name lookup included, ends within WEBHOOK_TIMEOUT however the
    partner or its DNS server behaves (the lookup alone within WEBHOOK_CONNECT_TIMEOUT).
    """
    started = time.monotonic()

    def failed(kind: str, message: str, status: int | None = None, text: str = "") -> SendResult:
        return SendResult(status, kind, message[:1000], text, time.monotonic() - started)

    try:
        # The URL was checked when saved, but the database may hold anything (an older
        # rule, a direct write): the same check again, so that a malformed URL is a
        # refused attempt and not an exception.
        url_validate(url, allow_private=settings.WEBHOOK_ALLOW_PRIVATE_URLS)
        parts = urlsplit(url)
        hostname = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        # The Host header and the TLS server name carry the name as DNS knows it: an
        # internationalised name IDNA-encoded (http.client would send it as Latin-1, or
        # fail on a character that Latin-1 lacks).
        wire_host = host_ascii(hostname)
    except (InvalidWebhookURL, AddressRefused, ValueError) as error:
        return failed(ErrorKind.REFUSED_ADDRESS, f"webhook URL refused: {error}")
    try:
        address = address_resolve(
            hostname, port,
            timeout=min(settings.WEBHOOK_CONNECT_TIMEOUT, settings.WEBHOOK_TIMEOUT),
        )
    except HostUnresolvable as error:
        return failed(ErrorKind.DNS, str(error))
    except (AddressRefused, ValueError) as error:
        return failed(ErrorKind.REFUSED_ADDRESS, str(error))

    netloc = f"[{address}]" if ":" in address else address
    if parts.port:
        netloc += f":{parts.port}"
    pinned_url = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    host_header = f"[{wire_host}]" if ":" in wire_host else wire_host
    if parts.port:
        host_header += f":{parts.port}"

    session = http_session()
    request = requests.Request(
        "POST", pinned_url, data=body,
        # `identity`: requests would ask for gzip, and a compressed excerpt tells nobody
        # anything (answer_excerpt keeps none).
        headers={"Accept-Encoding": "identity", **headers, "Host": host_header},
    )
    try:
        prepared = session.prepare_request(request)
    except (requests.exceptions.RequestException, ValueError) as error:
        return failed(ErrorKind.REFUSED_ADDRESS, f"webhook URL refused: {error}")
    prepared.springhook_hostname = wire_host
    ends_at = started + settings.WEBHOOK_TIMEOUT
    with AttemptDeadline(max(0.0, ends_at - time.monotonic())) as deadline:
        return _send(session, prepared, deadline, started, ends_at)


def _send(session, prepared, deadline: AttemptDeadline, started: float, ends_at: float):
    def failed(kind: str, message: str, status: int | None = None, text: str = "") -> SendResult:
        return SendResult(status, kind, message[:1000], text, time.monotonic() - started)

    timeout_message = f"the attempt took longer than the timeout ({settings.WEBHOOK_TIMEOUT:g} s)"
    try:
        response = session.send(
            prepared,
            allow_redirects=False,
            stream=True,
            timeout=(settings.WEBHOOK_CONNECT_TIMEOUT, settings.WEBHOOK_TIMEOUT),
        )
    except requests.exceptions.SSLError as error:
        if deadline.fired:
            return failed(ErrorKind.TIMEOUT, timeout_message)
        return failed(ErrorKind.TLS, str(error))
    except requests.exceptions.ConnectTimeout as error:
        return failed(ErrorKind.TIMEOUT, f"connect timeout: {error}")
    except requests.exceptions.Timeout as error:
        return failed(ErrorKind.TIMEOUT, str(error))
    except requests.exceptions.RequestException as error:
        if deadline.fired:
            return failed(ErrorKind.TIMEOUT, timeout_message)
        return failed(ErrorKind.CONNECTION, str(error))

    try:
        excerpt = _read_capped(response, ends_at)
    except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError) as error:
        response.close()
        if deadline.fired or isinstance(error, urllib3.exceptions.TimeoutError):
            return failed(ErrorKind.TIMEOUT, timeout_message, response.status_code)
        return failed(
            ErrorKind.CONNECTION, f"reading the answer failed: {error}", response.status_code
        )
    status = response.status_code
    duration = time.monotonic() - started

    def answered(kind: str, message: str, retry_after: str | None = None) -> SendResult:
        return SendResult(
            status, kind, message, excerpt.text, duration, retry_after=retry_after,
            response_bytes_replaced=excerpt.bytes_replaced, response_encoding=excerpt.encoding,
        )

    if deadline.fired or excerpt is None:
        # A socket shut down by the deadline reads as an early end of the answer.
        excerpt = excerpt or AnswerExcerpt()
        return answered(ErrorKind.TIMEOUT, timeout_message)
    if 300 <= status < 400:
        location = response.headers.get("Location", "")
        return answered(ErrorKind.REDIRECT, f"redirect to {location!r} not followed"[:1000])
    if not 200 <= status < 300:
        return answered(
            ErrorKind.HTTP_STATUS, f"HTTP {status}", response.headers.get("Retry-After")
        )
    return answered(ErrorKind.NONE, "")


def answer_excerpt(kept: bytes, *, cut: bool, content_encoding: str | None) -> AnswerExcerpt:
    """The answer's first bytes (`kept`; `cut`: the answer went on) as stored text.

    A compressed body is not kept: its encoding is noted instead. Otherwise the bytes are
    read as UTF-8, NUL bytes and invalid sequences replaced with U+FFFD; a character cut in
    two by the end of the excerpt is dropped, not counted as invalid.
    """
    encoding = (content_encoding or "").strip().lower()
    if encoding not in ("", "identity"):
        # A header is the partner's text too: printable ASCII, as short as the column.
        return AnswerExcerpt(encoding="".join(c for c in encoding if " " <= c <= "~")[:32])
    try:
        text = codecs.getincrementaldecoder("utf-8")("strict").decode(kept, final=not cut)
        replaced = False
    except UnicodeDecodeError:
        text = codecs.getincrementaldecoder("utf-8")("replace").decode(kept, final=not cut)
        replaced = True
    storable = text_storable(text)
    return AnswerExcerpt(storable, bytes_replaced=replaced or storable != text)


def _read_capped(response: requests.Response, deadline: float) -> AnswerExcerpt | None:
    """Read the answer up to the cap and the deadline: its first 2 KiB (answer_excerpt),
    None if timed out.

    Raises what urllib3 raises for a broken answer (cut short, reset).
    """
    kept = bytearray()
    read = 0
    timed_out = False
    raw = response.raw
    try:
        while read < RESPONSE_READ_CAP:
            if time.monotonic() >= deadline:
                timed_out = True
                break
            chunk = raw.read(_READ_CHUNK, decode_content=False)
            if not chunk:
                break
            read += len(chunk)
            if len(kept) < RESPONSE_BODY_KEEP:
                kept.extend(chunk[: RESPONSE_BODY_KEEP - len(kept)])
    finally:
        # A fully read answer has already given its connection back to the pool; closing
        # an unfinished one drops the connection, whose unread bytes would poison the next
        # request (and a 50 MB answer is never read further than the cap).
        response.close()
    if timed_out:
        return None
    return answer_excerpt(
        bytes(kept), cut=read > len(kept),
        content_encoding=response.headers.get("Content-Encoding"),
    )
