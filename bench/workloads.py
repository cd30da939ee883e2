"""Data the measurements run on, written straight into the bench database."""

from __future__ import annotations

from django.db import connection

from deliveries.models import PendingEntry
from deliveries.payload import payload_render
from deliveries.services import BatchEntry
from webhooks.models import Webhook

# Trainings per institute in generated data: the parent_id of training n is n // this.
TRAININGS_PER_INSTITUTE = 100


def tables_clear(*, webhooks: bool = True, deliveries: bool = True) -> None:
    """Empty the outbox and everything delivery-related (the catalogue stays): every table
    of the changes app, of the deliveries app unless `deliveries=False`, and of the
    webhooks app unless `webhooks=False`. The one place the bench empties tables; the
    tables are read from the apps, so that a new delivery table is emptied too."""
    from django.apps import apps

    labels = ["changes"] + (["deliveries"] if deliveries else []) + (
        ["webhooks"] if webhooks else []
    )
    tables = [
        connection.ops.quote_name(model._meta.db_table)
        for label in labels
        for model in apps.get_app_config(label).get_models()
        if model._meta.managed and not model._meta.proxy
    ]
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")


def webhooks_create(
    *, base_url: str, count: int, first: int = 0, path: str = "/w/{n}"
) -> list[int]:
    hooks = Webhook.objects.bulk_create(
        Webhook(name=f"bench {n}", url=base_url + path.format(n=n))
        for n in range(first, first + count)
    )
    return [hook.pk for hook in hooks]


def pending_fill(*, webhook_ids: list[int], per_webhook: int) -> None:
    """Give each webhook `per_webhook` training updates, ids 1.. in seq order."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {PendingEntry._meta.db_table} (webhook_id, object_kind, object_id, "
            "parent_id, action, first_change_at, last_change_at, seq) "
            "SELECT webhook_id, 'training', n, n / %s, 'update', now(), now(), n "
            "FROM unnest(%s::bigint[]) AS webhook_id, generate_series(1, %s) AS n",
            [TRAININGS_PER_INSTITUTE, webhook_ids, per_webhook],
        )
        cursor.execute(f"ANALYZE {PendingEntry._meta.db_table}")


def batch_bodies(*, batches: int, batch_size: int) -> list[bytes]:
    """The bodies the dispatcher sends for `pending_fill` entries, batch after batch."""
    return [
        payload_render(
            BatchEntry("training", n, "update")
            for n in range(batch * batch_size + 1, (batch + 1) * batch_size + 1)
        ).encode()
        for batch in range(batches)
    ]
