"""Every attempt ends within WEBHOOK_TIMEOUT, whatever a real partner does on its socket.

A timeout per socket read would never end these partners (a byte every 0.3 s never trips
a 2 s read timeout): only the one deadline around the whole attempt does.
"""

import socket
import threading
import time
import tracemalloc

import pytest

from deliveries.http import webhook_post
from deliveries.models import DeliveryAttempt
from deliveries.services import dispatch_tick
from tests.deliveries.helpers import engine_run, record
from tests.support.partner import Behaviour
from tests.support.raw_partner import FRAMINGS, RawAnswer, RawPartner
from webhooks.models import Webhook

TIMEOUT = 2.0
# Room for the thread switch and the recording; far below what a dripping partner would take
# (the header drip alone lasts about 12 s, the body drip 30 s).
SLACK = 1.5


@pytest.fixture
def webhook(db, fast_delivery, partner):
    fast_delivery.WEBHOOK_TIMEOUT = TIMEOUT
    return Webhook.objects.create(name="Partner", url=partner.url)


def attempt_once(webhook) -> tuple[DeliveryAttempt, float]:
    record("update", "training", 7, 1)
    dispatch_tick()
    started = time.monotonic()
    assert engine_run(webhook.pk) == 1
    elapsed = time.monotonic() - started
    return DeliveryAttempt.objects.get(), elapsed


@pytest.mark.parametrize(
    ("behaviour", "error_kind"),
    [
        (Behaviour(hang=10), "timeout"),
        (Behaviour(half_close=True), "connection"),
        (Behaviour(reset=True), "connection"),
        (Behaviour(header_drip=0.3), "timeout"),
        (Behaviour(body=b"x" * 100, drip=0.3), "timeout"),
    ],
    ids=["hang", "half-close", "reset", "header-drip", "body-drip"],
)
def test_each_attempt_ends_within_the_timeout(webhook, partner, behaviour, error_kind):
    partner.then(behaviour)
    attempt, elapsed = attempt_once(webhook)
    assert elapsed <= TIMEOUT + SLACK
    assert attempt.duration <= TIMEOUT + SLACK
    assert (attempt.error_kind, attempt.accepted) == (error_kind, False)
    assert partner.wait_for(1)


def test_a_50_mb_answer_is_read_only_up_to_the_cap(webhook, partner):
    partner.then(Behaviour(body_size=50 * 1024 * 1024))
    tracemalloc.start()
    try:
        attempt, elapsed = attempt_once(webhook)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Reading the whole answer would take 50 MB; the cap keeps 64 KiB and drops the rest
    # with the connection.
    print(f"50 MB answer: Python memory peak {peak / 1e6:.2f} MB, {elapsed:.2f} s")
    assert peak < 20 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"
    assert elapsed <= TIMEOUT + SLACK
    assert (attempt.status_code, attempt.accepted) == (200, True)
    assert attempt.response_body == "x" * 2048


def test_the_connection_is_usable_again_after_a_deadline(webhook, partner):
    # The shut-down socket must not be handed to the next attempt as if it were alive.
    partner.then(Behaviour(body=b"x" * 100, drip=0.3))
    attempt_once(webhook)
    from deliveries.services import webhook_retry_now

    webhook_retry_now(webhook_id=webhook.pk)
    dispatch_tick()
    engine_run(webhook.pk)
    kinds = list(DeliveryAttempt.objects.order_by("number").values_list("error_kind", flat=True))
    assert kinds == ["timeout", ""]


def test_a_name_lookup_that_never_answers_is_a_dns_error_within_the_connect_timeout(
    db, fast_delivery, monkeypatch
):
    answered = threading.Event()

    def silent_resolver(*args):
        answered.wait(10)  # a DNS server that does not answer; released at the end
        raise OSError("no answer")

    monkeypatch.setattr("deliveries.http._resolver", silent_resolver)
    webhook = Webhook.objects.create(name="Slow DNS", url="http://partner.example/hook")
    try:
        attempt, elapsed = attempt_once(webhook)
    finally:
        answered.set()
    assert elapsed <= fast_delivery.WEBHOOK_CONNECT_TIMEOUT + SLACK
    assert attempt.error_kind == "dns"
    assert "did not resolve within" in attempt.error_message


def test_deadlines_and_lookups_work_in_a_forked_child(fast_delivery, partner):
    # Celery's prefork pool forks workers from a parent that may have sent already: the
    # child must get its own send loop and resolver threads, not the parent's dead ones.
    import os
    import signal

    fast_delivery.WEBHOOK_TIMEOUT = TIMEOUT
    assert webhook_post(url=partner.url, body=b"{}", headers={}).accepted  # threads started
    partner.then(Behaviour(header_drip=0.3))  # only the deadline can end this one
    pid = os.fork()
    if pid == 0:  # the child: report through the exit code only
        code = 2
        try:
            result = webhook_post(url=partner.url, body=b"{}", headers={})
            code = 0 if result.error_kind == "timeout" and result.duration <= TIMEOUT + SLACK else 1
        finally:
            os._exit(code)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("the forked child's attempt never ended")
    assert os.waitstatus_to_exitcode(status) == 0


@pytest.fixture
def raw_partner():
    started = []

    def start(answer: RawAnswer) -> RawPartner:
        started.append(RawPartner(answer).start())
        return started[-1]

    yield start
    for partner in started:
        partner.stop()


@pytest.mark.parametrize("drip", ["head", "body"])
@pytest.mark.parametrize("framing", sorted(FRAMINGS))
def test_every_framing_dripped_ends_at_the_deadline(fast_delivery, raw_partner, framing, drip):
    # A byte every 0.3 s: the head alone lasts 15 s or more, the body (100 bytes) 30 s.
    fast_delivery.WEBHOOK_TIMEOUT = TIMEOUT
    answer = RawAnswer(framing, drip_head=0.3 if drip == "head" else 0,
                       drip_body=0.3 if drip == "body" else 0)
    partner = raw_partner(answer)
    started = time.monotonic()
    result = webhook_post(url=partner.url, body=b"{}", headers={})
    elapsed = time.monotonic() - started
    assert elapsed <= TIMEOUT + SLACK, f"{framing}, {drip} dripped: {elapsed:.1f} s"
    assert (result.error_kind, result.accepted) == ("timeout", False)
    assert partner.requests == 1


@pytest.mark.parametrize("framing", sorted(FRAMINGS))
def test_every_framing_answered_at_once_is_accepted(fast_delivery, raw_partner, framing):
    # The same partner without the drip: the framing itself is read correctly, twice (the
    # second send reuses a kept-alive connection where the framing allows one).
    fast_delivery.WEBHOOK_TIMEOUT = TIMEOUT
    partner = raw_partner(RawAnswer(framing))
    for _ in range(2):
        result = webhook_post(url=partner.url, body=b"{}", headers={})
        assert (result.status_code, result.accepted, result.response_body) == (
            200, True, "x" * 100
        )


@pytest.mark.parametrize(
    ("host", "wire_host"),
    [("bücher.example", "xn--bcher-kva.example"),
     ("пример.испытание", "xn--e1afmkfd.xn--80akhbyknj4f")],
    ids=["latin-1-name", "cyrillic-name"],
)
def test_an_internationalised_host_is_sent_idna_encoded(
    db, fast_delivery, partner, monkeypatch, host, wire_host
):
    # The partner's DNS answers for the encoded name only, as real DNS does.
    looked_up = []

    def resolver(name, port, *args):
        looked_up.append(name)
        assert name == wire_host
        return socket.getaddrinfo("127.0.0.1", port, *args)

    monkeypatch.setattr("deliveries.http._resolver", resolver)
    port = partner.server.server_address[1]
    webhook = Webhook.objects.create(name="IDN", url=f"http://{host}:{port}/hook")
    attempt, _ = attempt_once(webhook)
    assert (attempt.accepted, attempt.error_kind) == (True, "")
    (received,) = partner.wait_for(1)
    assert received.headers["Host"] == f"{wire_host}:{port}"
    assert looked_up == [wire_host]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:99999/hook",  # port out of range: urlsplit's .port raises
        "http://127.0.0.1:8a/hook",
        "http://[::1/hook",  # unclosed bracket: urlsplit raises
        "http://[::1]x/hook",
        "",
        "not a url",
        "ftp://127.0.0.1/hook",
        "http:///hook",
        "http://user:pw@127.0.0.1/hook",
        "http://127.0.0.1/ho ok",
        "http://127.0.0.1/hook\r\nX-Injected: 1",
        "http://exa\u00admple.test/hook",
        "http://\u0301abc.test/hook",  # no IDNA encoding
        "http://a..b.test/hook",
        "http://" + "a" * 64 + ".test/hook",
        "http://127.0.0.1:0/hook",
    ],
)
def test_a_malformed_url_in_the_database_is_a_refused_attempt(db, fast_delivery, url):
    # Written straight into the database, past the validators: the send must still end as
    # a recorded attempt, never an exception.
    webhook = Webhook.objects.create(name="Broken", url="http://127.0.0.1:9/hook")
    Webhook.objects.filter(pk=webhook.pk).update(url=url)
    attempt, _ = attempt_once(webhook)
    assert (attempt.accepted, attempt.error_kind) == (False, "refused_address")
    assert attempt.error_message.startswith("webhook URL refused: ")


def test_a_send_refused_for_a_private_answer_records_no_address(db, fast_delivery):
    # Partners read their attempts (GET /webhooks/<id>/deliveries): a name that points
    # into our network must not tell them what it resolves to. This machine's own name
    # resolves, through the real resolver, to one of its own (forbidden) addresses.
    fast_delivery.WEBHOOK_ALLOW_PRIVATE_URLS = False
    hostname = socket.gethostname().lower()
    addresses = {answer[4][0] for answer in socket.getaddrinfo(hostname, 80)}

    result = webhook_post(url=f"http://{hostname}:9/hook", body=b"{}", headers={})

    assert result.error_kind == "refused_address"
    assert f"webhook host {hostname!r} resolves to a private address" in result.error_message
    assert not any(address in result.error_message for address in addresses), addresses


@pytest.mark.parametrize("drip", [0.3, 0], ids=["dripped", "silent"])
def test_a_tls_handshake_that_never_ends_is_cut_at_the_deadline(fast_delivery, drip):
    # The connect timeout is set past the deadline, so that only the one timeout around
    # the whole attempt (connect, handshake, request, answer) can end it: a byte every
    # 0.3 s would keep any per-read timeout from ever firing.
    from tests.support.tls_partner import DrippingTLSPartner

    fast_delivery.WEBHOOK_TIMEOUT = TIMEOUT
    fast_delivery.WEBHOOK_CONNECT_TIMEOUT = 30
    partner = DrippingTLSPartner(drip=drip).start()
    try:
        started = time.monotonic()
        result = webhook_post(url=partner.url, body=b"{}", headers={})
        elapsed = time.monotonic() - started
    finally:
        partner.stop()
    assert TIMEOUT - 0.1 <= elapsed <= TIMEOUT + SLACK, f"{elapsed:.1f} s"
    assert (result.error_kind, result.accepted) == ("timeout", False)
    assert "longer than the timeout" in result.error_message
    assert partner.connections == 1


def test_the_tls_server_name_is_the_idna_host_and_the_certificate_is_checked(
    db, fast_delivery, monkeypatch, tmp_path
):
    # The connection goes to the checked address, but TLS asks for the webhook's own name
    # (IDNA-encoded), and a certificate nobody vouches for is refused.
    from tests.support.tls_partner import SNIRecordingTLSPartner

    partner = SNIRecordingTLSPartner(tmp_path).start()
    monkeypatch.setattr(
        "deliveries.http._resolver",
        lambda name, port, *args: socket.getaddrinfo("127.0.0.1", port, *args),
    )
    try:
        result = webhook_post(
            url=f"https://bücher.example:{partner.port}/hook", body=b"{}", headers={}
        )
    finally:
        partner.stop()
    assert partner.server_names == ["xn--bcher-kva.example"]
    assert (result.error_kind, result.accepted) == ("tls", False)
    assert "certificate" in result.error_message.lower()


def test_attempts_to_one_partner_share_a_kept_alive_connection(fast_delivery):
    partner = RawPartner(RawAnswer("length-keepalive")).start()
    try:
        for path in ("/a", "/b", "/a"):
            url = partner.url.replace("/hook", path)
            assert webhook_post(url=url, body=b"{}", headers={}).accepted
    finally:
        partner.stop()
    assert (partner.requests, partner.connections) == (3, 1)


def test_no_compression_is_asked_for_and_none_is_undone(fast_delivery, partner):
    import gzip

    partner.then(Behaviour(headers={"Content-Encoding": "gzip"}, body=gzip.compress(b"ok")))
    result = webhook_post(url=partner.url, body=b"{}", headers={})
    (request,) = partner.wait_for(1)
    assert request.headers["Accept-Encoding"] == "identity"
    assert result.accepted and result.response_body != "ok", "never inflated"


@pytest.fixture
def answers_once():
    """A bare socket that answers each connection with the next of the given raw answers."""
    listener = socket.create_server(("127.0.0.1", 0))

    def start(*answers: bytes) -> str:
        def serve() -> None:
            for answer in answers:
                client, _ = listener.accept()
                with client:
                    client.recv(65536)
                    client.sendall(answer)

        threading.Thread(target=serve, daemon=True).start()
        return f"http://127.0.0.1:{listener.getsockname()[1]}/hook"

    yield start
    listener.close()


def test_header_bytes_that_are_not_utf8_are_read_as_latin1(fast_delivery, answers_once):
    # As HTTP/1.1 defines header text, and as http.client read it: never a lone surrogate.
    url = answers_once(
        b"HTTP/1.1 503 Busy\r\nRetry-After: \xb2\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 302 Found\r\nLocation: /\xff\r\nContent-Length: 0\r\n\r\n",
    )
    busy = webhook_post(url=url, body=b"{}", headers={})
    moved = webhook_post(url=url, body=b"{}", headers={})
    assert (busy.error_kind, busy.retry_after) == ("http_status", "\u00b2")
    assert (moved.error_kind, moved.error_message) == ("redirect", "redirect to '/ÿ' not followed")
