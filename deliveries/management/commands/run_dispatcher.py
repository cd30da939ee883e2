import signal

from django.conf import settings
from django.core.management.base import BaseCommand

from deliveries.dispatcher import Dispatcher


class Command(BaseCommand):
    help = "Run the dispatch loop in this process, with no broker (the embedded default)."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--threads", type=int, default=settings.WEBHOOK_DISPATCHER_THREADS,
            help="webhooks sent to at once (default: WEBHOOK_DISPATCHER_THREADS)",
        )

    def handle(self, *args, threads: int, **options) -> None:
        dispatcher = Dispatcher(threads=threads, tick_seconds=settings.WEBHOOK_TICK_SECONDS)
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: dispatcher.stop())
        self.stdout.write(f"Dispatching with {threads} threads; Ctrl-C stops.")
        dispatcher.run()
