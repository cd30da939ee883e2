"""Measure how many requests per second the fast partner answers.

    python -m bench.partner_selftest                       # partner in a child process
    python -m bench.partner_selftest --partner thread      # partner in this process
    python -m bench.partner_selftest --client raw          # without requests' own cost

Each client thread sends its share of ``--requests`` POSTs one after another on one
keep-alive connection, the way a webhook sender does. With ``--client requests`` the
figure is mostly the cost of ``requests`` itself; ``--client raw`` writes prepared bytes
to a socket and shows the partner's own ceiling. ``--partner thread`` is how benchmarks
in one process use :class:`FastPartner`: client and partner then share one GIL.
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import requests

from bench.partner import FastPartner


def request_body(size: int) -> bytes:
    """A webhook-like JSON body of about ``size`` bytes."""
    change = {"action": "update", "object": "training", "id": 123456, "url": "http://x/t/123456"}
    entry_size = len(json.dumps(change)) + 1
    changes = [change] * max(1, size // entry_size)
    return json.dumps({"changes": changes}, separators=(",", ":")).encode()


def send_with_requests(url: str, count: int, body: bytes) -> None:
    with requests.Session() as session:
        for number in range(count):
            headers = {"Content-Type": "application/json", "webhook-id": f"msg_{number}"}
            response = session.post(url, data=body, headers=headers, timeout=10)
            assert response.status_code == 200, response.status_code


def send_raw(url: str, count: int, body: bytes) -> None:
    address = urlsplit(url)
    request = (
        f"POST /webhook HTTP/1.1\r\nHost: {address.netloc}\r\n"
        f"Content-Type: application/json\r\nwebhook-id: msg_1\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    expected = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    with socket.create_connection((address.hostname, address.port)) as connection:
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(count):
            connection.sendall(request)
            answer = b""
            while len(answer) < len(expected):
                chunk = connection.recv(4096)
                if not chunk:
                    raise ConnectionError("the partner closed the connection")
                answer += chunk
            assert answer == expected, answer


def start_partner_process() -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.partner", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    match = re.search(r"listening on (\S+)", process.stdout.readline())
    if not match:
        process.kill()
        raise RuntimeError("the partner process did not start")
    # Keep reading its once-a-second lines so the pipe never fills up.
    threading.Thread(target=process.stdout.read, daemon=True).start()
    return process, match.group(1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--body-bytes", type=int, default=1_000)
    parser.add_argument("--client", choices=["requests", "raw"], default="requests")
    parser.add_argument("--partner", choices=["process", "thread"], default="process")
    args = parser.parse_args(argv)

    partner: FastPartner | None = None
    process: subprocess.Popen[str] | None = None
    if args.partner == "thread":
        partner = FastPartner(record=False).start()
        url = partner.url
    else:
        process, url = start_partner_process()

    body = request_body(args.body_bytes)
    send = send_with_requests if args.client == "requests" else send_raw
    per_thread = args.requests // args.threads
    send(f"{url}/webhook", 10, body)  # warm up: imports, first connection
    with ThreadPoolExecutor(args.threads) as pool:
        started = time.perf_counter()
        sends = [pool.submit(send, f"{url}/webhook", per_thread, body) for _ in range(args.threads)]
        for sent in sends:
            sent.result()  # re-raises a client's failure
        elapsed = time.perf_counter() - started

    if partner is not None:
        assert partner.request_count == per_thread * args.threads + 10, partner.request_count
        partner.stop()
    if process is not None:
        process.terminate()
        process.wait()
    total = per_thread * args.threads
    print(
        f"{total} POSTs of {len(body)} bytes in {elapsed:.2f}s: {total / elapsed:,.0f} requests/s"
        f" (partner in a {args.partner}, {args.client} client, {args.threads} threads)"
    )


if __name__ == "__main__":
    main()
