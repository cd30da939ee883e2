"""The embedded dispatcher: the Celery beat + worker in one process, with no broker.

It runs the delivery engine (deliveries.engine): one database thread that ticks (collects
changes, writes the heartbeat, tells staff about failing webhooks, prunes old deliveries),
claims as many due attempts as there are free send slots, and records finished attempts
together; and the process's send loop, one asyncio event loop with up to
`sends_in_flight` attempts on it. A partner hanging to the timeout holds its own send and
nothing else.
"""

import logging

from deliveries.engine import Engine
from deliveries.services import PeriodicRunner

logger = logging.getLogger("springhook.dispatcher")


class Dispatcher:
    def __init__(self, *, sends_in_flight: int, tick_seconds: float) -> None:
        self.engine = Engine(
            sends_in_flight=sends_in_flight, tick_seconds=tick_seconds, tick=self.tick
        )
        self.tick_seconds = tick_seconds
        # The periodic jobs (deliveries.services.periodic): the tick's at every tick, prune
        # at the first tick and then every WEBHOOK_PRUNE_SECONDS.
        self.periodic = PeriodicRunner(periods={"WEBHOOK_TICK_SECONDS": tick_seconds})

    def run(self) -> None:
        logger.info("dispatcher started (tick %.2fs, %d sends in flight at most)",
                    self.tick_seconds, self.engine.sends_in_flight)
        self.engine.run()
        logger.info("dispatcher stopped")

    def stop(self) -> None:
        self.engine.stop()

    def tick(self) -> None:
        # Work that can wait (the search index) takes longer turns while nothing is sent.
        self.periodic.run_due(idle=self.engine.in_flight == 0)
