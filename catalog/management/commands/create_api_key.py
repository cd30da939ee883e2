from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from catalog.services import api_key_create


class Command(BaseCommand):
    help = (
        "Create an API key for the Trainings API and print it once. The key itself is the "
        "last line of the output, alone, so that a script can capture it with `tail -n 1`."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("name", help="who the key is for, e.g. the partner's name")

    def handle(self, *args, name: str, **options) -> None:
        try:
            api_key, raw_key = api_key_create(name=name)
        except ValidationError as error:
            messages = "; ".join(
                f"{field}: {' '.join(errors)}" for field, errors in error.message_dict.items()
            )
            raise CommandError(f"cannot create the API key: {messages}") from None
        self.stdout.write(
            f"Created API key {api_key.pk} for {api_key.name!r} (prefix {api_key.prefix}). "
            "It is shown only now and cannot be recovered; store it safely:"
        )
        self.stdout.write(raw_key)
