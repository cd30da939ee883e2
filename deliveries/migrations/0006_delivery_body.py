"""Each body stored once: deliveries reference a DeliveryBody keyed by the SHA-256 of its
bytes, instead of each holding its own copy of the payload.

The existing payloads move into the new table (each distinct one once), and the GIN index
that answers "which batches carried training 345345" moves with them: on the bodies, which
are never updated, it needs no condition on the delivery's state. Reversible: going back
copies each body into its deliveries again.
"""

import hashlib

import django.db.models.deletion
from django.db import migrations, models

BODY_INDEX = (
    "CREATE INDEX IF NOT EXISTS delivery_body_changes ON deliveries_deliverybody "
    "USING gin (((payload::jsonb) -> 'changes') jsonb_path_ops)"
)
PAYLOAD_INDEX_DELIVERED = (
    "CREATE INDEX IF NOT EXISTS delivery_payload_changes ON deliveries_delivery "
    "USING gin (((payload::jsonb) -> 'changes') jsonb_path_ops) WHERE state = 'delivered'"
)
# Rows moved per statement on SQLite (PostgreSQL moves them set-based, in SQL).
CHUNK = 1000


def bodies_from_payloads(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor == "postgresql":
        digest = "encode(sha256(convert_to(payload, 'UTF8')), 'hex')"
        schema_editor.execute(
            f"INSERT INTO deliveries_deliverybody (digest, payload) "
            f"SELECT DISTINCT {digest}, payload FROM deliveries_delivery "
            f"ON CONFLICT (digest) DO NOTHING"
        )
        schema_editor.execute(f"UPDATE deliveries_delivery SET body_id = {digest}")
        # The deliveries' foreign keys are checked now, not at commit: the columns change
        # next, and PostgreSQL alters no table with checks still pending.
        schema_editor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        return
    Delivery = apps.get_model("deliveries", "Delivery")
    DeliveryBody = apps.get_model("deliveries", "DeliveryBody")
    rows = Delivery.objects.filter(body__isnull=True).order_by("pk").values_list("pk", "payload")
    while chunk := list(rows[:CHUNK]):
        digests = {
            payload: hashlib.sha256(payload.encode("utf-8")).hexdigest() for _, payload in chunk
        }
        DeliveryBody.objects.bulk_create(
            [DeliveryBody(digest=digest, payload=payload) for payload, digest in digests.items()],
            ignore_conflicts=True,
        )
        Delivery.objects.bulk_update(
            [Delivery(pk=pk, body_id=digests[payload]) for pk, payload in chunk], ["body"]
        )


def payloads_from_bodies(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "UPDATE deliveries_delivery AS delivery SET payload = body.payload "
            "FROM deliveries_deliverybody AS body WHERE body.digest = delivery.body_id"
        )
        schema_editor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        return
    Delivery = apps.get_model("deliveries", "Delivery")
    rows = Delivery.objects.filter(payload__isnull=True).order_by("pk").values_list(
        "pk", "body__payload"
    )
    while chunk := list(rows[:CHUNK]):
        Delivery.objects.bulk_update(
            [Delivery(pk=pk, payload=payload) for pk, payload in chunk], ["payload"]
        )


# The payloads' index goes before the rows are updated and comes back after they are
# filled again: updating a million rows under a GIN index would insert every row's keys
# anew, where building the index once afterwards is one sort.
def payload_index_drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS delivery_payload_changes")


def payload_index_create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PAYLOAD_INDEX_DELIVERED)


def body_index_create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BODY_INDEX)


def body_index_drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS delivery_body_changes")


class Migration(migrations.Migration):

    dependencies = [
        ("deliveries", "0005_engine_payload_index"),
    ]

    operations = [
        migrations.CreateModel(
            name="DeliveryBody",
            fields=[
                (
                    "digest",
                    models.CharField(
                        help_text="SHA-256, hex.", max_length=64, primary_key=True, serialize=False
                    ),
                ),
                (
                    "payload",
                    models.TextField(help_text="The exact JSON body sent (compact UTF-8)."),
                ),
            ],
            options={
                "verbose_name_plural": "delivery bodies",
            },
        ),
        migrations.AddField(
            model_name="delivery",
            name="body",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="deliveries",
                to="deliveries.deliverybody",
            ),
        ),
        migrations.AlterField(
            model_name="delivery",
            name="payload",
            field=models.TextField(
                null=True, help_text="The exact JSON body sent (compact UTF-8)."
            ),
        ),
        migrations.RunPython(payload_index_drop, payload_index_create),
        migrations.RunPython(bodies_from_payloads, payloads_from_bodies),
        migrations.RunPython(body_index_create, body_index_drop),
        migrations.RemoveField(
            model_name="delivery",
            name="payload",
        ),
        migrations.AlterField(
            model_name="delivery",
            name="body",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="deliveries",
                to="deliveries.deliverybody",
            ),
        ),
    ]
