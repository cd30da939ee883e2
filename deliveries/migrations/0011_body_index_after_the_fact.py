"""The bodies' search index is filled after the fact, off the send path.

A GIN index over every body's `changes` parsed the 48 KB body as JSON and inserted some
2,000 keys in the claim that stored it: about 1 ms of each batch's transaction, and every
few hundred bodies a claim also merged the index's pending list (230 ms). Now a body is
stored with `indexed` false; the periodic job `index` (deliveries.services.bodies) sets
it, and the GIN index covers only indexed bodies. Rows already stored are indexed already:
the column is added true for them, false for new rows by default.

The payload column is compressed with lz4 where the server has it (half pglz's time for a
body; PostgreSQL 14+ built with lz4, as Debian's and the official images are); elsewhere
it stays pglz.

Rebuilds the GIN index once (a sort over every stored body): on a large history this
takes a while; run it with the workers stopped or expect claims to wait for it.
"""

from django.db import migrations, models

GIN_ALL = (
    "CREATE INDEX IF NOT EXISTS delivery_body_changes ON deliveries_deliverybody "
    "USING gin (((payload::jsonb) -> 'changes') jsonb_path_ops)"
)
GIN_INDEXED = (
    "CREATE INDEX IF NOT EXISTS delivery_body_changes_indexed ON deliveries_deliverybody "
    "USING gin (((payload::jsonb) -> 'changes') jsonb_path_ops) WHERE indexed"
)
NOT_INDEXED = (
    "CREATE INDEX IF NOT EXISTS delivery_body_not_indexed ON deliveries_deliverybody "
    "(digest) WHERE NOT indexed"
)


def indexes_after_the_fact(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return  # SQLite searches the text (deliveries.selectors.deliveries_carrying)
    schema_editor.execute("DROP INDEX IF EXISTS delivery_body_changes")
    schema_editor.execute(GIN_INDEXED)
    schema_editor.execute(NOT_INDEXED)
    schema_editor.execute("SAVEPOINT body_compression")
    try:
        schema_editor.execute(
            "ALTER TABLE deliveries_deliverybody ALTER COLUMN payload SET COMPRESSION lz4"
        )
    except Exception:  # a server built without lz4 (or before 14): pglz, as before
        schema_editor.execute("ROLLBACK TO SAVEPOINT body_compression")
    else:
        schema_editor.execute("RELEASE SAVEPOINT body_compression")


def indexes_on_insert(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("DROP INDEX IF EXISTS delivery_body_not_indexed")
    schema_editor.execute("DROP INDEX IF EXISTS delivery_body_changes_indexed")
    schema_editor.execute(GIN_ALL)


class Migration(migrations.Migration):

    dependencies = [
        ("deliveries", "0010_pending_entry_seq"),
    ]

    operations = [
        # Rows stored before this migration are in the index already: true for them.
        migrations.AddField(
            model_name="deliverybody",
            name="indexed",
            field=models.BooleanField(default=True),
        ),
        migrations.AlterField(
            model_name="deliverybody",
            name="indexed",
            field=models.BooleanField(
                default=False, db_default=False,
                help_text="In PostgreSQL's search index (filled after the fact).",
            ),
        ),
        migrations.RunPython(indexes_after_the_fact, indexes_on_insert),
    ]
