"""On PostgreSQL, each institute and training keeps its digest hash (catalog.digest) in a
`digest_hash` column that a trigger sets on every insert and on every update of `id` or
`updated_at`, with an index on (id) that includes it: a digest over any id range is then
read from the index alone instead of hashing every row at each request.

The column is not a model field: Django never writes it, and other databases (SQLite)
have none; catalog.digest hashes their rows in Python instead. The SQL function below is
the database's spelling of catalog.digest.object_hash; tests/catalog/test_digest.py holds
the two equal.
"""

from django.db import migrations

TABLES = (("catalog_institute", "institute"), ("catalog_training", "training"))

FUNCTIONS = """
CREATE FUNCTION catalog_digest_hash(object_id bigint, updated_at timestamptz)
RETURNS bigint LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT ('x' || left(md5(object_id::text || '|' || to_char(
        updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')), 16))::bit(64)::bigint
$$;
CREATE FUNCTION catalog_digest_hash_set() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.digest_hash := catalog_digest_hash(NEW.id, NEW.updated_at);
    RETURN NEW;
END
$$;
"""

TABLE = """
ALTER TABLE {table} ADD COLUMN digest_hash bigint;
UPDATE {table} SET digest_hash = catalog_digest_hash(id, updated_at);
CREATE TRIGGER {table}_digest_hash BEFORE INSERT OR UPDATE OF id, updated_at ON {table}
    FOR EACH ROW EXECUTE FUNCTION catalog_digest_hash_set();
CREATE INDEX {kind}_digest_idx ON {table} (id) INCLUDE (digest_hash);
"""

DROP_TABLE = """
DROP INDEX IF EXISTS {kind}_digest_idx;
DROP TRIGGER IF EXISTS {table}_digest_hash ON {table};
ALTER TABLE {table} DROP COLUMN IF EXISTS digest_hash;
"""

DROP_FUNCTIONS = """
DROP FUNCTION IF EXISTS catalog_digest_hash_set();
DROP FUNCTION IF EXISTS catalog_digest_hash(bigint, timestamptz);
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(FUNCTIONS)
    for table, kind in TABLES:
        schema_editor.execute(TABLE.format(table=table, kind=kind))


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table, kind in TABLES:
        schema_editor.execute(DROP_TABLE.format(table=table, kind=kind))
    schema_editor.execute(DROP_FUNCTIONS)


class Migration(migrations.Migration):
    dependencies = [("catalog", "0004_list_indexes")]

    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
