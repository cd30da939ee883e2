import signal

from django.conf import settings
from django.core.management.base import BaseCommand

from deliveries.dispatcher import Dispatcher


class Command(BaseCommand):
    help = "Run the dispatch loop in this process, with no broker (the embedded default)."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--sends-in-flight", type=int, default=settings.WEBHOOK_SENDS_IN_FLIGHT,
            help="sends in flight at once, one per webhook at most "
                 "(default: WEBHOOK_SENDS_IN_FLIGHT)",
        )

    def handle(self, *args, sends_in_flight: int, **options) -> None:
        dispatcher = Dispatcher(
            sends_in_flight=sends_in_flight, tick_seconds=settings.WEBHOOK_TICK_SECONDS
        )
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: dispatcher.stop())
        self.stdout.write(f"Dispatching with up to {sends_in_flight} sends in flight; "
                          "Ctrl-C stops.")
        dispatcher.run()
