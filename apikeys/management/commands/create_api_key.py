from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from apikeys.services import api_key_create


class Command(BaseCommand):
    help = (
        "Create an API key for the Trainings API and print it once. The key itself is the "
        "last line of the output, alone, so that a script can capture it with `tail -n 1`. "
        "With --webhook the key also belongs to that partner's webhook: it reads the "
        "webhook's deliveries and asks for a resync or a test event (GET /webhooks)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("name", help="who the key is for, e.g. the partner's name")
        parser.add_argument(
            "--webhook",
            type=int,
            action="append",
            default=[],
            dest="webhook_ids",
            metavar="ID",
            help="id of a webhook the key belongs to; repeat for several",
        )

    def handle(self, *args, name: str, webhook_ids: list[int], **options) -> None:
        try:
            api_key, raw_key = api_key_create(name=name, webhook_ids=webhook_ids)
        except ValidationError as error:
            messages = "; ".join(
                f"{field}: {' '.join(errors)}" for field, errors in error.message_dict.items()
            )
            raise CommandError(f"cannot create the API key: {messages}") from None
        webhooks = (
            f", for webhook{'s' if len(webhook_ids) > 1 else ''} "
            + ", ".join(str(webhook_id) for webhook_id in sorted(set(webhook_ids)))
            if webhook_ids
            else ""
        )
        self.stdout.write(
            f"Created API key {api_key.pk} for {api_key.name!r} (prefix {api_key.prefix})"
            f"{webhooks}. It is shown only now and cannot be recovered; store it safely:"
        )
        self.stdout.write(raw_key)
