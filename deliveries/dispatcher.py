"""The embedded dispatcher: the Celery beat + worker loop in one process, with no broker.

It runs the very same services as the Celery tasks. Sends run in a thread pool, one
webhook per thread at a time, so that a partner hanging to the timeout holds one thread
and never delays the others.
"""

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

from django.db import close_old_connections, connection

from deliveries.services import deliveries_prune, dispatch_tick, webhook_deliver

logger = logging.getLogger("springhook.dispatcher")
# Retention runs this often (seconds), between ticks, for a few seconds at most: the same
# period as the Celery beat's prune task.
PRUNE_SECONDS = 60.0


class Dispatcher:
    def __init__(self, *, threads: int, tick_seconds: float) -> None:
        self.tick_seconds = tick_seconds
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="deliver")
        self.in_flight: dict[int, Future] = {}
        self.stopping = threading.Event()
        self.next_prune_at = time.monotonic()  # at the first tick, then every PRUNE_SECONDS

    def run(self) -> None:
        logger.info("dispatcher started (tick %.2fs)", self.tick_seconds)
        while not self.stopping.is_set():
            started = time.monotonic()
            self.tick()
            self.stopping.wait(max(0.0, self.tick_seconds - (time.monotonic() - started)))
        self.executor.shutdown(wait=True, cancel_futures=True)
        connection.close()
        logger.info("dispatcher stopped")

    def tick(self) -> None:
        try:
            due = dispatch_tick()
            self._prune_when_due()
        except Exception:
            # The database may be restarting: log, drop the connection, try next tick.
            logger.exception("dispatch tick failed; retrying at the next tick")
            connection.close()
            return
        finally:
            close_old_connections()
        self.in_flight = {id_: f for id_, f in self.in_flight.items() if not f.done()}
        for webhook_id in due:
            if webhook_id not in self.in_flight:
                self.in_flight[webhook_id] = self.executor.submit(self._deliver, webhook_id)

    def _prune_when_due(self) -> None:
        if time.monotonic() < self.next_prune_at:
            return
        self.next_prune_at = time.monotonic() + PRUNE_SECONDS
        try:
            deliveries_prune(time_budget=2.0)
        except Exception:
            logger.exception("pruning old deliveries failed; retrying in a minute")
            connection.close()

    def stop(self) -> None:
        self.stopping.set()

    @staticmethod
    def _deliver(webhook_id: int) -> None:
        try:
            webhook_deliver(webhook_id=webhook_id)
        except Exception:
            logger.exception("delivering webhook %s failed; retrying at a later tick", webhook_id)
            connection.close()
        else:
            # Keep the thread's connection for its next webhook (up to CONN_MAX_AGE): a new
            # one per webhook cost a connect and an authentication every send.
            close_old_connections()
