"""The bodies' search index, filled after the fact.

A claim stores each new body with `indexed` false (deliveries.models.DeliveryBody):
extracting a 500-entry body's keys into PostgreSQL's GIN index took about 1 ms of every
batch's transaction, on the path a catching-up partner waits on. This periodic job
(`index` in deliveries.periodic) sets `indexed` on the bodies stored since, a few hundred
per statement, and PostgreSQL inserts their keys then. Until it has, deliveries_carrying
reads the few unindexed bodies one by one, so a search finds a batch the moment it is
stored. SQLite has no such index: the job has nothing to do there.
"""

import logging
import time

from django.db import connection, transaction

from core.logfmt import logfmt
from deliveries.models import DeliveryBody

logger = logging.getLogger("springhook.deliveries")
# Bodies per transaction, about 1 ms each: a claim that stores a body identical to one
# being indexed waits for this transaction (its ON CONFLICT locks the row), briefly.
INDEX_BATCH = 50


def bodies_index(*, time_budget: float = 5.0, batch_size: int = INDEX_BATCH) -> int:
    """Put the bodies stored since the last run into the search index, `batch_size` per
    transaction, for up to `time_budget` seconds (at least one batch). Returns how many; a
    later run continues. Skips bodies a claim holds right now (they come next time)."""
    if connection.vendor != "postgresql":
        return 0
    table = DeliveryBody._meta.db_table
    deadline = time.monotonic() + time_budget
    indexed = 0
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} SET indexed = true WHERE digest IN ("
                f"SELECT digest FROM {table} WHERE NOT indexed ORDER BY digest LIMIT %s "
                f"FOR NO KEY UPDATE SKIP LOCKED)",
                [batch_size],
            )
            count = cursor.rowcount
        indexed += count
        if count < batch_size or time.monotonic() >= deadline:
            break
    if indexed:
        logger.debug(logfmt("bodies_indexed", bodies=indexed))
    return indexed
