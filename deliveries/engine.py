"""The delivery engine: claim many, send concurrently, record and claim again together.

One database thread does all the bookkeeping: it claims the due attempts of as many
webhooks as there are free send slots (deliveries_claim, one short transaction), hands
them to the process's send loop, and, as soon as any have finished, records every finished
one and claims the next attempts for the freed slots in one transaction
(deliveries_record_and_claim): an accepted batch's webhook gets its next batch claimed in
the transaction that records it. Results that finish while a transaction runs wait for
the next one, so the busier the engine, the more each commit carries, with no window to
wait for. The send loop (deliveries.http.SendLoop: one asyncio event loop in a thread of
its own, one coroutine per attempt) only talks HTTP, with the address guard, capped reads
and the whole-attempt deadline, over kept-alive connections; it never touches the
database and never holds a transaction.

A webhook has at most one attempt in flight (its lease), so a slow or hanging partner
holds one send slot and nothing else: claiming for the other webhooks goes on, and with
WEBHOOK_SENDS_IN_FLIGHT slots (200 by default) slow partners would have to outnumber
them to make anybody wait.

The embedded dispatcher (deliveries.dispatcher) runs an Engine for ever; a Celery task
runs one over the webhooks it was given until none of them has an attempt due.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Collection

from django.db import close_old_connections, connection, reset_queries

from deliveries.http import SendLoop, SendResult, send_loop
from deliveries.services.claim import Claim, deliveries_claim
from deliveries.services.record import deliveries_record_and_claim
from deliveries.services.send import delivery_send_async

logger = logging.getLogger("springhook.dispatcher")
# At most this many finished attempts are recorded in one transaction.
FLUSH_RESULTS = 200
# A flush that fails (the database restarting) is tried again this many times, then its
# results are given up: their leases run out and the batches go out again, same webhook-id.
FLUSH_TRIES = 5

Finished = tuple[Claim, SendResult | None]


async def _send_and_report(claim: Claim, results: queue.SimpleQueue) -> None:
    """One attempt on the send loop; its (claim, result) goes into the engine's queue."""
    try:
        result: SendResult | None = await delivery_send_async(claim)
    except Exception:  # a bug, never the partner: deliveries.http never raises for it
        logger.exception("sending to webhook %s failed", claim.webhook_id)
        result = None  # not recorded: the lease runs out and the batch goes again
    results.put((claim, result))


class Engine:
    """Claims, sends and records until stopped (or, with `until_idle`, until nothing of
    its webhooks is due and nothing is in flight).

    `webhook_ids` limits it to those webhooks (a Celery task's share); `tick` runs every
    `tick_seconds` in the database thread (the embedded dispatcher collects changes,
    writes its heartbeat and prunes there).
    """

    def __init__(
        self,
        *,
        sends_in_flight: int,
        tick_seconds: float = 1.0,
        tick: Callable[[], None] | None = None,
        webhook_ids: Collection[int] | None = None,
        loop: SendLoop | None = None,
        close_connection: bool = True,
    ) -> None:
        self.sends_in_flight = max(1, sends_in_flight)
        self.tick_seconds = tick_seconds
        self.tick = tick
        self.webhook_ids = list(webhook_ids) if webhook_ids is not None else None
        self.loop = loop or send_loop()
        self.close_connection = close_connection
        self.stopping = threading.Event()
        self.results: queue.SimpleQueue[Finished] = queue.SimpleQueue()
        self.in_flight = 0
        self.attempts = 0
        self._unrecorded: list[Finished] = []
        self._flush_failures = 0
        # Whether the last claim among all candidates filled every free slot, so that more
        # may be due than the webhooks just recorded: then a flush claims among all of them.
        self._more_due = True
        self._claims_end_at: float | None = None  # run()'s time budget: no claim after it

    def stop(self) -> None:
        self.stopping.set()

    def run(self, *, until_idle: bool = False, time_budget: float | None = None) -> int:
        """The database thread's loop. Returns the number of attempts recorded. On stop,
        claims nothing more and waits for the sends in flight (each ends by its deadline,
        WEBHOOK_TIMEOUT) to record them."""
        ends_at = None if time_budget is None else time.monotonic() + time_budget
        self._claims_end_at = ends_at
        next_tick = time.monotonic()
        claim_wanted = True
        try:
            while True:
                now = time.monotonic()
                out_of_time = ends_at is not None and now >= ends_at
                if self.stopping.is_set() or out_of_time:
                    if not self.in_flight:
                        break
                elif self.tick is not None and now >= next_tick:
                    self._guarded(self.tick, "dispatch tick")
                    if self.close_connection:
                        close_old_connections()  # past CONN_MAX_AGE, or broken: a new one
                    next_tick = time.monotonic() + self.tick_seconds
                    claim_wanted = True
                if claim_wanted and not self.stopping.is_set() and not out_of_time:
                    claimed = self._claim()
                    claim_wanted = False
                    if until_idle and claimed == 0 and not self.in_flight:
                        break
                wait = max(0.0, next_tick - time.monotonic()) if self.tick else 0.2
                if self._flush(wait=min(wait, 0.2)) and not self.in_flight:
                    claim_wanted = True  # idle: is anything else due?
                # The debug query log (DEBUG=True) would grow by every statement for ever.
                reset_queries()
        finally:
            self._flush(wait=0)
            if self.close_connection:
                connection.close()
        return self.attempts

    def _claim(self) -> int:
        free = self.sends_in_flight - self.in_flight
        if free <= 0:
            return 0
        claims = self._guarded(
            lambda: deliveries_claim(limit=free, webhook_ids=self.webhook_ids), "claiming"
        ) or []
        self._more_due_update(claims, free)
        self._submit(claims)
        return len(claims)

    def _submit(self, claims: list[Claim]) -> None:
        self.in_flight += len(claims)
        self.loop.spawn(_send_and_report(claim, self.results) for claim in claims)

    def _flush(self, *, wait: float) -> bool:
        """Record the finished attempts and claim for the slots they free, in one
        transaction: waits up to `wait` for the first one, then takes every other one
        finished by then. True if anything finished."""
        finished = self._unrecorded
        if not finished and self.in_flight:
            try:
                finished.append(self.results.get(timeout=wait) if wait else
                                self.results.get_nowait())
            except queue.Empty:
                return False
        elif not finished:
            if wait:
                self.stopping.wait(wait)
            return False
        while len(finished) < FLUSH_RESULTS:
            try:
                finished.append(self.results.get_nowait())
            except queue.Empty:
                break
        sent = [(claim, result) for claim, result in finished if result is not None]
        claiming = not self.stopping.is_set() and (
            self._claims_end_at is None or time.monotonic() < self._claims_end_at
        )
        free = self.sends_in_flight - self.in_flight + len(finished) if claiming else 0
        candidates = self._claim_candidates(sent)
        outcome = self._guarded(
            lambda: deliveries_record_and_claim(
                results=sent, limit=free, webhook_ids=candidates
            ),
            "recording",
        )
        if outcome is None:
            self._flush_failures += 1
            if self._flush_failures < FLUSH_TRIES:
                return False  # kept in self._unrecorded: tried again at the next flush
            logger.error("giving up recording %d attempts; their batches go out again once "
                         "their leases run out", len(sent))
            claims = []
        else:
            _, claims = outcome
            self.attempts += len(sent)
            if self._more_due and free > 0:  # claimed among all candidates
                self._more_due_update(claims, free)
        self._flush_failures = 0
        self.in_flight -= len(finished)
        self._unrecorded = []
        self._submit(claims)
        return True

    def _claim_candidates(self, sent: list[tuple[Claim, SendResult]]) -> list[int] | None:
        """Whom a flush claims for: all candidates (every due webhook, or this engine's
        share) while the last claim among them left some waiting for a slot, and otherwise
        the webhooks whose batches were just accepted. Others with new work or a retry due
        are claimed at the next tick, or once nothing is in flight."""
        if self._more_due:
            return self.webhook_ids
        return [claim.webhook_id for claim, result in sent if result.accepted]

    def _more_due_update(self, claims: list[Claim], free: int) -> None:
        # A share that fits in the send slots (a Celery task's) is all claimed or not due.
        share_fits = self.webhook_ids is not None and len(self.webhook_ids) <= free
        self._more_due = len(claims) == free and not share_fits

    def _guarded(self, step: Callable, what: str):
        try:
            return step()
        except Exception:
            # The database may be restarting: log, drop the connection, try again later.
            logger.exception("%s failed; trying again shortly", what)
            connection.close()
            return None
