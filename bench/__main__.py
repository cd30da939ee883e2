"""python -m bench [--quick] [--json PATH] [--only NAME ...]: the performance suite.

Runs on PostgreSQL in a database of its own (see bench.environment), with Redis for the
Celery figure (BENCH_REDIS_URL, default redis://127.0.0.1:6379/11: that database is
flushed), and prints a table of every figure against its goal.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

from bench.environment import (
    DEFAULT_REDIS,
    bench_database_url,
    child_environment,
    database_recreate,
)

GOALS = {
    "capture_ratio": ("<=", 1.5),
    "capture_webhooks_ratio": ("<=", 1.10),
    "import_changes": ("==", 501),
    "import_ratio": ("<=", 1.05),
    "import_ratio_spread": ("<=", 0.02),
    "drain_rate": (">=", 200_000),
    "drain_peak_rss_mb": ("<=", 150),
    "drain_scaling": ("<=", 1.2),
    "delivery_ratio": (">=", 0.5),
    "celery_delivery_ratio": (">=", 0.4),
    "resync_delivery_ratio": (None, None),
    "catchup_ratio": (">=", 0.3),
    "fanout_ratio": (">=", 0.5),
    "fanout_body_ratio": ("<=", 1.1),
    "scoped_fanout_ratio": (None, None),
    # scoped_fanout_ratio ÷ fanout_ratio (both measured in the run): a scoped webhook costs
    # in proportion to what it receives.
    "scoped_fanout_vs_fanout": (">=", 0.5),
    "latency_p50": (None, None),
    "latency_p95": (None, None),
    "latency_p99": ("<=", 1.5),
    "isolation_p95_delta": ("<=", 0.5),
}


def goal_met(key: str, value: object) -> bool | None:
    operator, goal = GOALS.get(key, (None, None))
    if operator is None or not isinstance(value, int | float):
        return None
    return {"<=": value <= goal, ">=": value >= goal, "==": value == goal}[operator]


def table(results: dict) -> str:
    lines = [f"{'figure':<26}{'value':>14}  {'goal':<12}"]
    for key, value in results.items():
        shown = f"{value:,.3f}" if isinstance(value, float) else f"{value}"
        operator, goal = GOALS.get(key, (None, None))
        goal_text = f"{operator} {goal:,}" if operator else ""
        met = goal_met(key, value)
        verdict = "" if met is None else ("ok" if met else "MISSED")
        lines.append(f"{key:<26}{shown:>14}  {goal_text:<12}{verdict}")
    return "\n".join(lines)


def machine() -> dict:
    model = ""
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as meminfo:
        total_kb = int(meminfo.readline().split()[1])
    return {"nproc": os.cpu_count(), "cpu": model, "ram_gib": round(total_kb / 2**20, 1),
            "python": platform.python_version()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller run, under a minute")
    parser.add_argument("--json", metavar="PATH", help="also write the figures to PATH")
    parser.add_argument("--only", nargs="+", metavar="NAME",
                        help="run only these: capture import drain delivery catchup latency "
                        "fanout scoped_fanout")
    args = parser.parse_args(argv)

    database_url = bench_database_url()
    env = child_environment(
        database_url, CELERY_BROKER_URL=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS)
    )
    os.environ.update(env)
    print(f"bench database: {database_url}", file=sys.stderr, flush=True)
    database_recreate(database_url)

    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    import redis

    redis.Redis.from_url(env["CELERY_BROKER_URL"]).flushdb()

    from bench.measures import FULL, MEASURES, QUICK
    from bench.partner import FastPartner

    scale = QUICK if args.quick else FULL
    names = args.only or list(MEASURES)
    results: dict = {}
    started = time.perf_counter()
    with FastPartner(hang_paths={"/hang"}) as partner:
        for name in names:
            began = time.perf_counter()
            print(f"running {name} …", file=sys.stderr, flush=True)
            results.update(MEASURES[name](scale, partner, env))
            print(f"  {name} took {time.perf_counter() - began:.1f}s", file=sys.stderr,
                  flush=True)
    if results.get("fanout_ratio") and "scoped_fanout_ratio" in results:
        results["scoped_fanout_vs_fanout"] = (
            results["scoped_fanout_ratio"] / results["fanout_ratio"]
        )
    figures = {key: value for key, value in results.items() if not key.startswith("_")}
    details = {key[1:]: value for key, value in results.items() if key.startswith("_")}
    print(table(figures))
    print("\ndetails: " + ", ".join(
        f"{key}={value:,.3f}" if isinstance(value, float) else f"{key}={value}"
        for key, value in details.items()))
    print(f"total {time.perf_counter() - started:.0f}s, {'quick' if args.quick else 'full'} run")
    if args.json:
        with open(args.json, "w") as out:
            json.dump({**figures, "details": details, "machine": machine(),
                       "quick": args.quick}, out, indent=2)
            out.write("\n")


if __name__ == "__main__":
    main()
