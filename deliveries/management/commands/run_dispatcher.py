import signal
import sys

from django.conf import settings
from django.core.management.base import BaseCommand

from core import EXIT_CONFIGURATION
from deliveries.dispatcher import Dispatcher


class Command(BaseCommand):
    help = (
        "Run the dispatch loop in this process, with no broker (the embedded default). "
        "Refuses to start while CELERY_BROKER_URL is set: Celery workers and beat do the "
        "same work there."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--sends-in-flight", type=int, default=settings.WEBHOOK_SENDS_IN_FLIGHT,
            help="sends in flight at once, one per webhook at most "
                 "(default: WEBHOOK_SENDS_IN_FLIGHT)",
        )
        parser.add_argument(
            "--alongside-celery", action="store_true",
            help="start even though CELERY_BROKER_URL is set (nothing is sent twice, but "
                 "it doubles the ticks of Celery beat)",
        )

    def handle(self, *args, sends_in_flight: int, alongside_celery: bool, **options) -> None:
        if settings.CELERY_BROKER_URL and not alongside_celery:
            # Claims are locked in the database, so both would deliver correctly; but an
            # operator who starts this next to Celery has mixed up the two set-ups.
            # Same exit as a configuration error: systemd does not restart it.
            print(
                "springhook: configuration error: run_dispatcher is the embedded dispatcher"
                " for a set-up without a broker, but CELERY_BROKER_URL is set, so Celery"
                " workers and beat do this work; unset CELERY_BROKER_URL, or pass"
                " --alongside-celery to run both",
                file=sys.stderr, flush=True,
            )
            raise SystemExit(EXIT_CONFIGURATION)
        dispatcher = Dispatcher(
            sends_in_flight=sends_in_flight, tick_seconds=settings.WEBHOOK_TICK_SECONDS
        )
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: dispatcher.stop())
        # The dispatcher logs its start (and stop) itself, as logfmt like every line.
        dispatcher.run()
