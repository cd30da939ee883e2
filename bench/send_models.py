"""Which way to send? Sends per second at N in flight, each way.

    python -m bench.send_models                  # 256 in flight, 10,000 POSTs each way
    python -m bench.send_models --in-flight 64 --requests 5000

The partner (the bench's fast partner) runs in a process of its own. "send loop" is what
the delivery engine does: N coroutines on the process's send loop, each POSTing through
deliveries.http.webhook_post_async (the address guard with the connection pinned to the
checked address, no redirects, the capped read, the whole-attempt deadline) over its
kept-alive connections. "aiohttp" is one event loop with N tasks over a bare aiohttp
session (keep-alive, no redirects, no guard: the transport alone); "httpx" the same with
one bare httpx.AsyncClient. Bodies are 500-entry batches.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import time

from bench.partner_selftest import start_partner_process


def _body() -> bytes:
    from bench.workloads import batch_bodies

    return batch_bodies(batches=1, batch_size=500)[0]


def send_loop_rate(url: str, *, in_flight: int, requests: int, body: bytes) -> float:
    from deliveries.http import send_loop, webhook_post_async

    async def run() -> float:
        remaining = [requests]
        failures = []

        async def work(number: int) -> None:
            while remaining[0] > 0:
                remaining[0] -= 1
                result = await webhook_post_async(
                    url=f"{url}/w/{number}", body=body,
                    headers={"Content-Type": "application/json"},
                )
                if not result.accepted:
                    failures.append(result)

        started = time.perf_counter()
        await asyncio.gather(*(work(n) for n in range(in_flight)))
        elapsed = time.perf_counter() - started
        if failures:
            raise RuntimeError(f"{len(failures)} sends failed: {failures[0]}")
        return requests / elapsed

    return send_loop().run(run())


def aiohttp_rate(url: str, *, in_flight: int, requests: int, body: bytes) -> float:
    import aiohttp

    async def run() -> float:
        remaining = [requests]
        connector = aiohttp.TCPConnector(limit=in_flight)
        timeout = aiohttp.ClientTimeout(total=15, connect=5)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            async def work(number: int) -> None:
                while remaining[0] > 0:
                    remaining[0] -= 1
                    async with session.post(f"{url}/w/{number}", data=body,
                                            headers={"Content-Type": "application/json"},
                                            allow_redirects=False) as response:
                        await response.content.read(64 * 1024)
                        response.raise_for_status()

            started = time.perf_counter()
            await asyncio.gather(*(work(n) for n in range(in_flight)))
            return requests / (time.perf_counter() - started)

    return asyncio.run(run())


def httpx_rate(url: str, *, in_flight: int, requests: int, body: bytes) -> float:
    import logging

    import httpx

    # httpx logs every request at INFO: a line per send would be measured too.
    logging.getLogger("httpx").setLevel(logging.WARNING)

    async def run() -> float:
        remaining = [requests]
        limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)
        timeout = httpx.Timeout(15, connect=5)
        # TCP_NODELAY as aiohttp sets it: httpcore writes the head and the body apart, and
        # without it Nagle holds the body for the partner's delayed ACK (40 ms).
        transport = httpx.AsyncHTTPTransport(
            limits=limits, socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
        )
        async with httpx.AsyncClient(transport=transport, timeout=timeout, trust_env=False,
                                     follow_redirects=False) as client:
            async def work(number: int) -> None:
                while remaining[0] > 0:
                    remaining[0] -= 1
                    async with client.stream(
                        "POST", f"{url}/w/{number}", content=body,
                        headers={"Content-Type": "application/json"},
                    ) as response:
                        read = 0
                        async for chunk in response.aiter_raw():
                            read += len(chunk)
                            if read >= 64 * 1024:  # the cap, as the engine reads
                                break
                        response.raise_for_status()

            started = time.perf_counter()
            await asyncio.gather(*(work(n) for n in range(in_flight)))
            return requests / (time.perf_counter() - started)

    return asyncio.run(run())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.send_models",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--in-flight", type=int, default=256)
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "springhook.settings")
    os.environ["WEBHOOK_ALLOW_PRIVATE_URLS"] = "1"
    os.environ.setdefault("DATABASE_URL", "sqlite:///:memory:")
    import django

    django.setup()
    body = _body()
    process, url = start_partner_process()
    models = {"send loop": send_loop_rate, "aiohttp": aiohttp_rate, "httpx": httpx_rate}
    rates: dict[str, list[float]] = {name: [] for name in models}
    try:
        for _ in range(args.rounds):
            for name, rate in models.items():
                rates[name].append(rate(url, in_flight=args.in_flight,
                                        requests=args.requests, body=body))
    finally:
        process.terminate()
        process.wait()
    print(f"{args.in_flight} in flight, {args.requests} POSTs of {len(body):,} bytes per round, "
          f"{args.rounds} rounds alternating")
    for name, values in rates.items():
        shown = ", ".join(f"{value:,.0f}" for value in values)
        print(f"{name:<9} {max(values):>8,.0f} sends/s best  ({shown})")


if __name__ == "__main__":
    main()
