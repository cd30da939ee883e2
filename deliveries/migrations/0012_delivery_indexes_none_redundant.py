"""No index that another one already serves: each is written by every insert and every
state change of a delivery (its lease, its acceptance) and read by nothing.

Dropped: the foreign-key indexes on Delivery.webhook (delivery_webhook_history leads with
it) and DeliveryAttempt.delivery (attempt_number_unique leads with it), and the
pattern-matching (LIKE) indexes that unique=True and a character foreign key add on
message_id and body_id. Kept, renamed without a rebuild: the index on body_id
(delivery_body) and the uniqueness of message_id (delivery_message_id_unique).

Written by hand, by name: the operations makemigrations generates for these field changes
look indexes up by column, and on PostgreSQL they dropped delivery_one_open_per_webhook
too (a partial unique index on the same column). SQLite keeps its indexes as they are
(a development database: nothing reads the difference).
"""

import django.db.models.deletion
from django.db import migrations, models

FORWARD = [
    "DROP INDEX IF EXISTS deliveries_delivery_webhook_id_9d6badc2",
    "DROP INDEX IF EXISTS deliveries_deliveryattempt_delivery_id_85da7e15",
    "DROP INDEX IF EXISTS deliveries_delivery_body_id_82935962_like",
    "DROP INDEX IF EXISTS deliveries_delivery_message_id_ee57c2a4_like",
    "ALTER INDEX IF EXISTS deliveries_delivery_body_id_82935962 RENAME TO delivery_body",
    "ALTER TABLE deliveries_delivery RENAME CONSTRAINT deliveries_delivery_message_id_key "
    "TO delivery_message_id_unique",
]
BACKWARD = [
    "ALTER TABLE deliveries_delivery RENAME CONSTRAINT delivery_message_id_unique "
    "TO deliveries_delivery_message_id_key",
    "ALTER INDEX IF EXISTS delivery_body RENAME TO deliveries_delivery_body_id_82935962",
    "CREATE INDEX IF NOT EXISTS deliveries_delivery_message_id_ee57c2a4_like "
    "ON deliveries_delivery (message_id varchar_pattern_ops)",
    "CREATE INDEX IF NOT EXISTS deliveries_delivery_body_id_82935962_like "
    "ON deliveries_delivery (body_id varchar_pattern_ops)",
    "CREATE INDEX IF NOT EXISTS deliveries_deliveryattempt_delivery_id_85da7e15 "
    "ON deliveries_deliveryattempt (delivery_id)",
    "CREATE INDEX IF NOT EXISTS deliveries_delivery_webhook_id_9d6badc2 "
    "ON deliveries_delivery (webhook_id)",
]


def _run(statements):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            for statement in statements:
                schema_editor.execute(statement)

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("deliveries", "0011_body_index_after_the_fact"),
        ("webhooks", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(_run(FORWARD), _run(BACKWARD))],
            state_operations=[
                migrations.AlterField(
                    model_name="delivery",
                    name="body",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="deliveries",
                        to="deliveries.deliverybody",
                    ),
                ),
                migrations.AlterField(
                    model_name="delivery",
                    name="message_id",
                    field=models.CharField(max_length=64),
                ),
                migrations.AlterField(
                    model_name="delivery",
                    name="webhook",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="deliveries",
                        to="webhooks.webhook",
                    ),
                ),
                migrations.AlterField(
                    model_name="deliveryattempt",
                    name="delivery",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="attempts",
                        to="deliveries.delivery",
                    ),
                ),
                migrations.AddIndex(
                    model_name="delivery",
                    index=models.Index(fields=["body"], name="delivery_body"),
                ),
                migrations.AddConstraint(
                    model_name="delivery",
                    constraint=models.UniqueConstraint(
                        fields=("message_id",), name="delivery_message_id_unique"
                    ),
                ),
            ],
        ),
    ]
