"""The embedded dispatcher: the Celery beat + worker in one process, with no broker.

It runs the delivery engine (deliveries.engine): one database thread that ticks (collects
changes, writes the heartbeat, tells staff about failing webhooks, prunes old deliveries),
claims as many due attempts as there are free send slots, and records finished attempts
together; and the process's send loop, one asyncio event loop with up to
`sends_in_flight` attempts on it. A partner hanging to the timeout holds its own send and
nothing else.
"""

import logging
import time

from django.conf import settings
from django.db import connection

from deliveries.engine import Engine
from deliveries.services import deliveries_prune, dispatch_collect

logger = logging.getLogger("springhook.dispatcher")
# Each tick collects recorded changes for at most this long (seconds), so that recording
# finished attempts and claiming new ones never waits long behind a big import.
COLLECT_BUDGET = 0.5


class Dispatcher:
    def __init__(self, *, sends_in_flight: int, tick_seconds: float) -> None:
        self.engine = Engine(
            sends_in_flight=sends_in_flight, tick_seconds=tick_seconds, tick=self.tick
        )
        self.tick_seconds = tick_seconds
        self.next_prune_at = time.monotonic()  # at the first tick, then every prune period

    def run(self) -> None:
        logger.info("dispatcher started (tick %.2fs, %d sends in flight at most)",
                    self.tick_seconds, self.engine.sends_in_flight)
        self.engine.run()
        logger.info("dispatcher stopped")

    def stop(self) -> None:
        self.engine.stop()

    def tick(self) -> None:
        dispatch_collect(time_budget=COLLECT_BUDGET)
        self._prune_when_due()

    def _prune_when_due(self) -> None:
        if time.monotonic() < self.next_prune_at:
            return
        self.next_prune_at = time.monotonic() + settings.WEBHOOK_PRUNE_SECONDS
        try:
            deliveries_prune(time_budget=2.0)
        except Exception:
            logger.exception("pruning old deliveries failed; retrying at the next period")
            connection.close()
