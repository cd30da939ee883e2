import os
import stat
import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from catalog.services import FeedError, FeedTooLarge, ImportTargetMissing, feed_read, import_run


class Command(BaseCommand):
    help = (
        "Replace all trainings of one institute with those of a JSON feed (an array of "
        "objects with at least 'reference' and 'name'), in one transaction."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--institute", type=int, required=True, help="the institute's id")
        parser.add_argument("feed", help="path of the JSON feed, or - for standard input")

    def handle(self, *args, institute: int, feed: str, **options) -> None:
        if feed == "-":
            self._import(institute, feed, sys.stdin.buffer)
            return
        try:
            stream = open(feed, "rb")  # noqa: SIM115 - closed by the with below
        except OSError as error:
            raise CommandError(f"cannot read feed {feed}: {error.strerror}") from None
        with stream:
            limit = settings.IMPORT_MAX_FEED_BYTES
            status = os.fstat(stream.fileno())
            # The reader refuses a feed once it has read past the limit; a file that says
            # its size is refused before the import starts at all.
            if stat.S_ISREG(status.st_mode) and status.st_size > limit:
                raise CommandError(f"{feed}: {FeedTooLarge(limit)}; nothing was changed")
            self._import(institute, feed, stream)

    def _import(self, institute: int, feed: str, stream) -> None:
        try:
            # The feed is read as it is imported, a record at a time, inside the import's
            # transaction: a bad record rolls back everything written before it.
            result = import_run(institute_id=institute, records=feed_read(stream=stream))
        except (FeedError, ImportTargetMissing) as error:
            raise CommandError(f"{feed}: {error}; nothing was changed") from None
        total = result.created + result.updated + result.unchanged
        self.stdout.write(
            f"Imported {total} trainings into institute {institute}: "
            f"{result.created} created, {result.updated} updated, "
            f"{result.unchanged} unchanged, {result.deleted} deleted."
        )
