"""The fast benchmark partner: answers at once, keeps connections alive, records, hangs."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.support.fast_partner import FastPartner


@pytest.fixture
def partner() -> Iterator[FastPartner]:
    with FastPartner(hang_paths={"/hang"}) as running:
        yield running


def test_answers_200_with_an_empty_body_on_one_keep_alive_connection(
    partner: FastPartner,
) -> None:
    with requests.Session() as session:
        responses = [session.post(f"{partner.url}/hook", data=b"{}") for _ in range(5)]

    assert [response.status_code for response in responses] == [200] * 5
    assert all(response.content == b"" for response in responses)
    assert len({request.connection for request in partner.requests}) == 1
    assert partner.request_count == 5


def test_records_webhook_id_path_body_and_arrival_time(partner: FastPartner) -> None:
    before = time.time()

    requests.post(f"{partner.url}/a/b?x=1", data=b'{"changes":[]}', headers={"webhook-id": "m1"})
    requests.post(f"{partner.url}/c", data=b"second")

    first, second = partner.requests
    assert (first.method, first.path, first.webhook_id, first.body) == (
        "POST",
        "/a/b?x=1",
        "m1",
        b'{"changes":[]}',
    )
    assert (second.path, second.webhook_id, second.body) == ("/c", None, b"second")
    assert before <= first.arrived_at <= second.arrived_at <= time.time()
    assert partner.bytes_received == len(b'{"changes":[]}') + len(b"second")


def test_large_body_is_read_whole(partner: FastPartner) -> None:
    body = b"x" * 300_000

    assert requests.post(f"{partner.url}/big", data=body).status_code == 200
    assert partner.requests[0].body == body


def test_hang_path_is_never_answered_while_others_are(partner: FastPartner) -> None:
    with pytest.raises(requests.ReadTimeout):
        requests.post(f"{partner.url}/hang?attempt=1", data=b"{}", timeout=(1, 0.5))

    assert requests.post(f"{partner.url}/ok", data=b"{}", timeout=2).status_code == 200
    assert [request.path for request in partner.requests] == ["/hang?attempt=1", "/ok"]


def test_stop_closes_a_hanging_connection() -> None:
    partner = FastPartner(hang_paths={"/hang"}).start()
    connection = socket.create_connection(("127.0.0.1", partner.port))
    connection.sendall(b"POST /hang HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
    connection.settimeout(5)
    deadline = time.monotonic() + 5
    while not partner.requests and time.monotonic() < deadline:
        time.sleep(0.01)

    started = time.monotonic()
    partner.stop()

    assert time.monotonic() - started < 2
    assert connection.recv(100) == b""  # closed without an answer
    connection.close()


def test_connection_close_is_honoured(partner: FastPartner) -> None:
    with socket.create_connection(("127.0.0.1", partner.port), timeout=5) as connection:
        connection.sendall(
            b"POST /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
        )
        answer = b""
        while chunk := connection.recv(4096):
            answer += chunk

    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Connection: close" in answer


def test_chunked_body_is_refused(partner: FastPartner) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"{}"

    response = requests.post(f"{partner.url}/x", data=chunks())

    assert response.status_code == 411


def test_reset_forgets_requests_and_counters(partner: FastPartner) -> None:
    requests.post(f"{partner.url}/x", data=b"abc")

    partner.reset()

    assert partner.requests == []
    assert (partner.request_count, partner.bytes_received) == (0, 0)


def test_counts_without_recording_when_record_is_off() -> None:
    with FastPartner(record=False) as partner:
        requests.post(f"{partner.url}/x", data=b"abc")

        assert partner.requests == []
        assert (partner.request_count, partner.bytes_received) == (1, 3)


def test_port_in_use_fails_at_start(partner: FastPartner) -> None:
    with pytest.raises(OSError):
        FastPartner(port=partner.port).start()


def test_answer_delay_holds_each_answer_and_in_flight_peak_counts_overlaps() -> None:
    with FastPartner(answer_delay=0.3) as partner, ThreadPoolExecutor(3) as pool:
        started = time.monotonic()
        requests.post(f"{partner.url}/one", data=b"{}")
        assert time.monotonic() - started >= 0.3
        # Two at once on /two overlap; /one and /three see one at a time.
        list(pool.map(lambda _: requests.post(f"{partner.url}/two?n=1", data=b"{}"), range(2)))
        requests.post(f"{partner.url}/three", data=b"{}")
        requests.post(f"{partner.url}/three", data=b"{}")

        assert partner.in_flight_peak == {"/one": 1, "/two": 2, "/three": 1}
        partner.reset()
        assert partner.in_flight_peak == {}
