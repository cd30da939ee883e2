"""Reference receiver for Springhook webhooks: verify, de-duplicate, mirror the catalogue.

Copy this file and adapt it. It shows what every receiver has to get right:

1. **Verify** each POST with a Standard Webhooks library (signature and a 5-minute
   timestamp tolerance). While the sender rotates its secret it sends two signatures;
   the library accepts the body if either matches.
2. **Answer fast, lose nothing.** The request only verifies the body and writes it to a
   local ``inbox`` table, then answers 204. A worker thread applies inbox rows oldest
   first and deletes each row once it is applied. If this process dies, the rows are
   still on disk and are applied after the restart.
3. **De-duplicate on ``webhook-id``.** Delivery is at least once, so the same batch can
   arrive twice. A ``webhook-id`` that is in the inbox or already processed is answered
   200 and ignored.

A change only says *what* changed. To apply it, the worker asks the Trainings API how the
object looks *now*. That makes applying a change twice harmless.

Two ways to start from a mirror that is empty, stale or lost:

- ``--reconcile``: before applying any batch, walk ``GET /institutes`` and
  ``GET /trainings`` and make the mirror exactly what they list (what is not listed was
  removed). Batches that arrive meanwhile wait in the inbox and are applied after.
- ``--resync``: ask Springhook to send the whole catalogue through the webhook
  (``POST /webhooks/<id>/resync``): an ``import`` of every institute arrives after what
  already waits, in order, and is applied like any batch. Needs a key that belongs to
  the webhook; ``--webhook-id`` names it (default: the key's only webhook).

A webhook with a scope (some institutes, or only institutes, or only trainings) sends
just that part; ``--scoped`` keeps the mirror exactly that part: before each batch the
receiver reads its webhook's scope (``GET /webhooks/<id>``), stores only what the scope
holds, drops what an entry shows has left it (a training whose institute is outside),
applies an ``import`` as "replace what my scope holds of this institute", and
``--reconcile`` walks only the scope (``GET /institutes?id=…``, ``GET /trainings?institute=…``).

Run::

    python examples/partner/receiver.py --port 9000 --secret whsec_... \\
        --api-key KEY --db mirror.sqlite3 --api-url https://api.example.com [--reconcile]

Check the mirror and repair it (``verify``: compares it with the webhook's digest, walks
the id ranges that differ, fetches what is missing or stale and deletes what should not be
there; run it while the receiver is stopped, or between batches)::

    python examples/partner/receiver.py verify --api-key KEY --db mirror.sqlite3 \\
        --api-url https://api.example.com [--webhook-id 7]

Each option can also come from the environment: PARTNER_HOST, PARTNER_PORT,
PARTNER_SECRET, PARTNER_API_KEY, PARTNER_DB, PARTNER_API_URL, PARTNER_WEBHOOK_ID,
PARTNER_RECONCILE=1, PARTNER_RESYNC=1, PARTNER_SCOPED=1. Needs ``requests`` and
``standardwebhooks``.
"""

from __future__ import annotations

import argparse
import bisect
import hashlib
import json
import logging
import os
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple

import requests
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

log = logging.getLogger("partner")

MAX_BODY_BYTES = 10 * 1024 * 1024  # a full batch of 500 entries is about 50 KB
API_TIMEOUT = (5, 30)  # (connect, read) seconds for calls to the Trainings API.
RETRY_FIRST_DELAY = 1.0  # seconds before retrying a batch that could not be applied;
RETRY_MAX_DELAY = 10.0  # doubled on each failure up to this.
IDLE_POLL = 5.0  # the worker also looks at the inbox this often without being woken.
PROCESSED_KEEP_SECONDS = 30 * 24 * 3600  # how long a webhook-id is remembered.

SCHEMA = """
CREATE TABLE IF NOT EXISTS inbox (
    seq INTEGER PRIMARY KEY,          -- arrival order; the worker applies rows by it
    webhook_id TEXT NOT NULL UNIQUE,
    body BLOB NOT NULL,               -- the verified request body, as received
    received_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS processed (
    webhook_id TEXT PRIMARY KEY,
    processed_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS processed_by_time ON processed (processed_at);
CREATE TABLE IF NOT EXISTS institutes (id INTEGER PRIMARY KEY, name TEXT, data TEXT);
CREATE TABLE IF NOT EXISTS trainings (
    id INTEGER PRIMARY KEY, institute_id INTEGER, reference TEXT, name TEXT, data TEXT
);
CREATE INDEX IF NOT EXISTS trainings_by_institute ON trainings (institute_id);
"""
LIST_PAGE_SIZE = 1000  # the most the lists serve per page
LIST_IDS_PER_REQUEST = 500  # the most ids one list request may filter on


class Scope(NamedTuple):
    """The part of the catalogue the webhook sends, as ``GET /webhooks/<id>`` shows it:
    its institutes (None: all of them) and the kinds of object."""

    institutes: frozenset[int] | None
    objects: frozenset[str]

    @classmethod
    def from_api(cls, document: dict[str, Any]) -> Scope:
        institutes = document.get("institutes")
        return cls(None if institutes is None else frozenset(institutes),
                   frozenset(document.get("objects") or ("institute", "training")))

    def holds_institute_id(self, institute_id: int) -> bool:
        return self.institutes is None or institute_id in self.institutes

    def keeps(self, kind: str) -> bool:
        return kind in self.objects


EVERYTHING = Scope(None, frozenset(("institute", "training")))


# --- Database ----------------------------------------------------------------------------


def connect(db_path: str) -> sqlite3.Connection:
    """Open the database in autocommit mode; writes use :func:`write_transaction`."""
    # isolation_level=None: no implicit transactions, so every transaction is visible in
    # the code. timeout: request threads and the worker wait for each other's short writes.
    return sqlite3.connect(db_path, timeout=30, isolation_level=None)


def create_schema(db_path: str) -> None:
    """Create the tables if missing and switch the database to WAL mode."""
    conn = connect(db_path)
    try:
        # WAL lets /mirror and /healthz read while the worker writes.
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(SCHEMA)
    finally:
        conn.close()


@contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Run the block in one transaction: all of its writes are committed, or none."""
    # IMMEDIATE takes the write lock at BEGIN, so the duplicate check and the insert of
    # two concurrent requests cannot interleave.
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def inbox_put(conn: sqlite3.Connection, webhook_id: str, body: bytes) -> bool:
    """Store a verified batch; return False if this ``webhook_id`` was seen before.

    When this returns the batch is committed to disk, so answering 2xx is safe.
    """
    with write_transaction(conn):
        if conn.execute("SELECT 1 FROM processed WHERE webhook_id = ?", (webhook_id,)).fetchone():
            return False
        cursor = conn.execute(
            "INSERT OR IGNORE INTO inbox (webhook_id, body, received_at) VALUES (?, ?, ?)",
            (webhook_id, body, time.time()),
        )
        return cursor.rowcount == 1


def inbox_length(db_path: str) -> int:
    conn = connect(db_path)
    try:
        return conn.execute("SELECT count(*) FROM inbox").fetchone()[0]
    finally:
        conn.close()


def mirror_snapshot(db_path: str) -> dict[str, dict[int, Any]]:
    """Return the mirrored catalogue.

    ``{"institutes": {id: name}, "trainings": {id: (institute_id, reference, name)}}``
    """
    conn = connect(db_path)
    try:
        institutes = dict(conn.execute("SELECT id, name FROM institutes").fetchall())
        trainings = {
            row[0]: tuple(row[1:])
            for row in conn.execute("SELECT id, institute_id, reference, name FROM trainings")
        }
    finally:
        conn.close()
    return {"institutes": institutes, "trainings": trainings}


def store_institute(conn: sqlite3.Connection, data: dict[str, Any]) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO institutes (id, name, data) VALUES (?, ?, ?)",
        (data["id"], data["name"], json.dumps(data)),
    )


def store_training(conn: sqlite3.Connection, data: dict[str, Any]) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO trainings (id, institute_id, reference, name, data)"
        " VALUES (?, ?, ?, ?, ?)",
        (data["id"], data["institute"], data["reference"], data["name"], json.dumps(data)),
    )


def delete_object(conn: sqlite3.Connection, kind: str, object_id: int) -> None:
    if kind == "institute":
        # The sender also sends a destroy per training, but a partner must not depend on
        # it: without its institute a training is not shown anyway.
        conn.execute("DELETE FROM trainings WHERE institute_id = ?", (object_id,))
        conn.execute("DELETE FROM institutes WHERE id = ?", (object_id,))
    else:
        conn.execute("DELETE FROM trainings WHERE id = ?", (object_id,))


# --- The Trainings API -------------------------------------------------------------------


class FetchError(Exception):
    """The API could not answer now (network error, timeout, 5xx, ...); try again later."""


class TrainingsApi:
    """Reads the current state of objects from the Trainings API."""

    def __init__(self, api_key: str) -> None:
        self.session = requests.Session()  # keep-alive: an import reads many pages
        self.session.headers.update({"X-API-Key": api_key, "Accept": "application/json"})
        self.requests = 0  # made so far: verify reports what a check cost

    def get(self, url: str) -> dict[str, Any] | None:
        """Return the JSON object at ``url``, or None if it is gone (404).

        Raises FetchError for every other failure, so the caller retries later.
        """
        self.requests += 1
        try:
            response = self.session.get(url, timeout=API_TIMEOUT)
        except requests.RequestException as exc:
            raise FetchError(f"GET {url}: {exc}") from exc
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise FetchError(f"GET {url}: HTTP {response.status_code} {response.text[:200]!r}")
        try:
            return response.json()
        except ValueError as exc:
            raise FetchError(f"GET {url}: not JSON") from exc

    def pages(self, url: str) -> Iterator[list[dict[str, Any]]]:
        """Yield the results of each page of a list, following ``next`` to the end.

        For ``/institutes`` and ``/trainings``: their pages are positions, not offsets, so
        a walk misses nothing while the catalogue changes. Raises FetchError on failure.
        """
        page_url: str | None = url
        while page_url:
            page = self.get(page_url)
            if page is None:
                raise FetchError(f"GET {page_url}: 404")
            yield page["results"]
            page_url = page["next"]

    def post(self, url: str) -> requests.Response:
        self.requests += 1
        try:
            return self.session.post(url, timeout=API_TIMEOUT)
        except requests.RequestException as exc:
            raise FetchError(f"POST {url}: {exc}") from exc

    def get_list(self, url: str, attempts: int = 3) -> list[dict[str, Any]] | None:
        """Return every item of a paginated list, following ``next``; None if it is gone.

        Pages are read one request at a time, so an object deleted or added meanwhile
        shifts the pages and can make the walk skip an item. The walk is only trusted if
        it found exactly ``count`` distinct items and ``count`` did not change; otherwise
        it is repeated.
        """
        for _ in range(attempts):
            items: dict[int, dict[str, Any]] = {}
            counts: set[int] = set()
            page_url: str | None = url
            pages_read: set[str] = set()  # a `next` that points back must not loop forever
            while page_url and page_url not in pages_read:
                pages_read.add(page_url)
                page = self.get(page_url)
                if page is None:
                    return None
                counts.add(page["count"])
                items.update((item["id"], item) for item in page["results"])
                page_url = page["next"]
                if len(counts) > 1 or len(items) > page["count"]:
                    break  # the list changed under us; start over
            if counts == {len(items)}:
                return list(items.values())
        raise FetchError(f"GET {url}: the list kept changing while it was read")


# --- Applying changes --------------------------------------------------------------------


def apply_change(
    conn: sqlite3.Connection, api: TrainingsApi, change: dict[str, Any],
    scope: Scope = EVERYTHING,
) -> None:
    """Make the local mirror match the API's current state of the changed object, as far
    as ``scope`` holds it.

    Safe to call again with the same change. Raises FetchError if the API cannot be read;
    nothing of this change is written then. A change this receiver does not know is
    logged and skipped, so a newer sender cannot block the inbox.
    """
    action, kind, object_id = change.get("action"), change.get("object"), change.get("id")
    url = change.get("url")
    if kind not in ("training", "institute") or not isinstance(object_id, int):
        log.warning("skipped unknown change %r", change)
        return

    if action == "destroy":
        with write_transaction(conn):
            delete_object(conn, kind, object_id)
        log.info("applied destroy %s %d", kind, object_id)

    elif action == "update" and isinstance(url, str):
        data = api.get(url)  # outside any transaction: never hold the database across HTTP
        institute_id = None if data is None else (
            data["id"] if kind == "institute" else data["institute"]
        )
        outside = data is not None and not scope.holds_institute_id(institute_id)
        with write_transaction(conn):
            if data is None or outside:
                # Deleted after the change was recorded (its destroy is on its way too),
                # or now in an institute outside the scope (moved, or the scope narrowed).
                delete_object(conn, kind, object_id)
            elif not scope.keeps(kind):
                pass
            elif kind == "institute":
                store_institute(conn, data)
            else:
                store_training(conn, data)
        detail = ("gone, deleted locally" if data is None
                  else "outside the scope, deleted locally" if outside
                  else f"name={data['name']!r}")
        log.info("applied update %s %d (%s)", kind, object_id, detail)

    elif action == "import" and kind == "institute" and isinstance(url, str):
        # An import replaced all trainings of the institute; the sender does not list
        # them, so read the institute and its whole training list: what the scope holds
        # of it (an institute outside the scope is only dropped).
        institute = api.get(url) if scope.holds_institute_id(object_id) else None
        trainings = None
        if institute is not None:
            trainings = (
                api.get_list(institute.get("trainings_url") or f"{url}/trainings")
                if scope.keeps("training") else []
            )
        with write_transaction(conn):
            delete_object(conn, "institute", object_id)  # drops trainings no longer listed
            if institute is not None and trainings is not None:
                if scope.keeps("institute"):
                    store_institute(conn, institute)
                for training in trainings:
                    store_training(conn, training)
        if institute is None or trainings is None:
            log.info("applied import institute %d (gone, deleted locally)", object_id)
        else:
            log.info(
                "applied import institute %d (name=%r, %d trainings)",
                object_id,
                institute["name"],
                len(trainings),
            )

    else:
        log.warning("skipped unknown change %r", change)


def _list_urls(api_url: str, kind: str, scope: Scope) -> list[str]:
    """The list requests that walk what ``scope`` holds of ``kind``."""
    path, name = ("institutes", "id") if kind == "institute" else ("trainings", "institute")
    base = f"{api_url}/{path}?page_size={LIST_PAGE_SIZE}"
    if not scope.keeps(kind):
        return []
    if scope.institutes is None:
        return [base]
    ids = sorted(scope.institutes)
    return [
        base + "".join(f"&{name}={institute_id}" for institute_id in
                       ids[start : start + LIST_IDS_PER_REQUEST])
        for start in range(0, len(ids), LIST_IDS_PER_REQUEST)
    ]


def reconcile(
    conn: sqlite3.Connection, api: TrainingsApi, api_url: str, scope: Scope = EVERYTHING
) -> tuple[int, int]:
    """Make the mirror exactly what ``GET /institutes`` and ``GET /trainings`` list (for a
    scope, what they list of its institutes, of the kinds it holds).

    Each page is stored as it arrives; what the walk did not list is deleted at the end
    (it was removed from the catalogue, or is outside the scope). Run it where batches
    are applied, before them, so that no batch is applied in the middle of it: a change
    made during the walk arrives by webhook and is applied after. Returns (institutes,
    trainings) listed.
    """
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS listed (kind TEXT, id INTEGER, "
                 "PRIMARY KEY (kind, id))")
    conn.execute("DELETE FROM listed")
    counts = {}
    for kind, store in (("institute", store_institute), ("training", store_training)):
        counts[kind] = 0
        for results in (
            page for list_url in _list_urls(api_url, kind, scope) for page in api.pages(list_url)
        ):
            with write_transaction(conn):
                for item in results:
                    store(conn, item)
                    conn.execute("INSERT OR IGNORE INTO listed VALUES (?, ?)", (kind, item["id"]))
            counts[kind] += len(results)
    with write_transaction(conn):
        conn.execute("DELETE FROM institutes WHERE id NOT IN "
                     "(SELECT id FROM listed WHERE kind = 'institute')")
        conn.execute("DELETE FROM trainings WHERE id NOT IN "
                     "(SELECT id FROM listed WHERE kind = 'training')")
        conn.execute("DELETE FROM listed")
    log.info("reconciled with the API: %d institutes, %d trainings",
             counts["institute"], counts["training"])
    return counts["institute"], counts["training"]


def own_webhook_id(api: TrainingsApi, api_url: str, webhook_id: int | None) -> int:
    """``webhook_id``, or the API key's only webhook. Raises FetchError otherwise."""
    if webhook_id is not None:
        return webhook_id
    listing = api.get(f"{api_url}/webhooks") or {"results": []}
    webhooks = listing["results"]
    if len(webhooks) != 1:
        raise FetchError(
            f"the API key belongs to {len(webhooks)} webhooks: name one with --webhook-id"
        )
    return webhooks[0]["id"]


def scope_read(api: TrainingsApi, api_url: str, webhook_id: int | None) -> Scope:
    """The webhook's scope as Springhook has it now. Raises FetchError when it cannot be
    read (the batch waits: applied with a wrong scope it could keep what left)."""
    webhook_id = own_webhook_id(api, api_url, webhook_id)
    document = api.get(f"{api_url}/webhooks/{webhook_id}")
    if document is None or "scope" not in document:
        raise FetchError(f"GET /webhooks/{webhook_id}: no scope (not this key's webhook?)")
    return Scope.from_api(document["scope"])


def resync(api: TrainingsApi, api_url: str, webhook_id: int | None) -> None:
    """Ask Springhook to send the whole catalogue (the webhook's scope) through the webhook.

    A 429 means a resync of this webhook was queued a short while ago: it is on its way,
    so there is nothing to do. Raises FetchError when the API cannot be reached.
    """
    webhook_id = own_webhook_id(api, api_url, webhook_id)
    response = api.post(f"{api_url}/webhooks/{webhook_id}/resync")
    if response.status_code == 202:
        log.info("resync of webhook %d queued: %d institutes will arrive as imports",
                 webhook_id, response.json()["institutes"])
    elif response.status_code == 429:
        log.info("resync of webhook %d was queued recently: %s", webhook_id,
                 response.json().get("message"))
    else:
        raise FetchError(f"POST resync: HTTP {response.status_code} {response.text[:200]!r}")


# --- Verifying the mirror against the digest ---------------------------------------------
# GET /webhooks/<id>/digest gives, per kind, the count and digest of what this mirror
# should hold; a range of ids is split into 32 sub-ranges with theirs, and a range of at
# most 1,000 objects lists its (id, updated_at). Walking down only where the digests differ
# finds the differing objects in a few requests (docs/partners.md).

KIND_TABLES = {"institute": "institutes", "training": "trainings"}


def object_hash(object_id: int, updated_at: str) -> int:
    text = f"{object_id}|{updated_at}".encode()
    return int(hashlib.md5(text).hexdigest()[:16], 16)


def digest(objects) -> str:
    """objects: (id, updated_at) pairs, updated_at as the API rendered it."""
    value = 0
    for object_id, updated_at in objects:
        value ^= object_hash(object_id, updated_at)
    return f"{value:016x}"


class LocalCopy:
    """One kind of the mirror as (id, updated_at), sorted by id, for range digests."""

    def __init__(self, conn: sqlite3.Connection, kind: str) -> None:
        rows = conn.execute(f"SELECT id, data FROM {KIND_TABLES[kind]} ORDER BY id")
        self.items = [(row[0], json.loads(row[1] or "{}").get("updated_at", "")) for row in rows]
        self.ids = [object_id for object_id, _ in self.items]

    def between(self, from_id: int, to_id: int) -> list[tuple[int, str]]:
        return self.items[bisect.bisect_left(self.ids, from_id):
                          bisect.bisect_right(self.ids, to_id)]


def _repair(conn: sqlite3.Connection, api: TrainingsApi, api_url: str, kind: str,
            object_id: int) -> None:
    data = api.get(f"{api_url}/{KIND_TABLES[kind]}/{object_id}")
    with write_transaction(conn):
        if data is None:
            delete_object(conn, kind, object_id)
        elif kind == "institute":
            store_institute(conn, data)
        else:
            store_training(conn, data)


def verify(conn: sqlite3.Connection, api: TrainingsApi, api_url: str,
           webhook_id: int) -> dict[str, int]:
    """Compare the mirror with the webhook's digest and repair what differs: objects
    missing or stale here are fetched, objects the digest does not hold are deleted.

    Run it where batches are applied, between two of them (like ``reconcile``). Returns
    counts: ``fetched``, ``deleted``, ``requests`` (to the API, this check included).
    Raises FetchError when the API cannot be read.
    """
    started = api.requests
    fixed = {"fetched": 0, "deleted": 0}
    base = f"{api_url}/webhooks/{webhook_id}/digest"
    whole = api.get(base)
    if whole is None:
        raise FetchError(f"GET {base}: 404 (not one of this key's webhooks)")
    for kind in ("institute", "training"):
        theirs = whole["kinds"].get(kind)
        if theirs is None:
            continue
        local = LocalCopy(conn, kind)
        if (theirs["count"], theirs["digest"]) == (len(local.items), digest(local.items)):
            continue
        bounds = [b for b in (theirs["min_id"], theirs["max_id"]) if b is not None]
        bounds += local.ids[:1] + local.ids[-1:]
        pending = [f"{base}?kind={kind}&from_id={min(bounds)}&to_id={max(bounds)}"]
        while pending:
            answer = api.get(pending.pop())
            if answer is None:
                raise FetchError(f"GET {base}: 404 (not one of this key's webhooks)")
            if "objects" in answer:
                listed = {item["id"]: item["updated_at"] for item in answer["objects"]}
                held = dict(local.between(answer["from_id"], answer["to_id"]))
                for object_id in sorted(listed.keys() | held.keys()):
                    if listed.get(object_id) == held.get(object_id):
                        continue
                    if object_id in listed:
                        _repair(conn, api, api_url, kind, object_id)
                        fixed["fetched"] += 1
                    else:
                        with write_transaction(conn):
                            delete_object(conn, kind, object_id)
                        fixed["deleted"] += 1
                continue
            for part in answer["ranges"]:
                mine = local.between(part["from_id"], part["to_id"])
                if (part["count"], part["digest"]) != (len(mine), digest(mine)):
                    pending.append(part["url"])
    fixed["requests"] = api.requests - started
    log.info("verified against webhook %d's digest: %d fetched, %d deleted, %d requests",
             webhook_id, fixed["fetched"], fixed["deleted"], fixed["requests"])
    return fixed


class InboxWorker(threading.Thread):
    """Applies inbox rows one at a time in arrival order, and never skips one.

    Guarantees: a row is deleted from the inbox, and its webhook-id recorded as processed,
    in one transaction after all its changes were applied. If applying fails the row stays
    and is retried after a growing pause, holding back the rows behind it so that changes
    are applied in order.

    This is at-least-once: if the process dies halfway through a batch, the batch is
    still in the inbox and is applied again from its first change after the restart.
    That is harmless, because every change re-reads the current state from the API.
    """

    def __init__(
        self, db_path: str, api: TrainingsApi, reconcile_from: str | None = None,
        scope_from: tuple[str, int | None] | None = None,
    ) -> None:
        super().__init__(name="inbox-worker", daemon=True)
        self.db_path = db_path
        self.api = api
        # The API's base URL when the mirror is to be reconciled before the first batch.
        self.reconcile_from = reconcile_from
        # (API base URL, webhook id) when the mirror keeps the webhook's scope.
        self.scope_from = scope_from
        self.wakeup = threading.Event()
        self.stopping = threading.Event()

    def scope(self) -> Scope:
        if self.scope_from is None:
            return EVERYTHING
        return scope_read(self.api, *self.scope_from)

    def run(self) -> None:
        conn = connect(self.db_path)
        failures = 0
        while not self.stopping.is_set():
            # Clear before looking, so a wake-up for a row inserted after the look is kept.
            self.wakeup.clear()
            try:
                if self.reconcile_from:
                    reconcile(conn, self.api, self.reconcile_from, self.scope())
                    self.reconcile_from = None
                    continue
                applied = self.apply_oldest(conn)
            except Exception as exc:
                # Anything, even a bug or a full disk: keep the row and try again later.
                failures += 1
                delay = min(RETRY_FIRST_DELAY * 2 ** (failures - 1), RETRY_MAX_DELAY)
                if isinstance(exc, FetchError):
                    log.warning("batch not applied yet, retry in %.0fs: %s", delay, exc)
                else:
                    log.exception("batch not applied, retry in %.0fs", delay)
                self.stopping.wait(delay)
                continue
            failures = 0
            if not applied:
                self.wakeup.wait(IDLE_POLL)
        conn.close()

    def apply_oldest(self, conn: sqlite3.Connection) -> bool:
        """Apply the oldest inbox row and remove it; return False if the inbox is empty."""
        row = conn.execute("SELECT seq, webhook_id, body FROM inbox ORDER BY seq LIMIT 1")
        row = row.fetchone()
        if row is None:
            return False
        seq, webhook_id, body = row
        changes = json.loads(body)["changes"]
        log.info("applying batch %s (%d changes)", webhook_id, len(changes))
        # Read for each batch: the scope may have changed since the last one (what left
        # is then dropped as entries show it, and its destroy follows).
        scope = self.scope() if changes else EVERYTHING
        for change in changes:
            apply_change(conn, self.api, change, scope)
        now = time.time()
        with write_transaction(conn):
            conn.execute(
                "INSERT OR REPLACE INTO processed (webhook_id, processed_at) VALUES (?, ?)",
                (webhook_id, now),
            )
            conn.execute("DELETE FROM inbox WHERE seq = ?", (seq,))
            # Forget old ids; the index on processed_at keeps this cheap.
            conn.execute(
                "DELETE FROM processed WHERE processed_at < ?", (now - PROCESSED_KEEP_SECONDS,)
            )
        return True


# --- HTTP --------------------------------------------------------------------------------


class ReceiverServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], webhook: Webhook, db_path: str, worker: InboxWorker
    ) -> None:
        super().__init__(address, ReceiverHandler)
        self.webhook = webhook
        self.db_path = db_path
        self.worker = worker


class ReceiverHandler(BaseHTTPRequestHandler):
    server: ReceiverServer
    protocol_version = "HTTP/1.1"  # keep-alive: the sender may reuse its connection
    timeout = 30  # a client that stalls mid-request must not hold a thread forever

    def do_POST(self) -> None:
        """Verify, store in the inbox, answer. Any path is accepted."""
        body = self._read_body()
        if body is None:
            return
        try:
            self.server.webhook.verify(body, dict(self.headers.items()), json_parse=False)
        except (WebhookVerificationError, ValueError) as exc:
            # ValueError: the library lets a body that is not UTF-8 or a garbled signature
            # header through as UnicodeDecodeError, binascii.Error or ValueError.
            self._send_json(401, {"error": "invalid_signature", "message": str(exc)})
            return
        try:
            changes = json.loads(body)["changes"]
            if not isinstance(changes, list):
                raise TypeError("changes is not a list")
        except (ValueError, KeyError, TypeError) as exc:
            self._send_json(400, {"error": "bad_payload", "message": str(exc)})
            return

        conn = connect(self.server.db_path)
        try:
            is_new = inbox_put(conn, self.headers["webhook-id"], body)
        finally:
            conn.close()
        if not is_new:
            self._send_json(200, {"status": "duplicate"})
            return
        self.server.worker.wakeup.set()
        self.send_response(204)
        self.end_headers()

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self._send_json(200, {"status": "ok", "inbox": inbox_length(self.server.db_path)})
        elif self.path == "/mirror":
            # JSON object keys are strings: {"trainings": {"1": [institute_id, ref, name]}}.
            self._send_json(200, mirror_snapshot(self.server.db_path))
        else:
            self._send_json(404, {"error": "not_found", "message": "POST webhooks to any path"})

    def _read_body(self) -> bytes | None:
        """Return the request body, or answer the error and return None."""
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit() or "Transfer-Encoding" in self.headers:
            self.close_connection = True  # the body, if any, was not read
            self._send_json(411, {"error": "length_required", "message": "send Content-Length"})
            return None
        if int(length) > MAX_BODY_BYTES:
            self.close_connection = True
            self._send_json(413, {"error": "too_large", "message": "body too large"})
            return None
        return self.rfile.read(int(length))

    def _send_json(self, status: int, document: dict[str, Any]) -> None:
        payload = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)


# --- Command line ------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    env = os.environ
    parser = argparse.ArgumentParser(description="Reference receiver for Springhook webhooks.")
    parser.add_argument(
        "command", nargs="?", choices=("serve", "verify"), default="serve",
        help="serve (the default): receive webhooks; verify: check the mirror against the "
        "webhook's digest, repair what differs, and exit (do it while serve is stopped)",
    )
    parser.add_argument("--host", default=env.get("PARTNER_HOST", "127.0.0.1"))
    parser.add_argument(
        "--port",
        type=int,
        default=int(env.get("PARTNER_PORT", "9000")),
        help="0 picks a free port (printed at startup)",
    )
    parser.add_argument("--secret", default=env.get("PARTNER_SECRET"), help="whsec_...")
    parser.add_argument("--api-key", default=env.get("PARTNER_API_KEY"))
    parser.add_argument("--db", default=env.get("PARTNER_DB", "mirror.sqlite3"))
    parser.add_argument(
        "--api-url",
        default=env.get("PARTNER_API_URL", "http://127.0.0.1:8000"),
        help="base URL of the Trainings API, for --reconcile and --resync",
    )
    parser.add_argument(
        "--reconcile",
        action="store_true",
        default=env.get("PARTNER_RECONCILE") == "1",
        help="at start, make the mirror what GET /institutes and GET /trainings list",
    )
    parser.add_argument(
        "--resync",
        action="store_true",
        default=env.get("PARTNER_RESYNC") == "1",
        help="at start, ask for the whole catalogue through the webhook",
    )
    parser.add_argument(
        "--webhook-id",
        type=int,
        default=int(env["PARTNER_WEBHOOK_ID"]) if env.get("PARTNER_WEBHOOK_ID") else None,
        help="the webhook to resync or verify (default: the API key's only webhook)",
    )
    parser.add_argument(
        "--scoped",
        action="store_true",
        default=env.get("PARTNER_SCOPED") == "1",
        help="keep exactly the webhook's scope (read before each batch; needs a key that "
        "belongs to the webhook)",
    )
    parser.add_argument("--verbose", action="store_true", help="also log every request")
    args = parser.parse_args(argv)
    if not args.api_key or (args.command == "serve" and not args.secret):
        parser.error("--secret and --api-key (or PARTNER_SECRET, PARTNER_API_KEY) are required")
    return args


def _resync_at_start(api: TrainingsApi, api_url: str, webhook_id: int | None) -> None:
    delay = RETRY_FIRST_DELAY
    while True:
        try:
            resync(api, api_url, webhook_id)
            return
        except FetchError as exc:
            log.warning("resync not asked for yet, retry in %.0fs: %s", delay, exc)
            time.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_DELAY)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        stream=sys.stdout,  # a StreamHandler flushes after every line
        format="%(asctime)s %(levelname)s %(message)s",
    )
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    if args.command == "verify":
        create_schema(args.db)
        api_url = args.api_url.rstrip("/")
        api = TrainingsApi(args.api_key)
        conn = connect(args.db)
        try:
            webhook_id = own_webhook_id(api, api_url, args.webhook_id)
            verify(conn, api, api_url, webhook_id)
        except FetchError as exc:
            sys.exit(f"verify failed: {exc}")
        finally:
            conn.close()
        return
    try:
        webhook = Webhook(args.secret)
    except Exception as exc:  # the library raises binascii.Error, EmptyWebhookSecretError
        sys.exit(f"invalid --secret: {exc}")

    create_schema(args.db)
    api_url = args.api_url.rstrip("/")
    api = TrainingsApi(args.api_key)
    worker = InboxWorker(
        args.db, api, reconcile_from=api_url if args.reconcile else None,
        scope_from=(api_url, args.webhook_id) if args.scoped else None,
    )
    server = ReceiverServer((args.host, args.port), webhook, args.db, worker)
    # Started before serving: rows left in the inbox by the last run come first (after
    # the reconciliation, when asked for).
    worker.start()
    if args.resync:
        # Once the server can take the batches: they follow at once.
        threading.Thread(target=_resync_at_start, args=(api, api_url, args.webhook_id),
                         name="resync", daemon=True).start()
    # SIGTERM ends serve_forever like Ctrl-C; unapplied rows stay in the inbox.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    host, port = server.server_address[:2]
    log.info("listening on http://%s:%d (database %s)", host, port, args.db)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        worker.stopping.set()
        server.server_close()


if __name__ == "__main__":
    main()
