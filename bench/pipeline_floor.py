"""The floor of a pipelined durable sender for one partner catching up, on this machine.

    python -m bench.pipeline_floor [BATCHES]

What `catchup_ratio` could reach if the engine overlapped its steps, as queue systems
that pipeline do: the design measured without the engine around it. Per batch of 500
the least a durable sender does, in raw SQL on a database of its own (read the next stream
rows past the cursor, render, store the delivery and move the cursor, POST, record the
attempt and the acceptance), in four arrangements, each timed against a bare `requests` loop
posting the same bodies to the project's fast partner, rounds alternating:

- `sequential`: one thread, one commit per batch (the durable floor).
- `prepare_ahead`: a thread takes and stores the next batches (up to 4 ahead, each
  committed) while the sender posts the current one and records it (its own connection).
- `prepare_ahead_group_record`: as above, and a third thread records acceptances, as
  many as have come in, per commit.
- `prepare_ahead_no_record`: as above without recording anything: the bound of overlap
  alone (not durable: what the wire and the preparation cost together).

Order is kept in every arrangement: a batch is posted only after the previous one was
answered. The partner runs in a process of its own (tests/support/fast_partner.py), as
in `python -m bench`, so that it never shares a GIL with the sender's threads. Works in
its own database (`pipeline_floor`, dropped at the end).
"""

from __future__ import annotations

import json
import os
import queue
import statistics
import subprocess
import sys
import threading
import time

import psycopg2
import requests

SIZE = 500
AHEAD = 4
ADMIN_DSN = os.environ.get("FLOOR_PG", "dbname=postgres user=root host=127.0.0.1")
BASE = "https://api.example.com"


def _connect(dbname: str | None = None):
    params = dict(part.split("=", 1) for part in ADMIN_DSN.split())
    if dbname:
        params["dbname"] = dbname
    return psycopg2.connect(" ".join(f"{key}={value}" for key, value in params.items()))


def _render(rows) -> str:
    return json.dumps({"changes": [{"action": action, "object": kind, "id": object_id,
                                    "url": f"{BASE}/trainings/{object_id}"}
                                   for _, kind, object_id, action in rows]},
                      separators=(",", ":"))


class Probe:
    def __init__(self, batches: int, url: str) -> None:
        self.batches = batches
        self.url = url
        self.session = requests.Session()
        self.session.trust_env = False

    def post(self, body: str) -> int:
        return self.session.post(self.url, data=body, timeout=15,
                                 headers={"Content-Type": "application/json"}).status_code

    def reset(self, db) -> None:
        with db.cursor() as cursor:
            cursor.execute("TRUNCATE delivery, attempt, cursor_; INSERT INTO cursor_ VALUES (1, 0)")
        db.commit()

    def take(self, db, cursor) -> tuple[int, str]:
        cursor.execute("SELECT seq, kind, object_id, action FROM stream WHERE seq > "
                       "(SELECT seq FROM cursor_ WHERE webhook = 1) ORDER BY seq LIMIT %s",
                       (SIZE,))
        rows = cursor.fetchall()
        body = _render(rows)
        cursor.execute("INSERT INTO delivery (webhook, body, state) VALUES (1, %s, 'queued') "
                       "RETURNING id", (body,))
        delivery_id = cursor.fetchone()[0]
        cursor.execute("UPDATE cursor_ SET seq = %s WHERE webhook = 1", (rows[-1][0],))
        return delivery_id, body

    @staticmethod
    def record(cursor, delivery_id: int, status: int, duration: float) -> None:
        cursor.execute("INSERT INTO attempt (delivery_id, status, started, duration) "
                       "VALUES (%s, %s, now(), %s)", (delivery_id, status, duration))
        cursor.execute("UPDATE delivery SET state = 'accepted', accepted_at = now() "
                       "WHERE id = %s", (delivery_id,))

    def sequential(self, db) -> float:
        self.reset(db)
        cursor = db.cursor()
        started = time.perf_counter()
        for _ in range(self.batches):
            delivery_id, body = self.take(db, cursor)
            sent = time.perf_counter()
            status = self.post(body)
            self.record(cursor, delivery_id, status, time.perf_counter() - sent)
            db.commit()
        return time.perf_counter() - started

    def pipelined(self, db, *, group_record: bool, record: bool = True) -> float:
        self.reset(db)
        prepared: queue.Queue = queue.Queue(maxsize=AHEAD)
        answered: queue.Queue = queue.Queue()

        def prepare() -> None:
            connection = _connect("pipeline_floor")
            cursor = connection.cursor()
            for _ in range(self.batches):
                prepared.put(self.take(connection, cursor))
                connection.commit()
            connection.close()

        def recorder() -> None:
            connection = _connect("pipeline_floor")
            cursor = connection.cursor()
            done = 0
            while done < self.batches:
                items = [answered.get()]
                while True:
                    try:
                        items.append(answered.get_nowait())
                    except queue.Empty:
                        break
                for item in items:
                    self.record(cursor, *item)
                connection.commit()
                done += len(items)
            connection.close()

        started = time.perf_counter()
        threads = [threading.Thread(target=prepare)]
        if record and group_record:
            threads.append(threading.Thread(target=recorder))
        for thread in threads:
            thread.start()
        cursor = db.cursor()
        for _ in range(self.batches):
            delivery_id, body = prepared.get()
            sent = time.perf_counter()
            status = self.post(body)
            if not record:
                continue
            if group_record:
                answered.put((delivery_id, status, time.perf_counter() - sent))
            else:
                self.record(cursor, delivery_id, status, time.perf_counter() - sent)
                db.commit()
        for thread in threads:
            thread.join()
        return time.perf_counter() - started

    def bare(self, bodies: list[str]) -> float:
        started = time.perf_counter()
        for body in bodies:
            self.post(body)
        return time.perf_counter() - started


def main(argv: list[str]) -> None:
    batches = int(argv[0]) if argv else 200
    admin = _connect()
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute("DROP DATABASE IF EXISTS pipeline_floor")
        cursor.execute("CREATE DATABASE pipeline_floor")
    db = _connect("pipeline_floor")
    with db.cursor() as cursor:
        cursor.execute("CREATE TABLE stream (seq bigserial PRIMARY KEY, kind text, "
                       "object_id bigint, action text)")
        cursor.execute("CREATE TABLE delivery (id bigserial PRIMARY KEY, webhook int, body text, "
                       "state text, created_at timestamptz DEFAULT now(), "
                       "accepted_at timestamptz)")
        cursor.execute("CREATE TABLE attempt (id bigserial PRIMARY KEY, delivery_id bigint, "
                       "status int, started timestamptz, duration float)")
        cursor.execute("CREATE TABLE cursor_ (webhook int PRIMARY KEY, seq bigint)")
        cursor.execute("INSERT INTO stream (kind, object_id, action) SELECT 'training', g, "
                       "'update' FROM generate_series(1, %s) g", (batches * SIZE,))
        cursor.execute("SELECT seq, kind, object_id, action FROM stream ORDER BY seq")
        rows = cursor.fetchall()
    db.commit()
    bodies = [_render(rows[start:start + SIZE]) for start in range(0, len(rows), SIZE)]
    partner = subprocess.Popen(
        [sys.executable, "tests/support/fast_partner.py", "--port", "0"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        partner_url = partner.stdout.readline().split()[-1]
        # It prints its rate every second: read on, so that it never blocks on the pipe.
        threading.Thread(target=partner.stdout.read, daemon=True).start()
        probe = Probe(batches, partner_url + "/w/1")
        sides = {
            "sequential": lambda: probe.sequential(db),
            "prepare_ahead": lambda: probe.pipelined(db, group_record=False),
            "prepare_ahead_group_record": lambda: probe.pipelined(db, group_record=True),
            "prepare_ahead_no_record": lambda: probe.pipelined(
                db, group_record=False, record=False),
        }
        ratios: dict[str, list[float]] = {name: [] for name in sides}
        seconds: dict[str, list[float]] = {name: [] for name in [*sides, "bare"]}
        for round_number in range(5):
            for name, side in (sides.items() if round_number % 2 else
                               reversed(list(sides.items()))):
                bare = probe.bare(bodies)
                measured = side()
                ratios[name].append(bare / measured)
                seconds[name].append(measured)
                seconds["bare"].append(bare)
    finally:
        partner.terminate()
        partner.wait()
        db.close()
        with admin.cursor() as cursor:
            cursor.execute("DROP DATABASE IF EXISTS pipeline_floor")
        admin.close()
    print(json.dumps({
        "batches": batches, "cpus": os.cpu_count(),
        "ms_per_batch": {name: round(statistics.median(values) / batches * 1000, 2)
                         for name, values in seconds.items()},
        "ratio": {name: round(statistics.median(values), 3) for name, values in ratios.items()},
    }, indent=1))


if __name__ == "__main__":
    sys.path.insert(0, os.getcwd())
    main(sys.argv[1:])
