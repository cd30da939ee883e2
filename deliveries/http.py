"""The one module that talks HTTP to partners.

It owns the rules of a send: connect and total timeouts, redirects never followed, the
response read only up to a cap, and the address guard at every attempt — the host is
resolved once, every address checked, and the connection made to the checked address
only, so that DNS rebinding cannot switch it between the check and the connect.
"""

import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter

from deliveries.models import DeliveryAttempt
from webhooks.addresses import AddressRefused, HostUnresolvable, host_resolve

ErrorKind = DeliveryAttempt.ErrorKind
# The first bytes of a response kept for the history (SPEC: 2 KiB).
RESPONSE_BODY_KEEP = 2048
# Read at most this much of an answer: enough to reuse the connection after a normal
# reply, and a hard stop for a partner that answers with an endless body.
RESPONSE_READ_CAP = 64 * 1024
_READ_CHUNK = 8192


@dataclass(frozen=True)
class SendResult:
    status_code: int | None
    error_kind: str
    error_message: str
    response_body: str
    duration: float
    retry_after: str | None = None

    @property
    def accepted(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300 and not (
            self.error_kind
        )


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


_local = threading.local()


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
    """POST body to url once. Never raises for anything the partner or network does."""
    started = time.monotonic()
    deadline = started + settings.WEBHOOK_TIMEOUT

    def failed(kind: str, message: str, status: int | None = None, text: str = "") -> SendResult:
        return SendResult(status, kind, message[:1000], text, time.monotonic() - started)

    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        address = host_resolve(
            parts.hostname or "", port, allow_private=settings.WEBHOOK_ALLOW_PRIVATE_URLS
        )[0]
    except HostUnresolvable as error:
        return failed(ErrorKind.DNS, str(error))
    except (AddressRefused, ValueError) as error:
        return failed(ErrorKind.REFUSED_ADDRESS, str(error))

    netloc = f"[{address}]" if ":" in address else address
    if parts.port:
        netloc += f":{parts.port}"
    pinned_url = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    host_header = parts.hostname if not parts.port else f"{parts.hostname}:{parts.port}"
    if parts.hostname and ":" in parts.hostname:
        host_header = f"[{parts.hostname}]" + (f":{parts.port}" if parts.port else "")

    session = http_session()
    request = requests.Request(
        "POST", pinned_url, data=body, headers={**headers, "Host": host_header}
    )
    prepared = session.prepare_request(request)
    prepared.springhook_hostname = parts.hostname
    try:
        response = session.send(
            prepared,
            allow_redirects=False,
            stream=True,
            timeout=(settings.WEBHOOK_CONNECT_TIMEOUT, settings.WEBHOOK_TIMEOUT),
        )
    except requests.exceptions.SSLError as error:
        return failed(ErrorKind.TLS, str(error))
    except requests.exceptions.ConnectTimeout as error:
        return failed(ErrorKind.TIMEOUT, f"connect timeout: {error}")
    except requests.exceptions.Timeout as error:
        return failed(ErrorKind.TIMEOUT, str(error))
    except requests.exceptions.RequestException as error:
        return failed(ErrorKind.CONNECTION, str(error))

    try:
        text, timed_out = _read_capped(response, deadline)
    except requests.exceptions.RequestException as error:
        response.close()
        kind = ErrorKind.TIMEOUT if time.monotonic() >= deadline else ErrorKind.CONNECTION
        return failed(kind, f"reading the answer failed: {error}", response.status_code)
    status = response.status_code
    duration = time.monotonic() - started
    if timed_out:
        return SendResult(
            status, ErrorKind.TIMEOUT, "the answer took longer than the timeout", text, duration
        )
    if 300 <= status < 400:
        location = response.headers.get("Location", "")
        return SendResult(
            status, ErrorKind.REDIRECT, f"redirect to {location!r} not followed", text, duration
        )
    if not 200 <= status < 300:
        return SendResult(
            status,
            ErrorKind.HTTP_STATUS,
            f"HTTP {status}",
            text,
            duration,
            retry_after=response.headers.get("Retry-After"),
        )
    return SendResult(status, ErrorKind.NONE, "", text, duration)


def _read_capped(response: requests.Response, deadline: float) -> tuple[str, bool]:
    """Read the answer up to the cap and the deadline; returns (first 2 KiB, timed out)."""
    kept = bytearray()
    read = 0
    timed_out = False
    raw = response.raw
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
    # A fully read answer has already given its connection back to the pool; closing an
    # unfinished one drops the connection, whose unread bytes would poison the next request.
    response.close()
    return kept.decode("utf-8", errors="replace"), timed_out
