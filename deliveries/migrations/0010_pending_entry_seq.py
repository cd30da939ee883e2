"""PendingEntry.last_change_id becomes PendingEntry.seq: since 0004_change_stream the column
holds a seq of the stream's numbering (StreamEntry.seq), stamped by the collector, not a
change id. The batch-order index keeps its name and now covers (webhook, seq).

The previous release reads and writes the old column name: see docs/operations.md,
Upgrading.
"""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('deliveries', '0009_attempt_answer_db_defaults'),
        ('webhooks', '0007_merge_scope'),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name='pendingentry',
            name='pending_entry_batch_order',
        ),
        migrations.RenameField(
            model_name='pendingentry',
            old_name='last_change_id',
            new_name='seq',
        ),
        migrations.AddIndex(
            model_name='pendingentry',
            index=models.Index(fields=['webhook', 'seq'], name='pending_entry_batch_order'),
        ),
    ]
