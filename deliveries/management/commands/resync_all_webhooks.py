from django.core.management.base import BaseCommand, CommandError

from deliveries.services import DeliveryError, webhook_resync
from webhooks.models import Webhook


class Command(BaseCommand):
    help = (
        "Send every webhook the whole catalogue (an `import` of every institute), as "
        "resync_webhook does for one. Run it after restoring the database from a backup: "
        "partners were sent changes made after the backup was taken, which the restored "
        "database no longer has."
    )

    def handle(self, *args, **options) -> None:
        webhooks = list(Webhook.objects.order_by("pk").values_list("pk", "name"))
        if not webhooks:
            self.stdout.write("No webhooks: nothing to resync.")
            return
        institutes = 0
        for webhook_id, name in webhooks:
            # One transaction per webhook (the service's own): a webhook deleted meanwhile
            # is reported and the others still get theirs.
            try:
                institutes = webhook_resync(webhook_id=webhook_id)
            except DeliveryError as error:
                raise CommandError(f"webhook {webhook_id} ({name}): {error}") from None
            self.stdout.write(f"Queued the whole catalogue for webhook {webhook_id} ({name}).")
        self.stdout.write(
            f"Resync queued for all {len(webhooks)} webhook{'s' if len(webhooks) != 1 else ''}"
            f" ({institutes} institute{'' if institutes == 1 else 's'} each): every partner"
            " re-reads every institute and drops the trainings it no longer lists. Paused"
            " webhooks receive it when resumed."
        )
