import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from catalog.services import FeedError, ImportTargetMissing, feed_parse, import_run


class Command(BaseCommand):
    help = (
        "Replace all trainings of one institute with those of a JSON feed (an array of "
        "objects with at least 'reference' and 'name'), in one transaction."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--institute", type=int, required=True, help="the institute's id")
        parser.add_argument("feed", help="path of the JSON feed, or - for standard input")

    def handle(self, *args, institute: int, feed: str, **options) -> None:
        limit = settings.IMPORT_MAX_FEED_BYTES
        # One byte past the limit is enough to refuse the feed: a huge file (or an endless
        # stdin) is never read into memory whole.
        if feed == "-":
            raw = sys.stdin.buffer.read(limit + 1)
        else:
            try:
                with open(feed, "rb") as stream:
                    raw = stream.read(limit + 1)
            except OSError as error:
                raise CommandError(f"cannot read feed {feed}: {error.strerror}") from None
        if len(raw) > limit:
            raise CommandError(
                f"{feed}: feed is larger than the limit of {limit} bytes "
                "(IMPORT_MAX_FEED_BYTES); nothing was changed"
            )
        try:
            records = feed_parse(raw)
            result = import_run(institute_id=institute, records=records)
        except (FeedError, ImportTargetMissing) as error:
            raise CommandError(f"{feed}: {error}; nothing was changed") from None
        self.stdout.write(
            f"Imported {len(records)} trainings into institute {institute}: "
            f"{result.created} created, {result.updated} updated, "
            f"{result.unchanged} unchanged, {result.deleted} deleted."
        )
