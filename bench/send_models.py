"""Threads or asyncio for the sends? Sends per second at N in flight, each way.

    python -m bench.send_models                  # 256 in flight, 10,000 POSTs each way
    python -m bench.send_models --in-flight 64 --requests 5000

The partner (the bench's fast partner) runs in a process of its own. "threads" is what
the delivery engine does: N threads, each POSTing through deliveries.http.webhook_post
(the address guard with the connection pinned to the checked address, no redirects,
the capped read, the hard deadline's watchdog), each with its own kept-alive connections.
"aiohttp" is one event loop with N tasks over one aiohttp session (keep-alive, no
redirects, no guard: the transport alone, the most asyncio could save). Needs aiohttp,
which the project does not install (`pip install aiohttp`). Bodies are 500-entry batches.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import threading
import time

from bench.partner_selftest import start_partner_process


def _body() -> bytes:
    from bench.workloads import batch_bodies

    return batch_bodies(batches=1, batch_size=500)[0]


def threads_rate(url: str, *, in_flight: int, requests: int, body: bytes) -> float:
    from deliveries.http import webhook_post

    remaining = [requests]
    lock = threading.Lock()
    failures = []

    def work(number: int) -> None:
        while True:
            with lock:
                if remaining[0] <= 0:
                    return
                remaining[0] -= 1
            result = webhook_post(url=f"{url}/w/{number}", body=body,
                                  headers={"Content-Type": "application/json"})
            if not result.accepted:
                failures.append(result)

    workers = [threading.Thread(target=work, args=(n,)) for n in range(in_flight)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"{len(failures)} sends failed: {failures[0]}")
    return requests / elapsed


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
    rates: dict[str, list[float]] = {"threads": [], "aiohttp": []}
    try:
        for _ in range(args.rounds):
            rates["threads"].append(threads_rate(url, in_flight=args.in_flight,
                                                 requests=args.requests, body=body))
            rates["aiohttp"].append(aiohttp_rate(url, in_flight=args.in_flight,
                                                 requests=args.requests, body=body))
    finally:
        process.terminate()
        process.wait()
    print(f"{args.in_flight} in flight, {args.requests} POSTs of {len(body):,} bytes per round, "
          f"{args.rounds} rounds alternating")
    for name, values in rates.items():
        shown = ", ".join(f"{value:,.0f}" for value in values)
        print(f"{name:<8} {max(values):>8,.0f} sends/s best  ({shown})")


if __name__ == "__main__":
    main()
