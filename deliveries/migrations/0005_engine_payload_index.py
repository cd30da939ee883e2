"""The payload's GIN index covers accepted batches only.

Every update of a delivery row that is not HOT (a claim's lease, a record's state) wrote
the row's whole GIN entry list again: the payload parsed as JSON and some 2,000 keys
inserted for a batch of 500 entries, twice per batch (claim, then record), about 2.5 ms
each. Partial on `state = 'delivered'`, a batch's keys are inserted once, when it is
accepted; the open ones (at most one per webhook) are few enough to check directly
(deliveries.selectors.deliveries_carrying).
"""

from django.db import migrations

PAYLOAD_INDEX_DELIVERED = (
    "CREATE INDEX IF NOT EXISTS delivery_payload_changes ON deliveries_delivery "
    "USING gin (((payload::jsonb) -> 'changes') jsonb_path_ops) WHERE state = 'delivered'"
)
PAYLOAD_INDEX_ALL = (
    "CREATE INDEX IF NOT EXISTS delivery_payload_changes ON deliveries_delivery "
    "USING gin (((payload::jsonb) -> 'changes') jsonb_path_ops)"
)


def _replace(schema_editor, definition: str) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS delivery_payload_changes")
        schema_editor.execute(definition)


def index_delivered_only(apps, schema_editor):
    _replace(schema_editor, PAYLOAD_INDEX_DELIVERED)


def index_all(apps, schema_editor):
    _replace(schema_editor, PAYLOAD_INDEX_ALL)


class Migration(migrations.Migration):

    dependencies = [
        ("deliveries", "0004_change_stream"),
    ]

    operations = [
        migrations.RunPython(index_delivered_only, index_all),
    ]
