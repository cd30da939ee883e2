"""The demo partner of `python3 dev.py run`: a webhook to the reference receiver, its API
key, and the config file the receiver is started with. For development only."""

import json
import os
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction

from apikeys.models import ApiKey
from apikeys.services import api_key_create, api_key_hash
from deliveries.services import webhook_resync
from webhooks.models import Webhook

DEMO_NAME = "Demo partner"


class Command(BaseCommand):
    help = (
        "Create (once) a webhook to the demo partner receiver and an API key for it, and "
        "write the receiver's secret and key to a config file. For development only."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--url", default="http://127.0.0.1:9000/", help="receiver URL")
        parser.add_argument(
            "--config",
            default=str(Path(settings.BASE_DIR) / "var" / "demo-partner.json"),
            help="where to write the receiver's secret and API key (JSON)",
        )
        parser.add_argument(
            "--resend",
            action="store_true",
            help="queue the whole catalogue for the demo webhook alone, so the partner "
            "re-reads everything (done anyway when the webhook is created)",
        )

    def handle(self, *args, url: str, config: str, resend: bool, **options) -> None:
        config_path = Path(config)
        known = _read(config_path)
        with transaction.atomic():
            webhook, created = Webhook.objects.get_or_create(
                name=DEMO_NAME,
                defaults={
                    "url": url,
                    "description": "The reference receiver (examples/partner) run by dev.py.",
                },
            )
            if webhook.url != url:
                webhook.url = url
                webhook.save(update_fields=["url", "updated_at"])
            api_key = known.get("api_key", "")
            known_key = ApiKey.objects.filter(
                key_hash=api_key_hash(api_key), is_active=True
            ).first()
            if known_key is None:
                # Only a key's hash is stored: a key whose text was lost is replaced.
                _, api_key = api_key_create(name=DEMO_NAME, webhook_ids=[webhook.pk])
            else:
                # The partner's key also reads its webhook's deliveries (GET /webhooks).
                known_key.webhooks.add(webhook)
            if created or resend:
                # A new webhook gets only changes made after it: have the partner read all.
                institutes = webhook_resync(webhook_id=webhook.pk)
                self.stdout.write(f"Queued the whole catalogue for it: {institutes} institutes.")
        _write(
            config_path,
            {"webhook_id": webhook.pk, "url": webhook.url, "secret": webhook.secret,
             "api_key": api_key},
        )
        self.stdout.write(
            f"{'Created' if created else 'Kept'} the webhook {DEMO_NAME!r} to {webhook.url}; "
            f"the receiver's secret and API key are in {config_path}."
        )


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _write(path: Path, document: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Owner-only from the start: the file holds a secret and a key.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        json.dump(document, file, indent=2)
        file.write("\n")
