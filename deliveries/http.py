"""The one module that talks HTTP to partners.

It owns the rules of a send: the whole-attempt deadline, redirects never followed, the
answer read only up to a cap, and the address guard at every attempt — the host is
resolved once, every address checked, and the connection made to the checked address
only, so that DNS rebinding cannot switch it between the check and the connect.

Every attempt of a process runs on one asyncio event loop in a thread of its own
(`send_loop()`), over one aiohttp session: a partner that hangs holds a coroutine, not a
thread, and connections to each partner stay alive between attempts. The engine hands the
loop its sends (`SendLoop.spawn`); `webhook_post` is the same attempt for a caller that
waits for it.

The deadline is one timeout around everything an attempt does after the name lookup:
connect, TLS handshake, request, answer head and body. However a partner drips its
handshake or its answer, and however the answer is framed, the attempt ends at
WEBHOOK_TIMEOUT. The name lookup, which the C resolver runs without any timeout of ours,
is bounded by running it in a small thread pool and giving up after the connect timeout.

What is kept of an answer is text that every database stores (answer_excerpt): we ask for
no compression, keep no compressed body, and replace NUL bytes and invalid UTF-8, saying so
in the result.
"""

from __future__ import annotations

import asyncio
import atexit
import codecs
import contextlib
import os
import socket
import ssl
import threading
import time
from collections.abc import Coroutine, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import certifi
from aiohttp.http_exceptions import HttpProcessingError
from django.conf import settings
from yarl import URL

from core.text import text_storable
from deliveries.models import DeliveryAttempt
from webhooks.addresses import (
    AddressRefused,
    HostUnresolvable,
    InvalidWebhookURL,
    host_ascii,
    host_resolve,
    parse_ip_literal,
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


class SendLoop:
    """One asyncio event loop in a daemon thread, with the aiohttp session that every
    attempt of this process goes through (its connection pool keeps each partner's
    connections alive)."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._session: aiohttp.ClientSession | None = None
        # Running tasks, referenced so that the loop does not drop them half-way.
        self._tasks: set[asyncio.Task] = set()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="springhook-send", daemon=True
        )
        self._thread.start()
        atexit.register(self.close)

    def close(self) -> None:
        """Close the session's connections (at exit: nothing left for the loop to do)."""
        if self._thread.is_alive():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._session_close(), self._loop).result(2)

    async def _session_close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def spawn(self, coroutines: Iterable[Coroutine]) -> None:
        """Start the coroutines on the loop (one wake-up for all), without waiting."""
        self._loop.call_soon_threadsafe(self._tasks_start, list(coroutines))

    def run(self, coroutine: Coroutine):
        """Run one coroutine on the loop and wait for its result (from another thread)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def session(self) -> aiohttp.ClientSession:
        """The loop's session; call on the loop."""
        if self._session is None:
            connector = aiohttp.TCPConnector(
                # No cap of its own: the engine's send slots (WEBHOOK_SENDS_IN_FLIGHT)
                # bound the attempts, and a webhook has one in flight at most, so each
                # partner gets as many connections as it has webhooks sending.
                limit=0,
                limit_per_host=0,
                # The certificate authorities requests used (certifi), not the system's.
                ssl=ssl.create_default_context(cafile=certifi.where()),
                # Hosts are always checked addresses: nothing for aiohttp to look up.
                use_dns_cache=False,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                # No proxies or netrc from the environment.
                trust_env=False,
                # The answer is kept as it came (identity is asked for): never inflated.
                auto_decompress=False,
                # Our deadline is the only timeout; the connect timeout bounds the TCP
                # connect and the TLS handshake.
                timeout=aiohttp.ClientTimeout(total=None),
                skip_auto_headers=("User-Agent",),
            )
        return self._session

    def _tasks_start(self, coroutines: list[Coroutine]) -> None:
        for coroutine in coroutines:
            task = self._loop.create_task(coroutine)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)


_send_loop: SendLoop | None = None
_send_loop_lock = threading.Lock()
_inherited_send_loops: list[SendLoop] = []


def send_loop() -> SendLoop:
    """The process's send loop, started at its first use (in a Celery pool process: after
    the fork)."""
    global _send_loop
    with _send_loop_lock:
        if _send_loop is None:
            _send_loop = SendLoop()
        return _send_loop


def _after_fork_in_child() -> None:
    # A forked child (a Celery pool process) has none of the parent's threads, but would
    # inherit their bookkeeping (and maybe a lock held at the fork): start afresh.
    global _resolver_pool, _send_loop, _send_loop_lock
    _resolver_pool = _resolver_pool_new()
    if _send_loop is not None:
        # The parent's, with no thread to run it here: kept referenced, so that its
        # session is never collected (and reported unclosed) in this process.
        _inherited_send_loops.append(_send_loop)
    _send_loop = None
    _send_loop_lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


async def address_resolve(host: str, port: int, *, timeout: float) -> str:
    """The checked address to connect to, looked up in at most `timeout` seconds.

    Raises HostUnresolvable when the name does not resolve in time, AddressRefused when
    the guard refuses it.
    """
    def resolve() -> list[str]:
        return host_resolve(
            host, port, allow_private=settings.WEBHOOK_ALLOW_PRIVATE_URLS, resolver=_resolver
        )

    if parse_ip_literal(host) is not None:
        return resolve()[0]  # checked without any lookup: no thread needed
    lookup = asyncio.get_running_loop().run_in_executor(_resolver_pool, resolve)
    try:
        async with asyncio.timeout(timeout):
            return (await lookup)[0]
    except TimeoutError:
        raise HostUnresolvable(
            f"webhook host {host!r} did not resolve within {timeout:g} s", host=host
        ) from None


def webhook_post(*, url: str, body: bytes, headers: dict[str, str]) -> SendResult:
    """POST body to url once, on the process's send loop, and wait for the result (see
    webhook_post_async). Never call it on the send loop itself."""
    return send_loop().run(webhook_post_async(url=url, body=body, headers=headers))


async def webhook_post_async(*, url: str, body: bytes, headers: dict[str, str]) -> SendResult:
    """POST body to url once. Never raises for anything the partner or network does.

    The whole attempt, name lookup included, ends within WEBHOOK_TIMEOUT however the
    partner or its DNS server behaves (the lookup alone within WEBHOOK_CONNECT_TIMEOUT).
    Runs on the send loop.
    """
    started = time.monotonic()

    def failed(kind: str, message: str) -> SendResult:
        return SendResult(None, kind, message[:1000], "", time.monotonic() - started)

    try:
        # The URL was checked when saved, but the database may hold anything (an older
        # rule, a direct write): the same check again, so that a malformed URL is a
        # refused attempt and not an exception.
        url_validate(url, allow_private=settings.WEBHOOK_ALLOW_PRIVATE_URLS)
        parts = urlsplit(url)
        hostname = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        # The Host header and the TLS server name carry the name as DNS knows it: an
        # internationalised name IDNA-encoded.
        wire_host = host_ascii(hostname)
    except (InvalidWebhookURL, AddressRefused, ValueError) as error:
        return failed(ErrorKind.REFUSED_ADDRESS, f"webhook URL refused: {error}")
    try:
        address = await address_resolve(
            hostname, port,
            timeout=min(settings.WEBHOOK_CONNECT_TIMEOUT, settings.WEBHOOK_TIMEOUT),
        )
    except HostUnresolvable as error:
        return failed(ErrorKind.DNS, str(error))
    except (AddressRefused, ValueError) as error:
        return failed(ErrorKind.REFUSED_ADDRESS, str(error))

    # The connection goes to the checked address itself (aiohttp looks nothing up for an
    # IP literal); the pool keys it by address and TLS server name, so a kept-alive
    # connection serves only the same address and name.
    netloc = f"[{address}]" if ":" in address else address
    if parts.port:
        netloc += f":{parts.port}"
    host_header = f"[{wire_host}]" if ":" in wire_host else wire_host
    if parts.port:
        host_header += f":{parts.port}"
    try:
        pinned_url = URL(urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, "")))
    except ValueError as error:
        return failed(ErrorKind.REFUSED_ADDRESS, f"webhook URL refused: {error}")
    headers = {
        **headers,
        # No compressed answer: what is kept of it is read as it came.
        "Accept-Encoding": "identity",
        "Host": host_header,
    }
    remaining = max(0.0, started + settings.WEBHOOK_TIMEOUT - time.monotonic())
    return await _attempt(
        pinned_url, body, headers, server_hostname=wire_host if parts.scheme == "https" else None,
        remaining=remaining, started=started,
    )


async def _attempt(
    url: URL, body: bytes, headers: Mapping[str, str], *, server_hostname: str | None,
    remaining: float, started: float,
) -> SendResult:
    status: int | None = None

    def failed(kind: str, message: str) -> SendResult:
        return SendResult(status, kind, message[:1000], "", time.monotonic() - started)

    session = send_loop().session()
    response: aiohttp.ClientResponse | None = None
    try:
        async with asyncio.timeout(remaining):
            response = await session.post(
                url, data=body, headers=headers, allow_redirects=False,
                server_hostname=server_hostname,
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=settings.WEBHOOK_CONNECT_TIMEOUT
                ),
            )
            status = response.status
            kept, cut = await _read_capped(response)
    except aiohttp.ConnectionTimeoutError as error:
        return failed(ErrorKind.TIMEOUT, f"connect timeout: {error or 'no answer'}")
    except TimeoutError:
        return failed(
            ErrorKind.TIMEOUT,
            f"the attempt took longer than the timeout ({settings.WEBHOOK_TIMEOUT:g} s)",
        )
    except (aiohttp.ClientSSLError, ssl.SSLError) as error:
        return failed(ErrorKind.TLS, str(error))
    except (aiohttp.ClientError, HttpProcessingError, OSError) as error:
        if status is not None:
            return failed(ErrorKind.CONNECTION, f"reading the answer failed: {error!r}")
        return failed(ErrorKind.CONNECTION, str(error) or repr(error))
    finally:
        if response is not None:
            # A fully read answer gives its connection back to the pool; an unfinished one
            # drops it, whose unread bytes would poison the next request (and a 50 MB
            # answer is never read further than the cap).
            if response.content.is_eof() and not response.closed:
                response.release()
            else:
                response.close()
    return answer_result(
        status=response.status, headers=response.headers,
        excerpt=answer_excerpt(
            kept, cut=cut, content_encoding=_header(response.headers, "Content-Encoding")
        ),
        duration=time.monotonic() - started,
    )


async def _read_capped(response: aiohttp.ClientResponse) -> tuple[bytes, bool]:
    """The answer's first RESPONSE_BODY_KEEP bytes, and whether it went on past them,
    read up to RESPONSE_READ_CAP. Raises what aiohttp raises for a broken answer."""
    kept = bytearray()
    read = 0
    while read < RESPONSE_READ_CAP:
        chunk = await response.content.read(_READ_CHUNK)
        if not chunk:
            break
        read += len(chunk)
        if len(kept) < RESPONSE_BODY_KEEP:
            kept.extend(chunk[: RESPONSE_BODY_KEEP - len(kept)])
    return bytes(kept), read > len(kept)


def answer_excerpt(kept: bytes, *, cut: bool, content_encoding: str | None) -> AnswerExcerpt:
    """The answer's first bytes (`kept`; `cut`: the answer went on) as stored text: the
    one place that reads an answer's body.

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


def answer_result(
    *, status: int, headers: Mapping[str, str], excerpt: AnswerExcerpt, duration: float
) -> SendResult:
    """The outcome of an attempt that got a whole answer (up to the cap): accepted for a
    2xx, a redirect never followed, any other status with its Retry-After. The one place
    that reads an answer's head."""

    def answered(kind: str, message: str, retry_after: str | None = None) -> SendResult:
        return SendResult(
            status, kind, message, excerpt.text, duration, retry_after=retry_after,
            response_bytes_replaced=excerpt.bytes_replaced, response_encoding=excerpt.encoding,
        )

    if 300 <= status < 400:
        location = _header(headers, "Location") or ""
        return answered(ErrorKind.REDIRECT, f"redirect to {location!r} not followed"[:1000])
    if not 200 <= status < 300:
        return answered(ErrorKind.HTTP_STATUS, f"HTTP {status}",
                        _header(headers, "Retry-After"))
    return answered(ErrorKind.NONE, "")


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """A header of the answer, each byte one character (Latin-1, as HTTP/1.1 defines
    header text): aiohttp hands bytes that are not UTF-8 over as lone surrogates, which
    no database stores and no parser expects."""
    value = headers.get(name)
    if value is None:
        return None
    return value.encode("utf-8", "surrogateescape").decode("latin-1")
