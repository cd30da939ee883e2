from django.core.management.base import BaseCommand, CommandError

from apikeys.models import ApiKey
from portal.api import portal_link_url
from portal.services import PortalLinkError, portal_link_create


class Command(BaseCommand):
    help = (
        "Make a single-use sign-in link to the partner portal for the API key with this "
        "name (or prefix) and print it once, alone on the last line. Read-only unless --act."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("key", help="the API key's name, or its prefix (sk_…)")
        parser.add_argument(
            "--act", action="store_true",
            help="the link may also act: resend, test, pause, resume, rotate, change the URL",
        )

    def handle(self, *args, key: str, act: bool, **options) -> None:
        keys = list(ApiKey.objects.filter(name=key, is_active=True)) or list(
            ApiKey.objects.filter(prefix=key, is_active=True)
        )
        if not keys:
            raise CommandError(f"no active API key is named {key!r} or has that prefix")
        if len(keys) > 1:
            prefixes = ", ".join(api_key.prefix for api_key in keys)
            raise CommandError(f"{len(keys)} active keys are named {key!r}: give the prefix "
                               f"of one ({prefixes})")
        try:
            link, raw_token = portal_link_create(
                api_key_id=keys[0].pk, can_act=act, created_by="manage.py portal_link"
            )
        except PortalLinkError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(
            f"{'Acting' if act else 'Read-only'} sign-in link for {keys[0]}, works once until "
            f"{link.expires_at:%Y-%m-%d %H:%M} UTC:"
        )
        self.stdout.write(portal_link_url(raw_token))
