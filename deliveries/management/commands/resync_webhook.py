from django.core.management.base import BaseCommand, CommandError

from deliveries.services import DeliveryError, webhook_resync


class Command(BaseCommand):
    help = (
        "Send one webhook the whole catalogue: queue an `import` of every institute for it "
        "alone. They coalesce with what already waits and go out in order; no other "
        "webhook receives anything."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("webhook_id", type=int, metavar="WEBHOOK_ID")

    def handle(self, *args, webhook_id: int, **options) -> None:
        try:
            count = webhook_resync(webhook_id=webhook_id)
        except DeliveryError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(
            f"Queued the whole catalogue for webhook {webhook_id}: "
            f"{count} institute{'' if count == 1 else 's'}."
        )
