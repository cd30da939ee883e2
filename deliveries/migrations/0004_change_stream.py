"""The change stream: one coalesced row per object shared by every webhook, and a cursor
per webhook, instead of one pending row per webhook per object.

Pending entries waiting at the upgrade stay valid: the table now holds the entries meant
for one webhook alone, and a webhook's batch merges them with its stream entries, so
nothing waiting is lost. Their `last_change_id` (a change id) orders them; the stream's
numbering starts above the largest, so everything collected after the upgrade goes out
after them. Each webhook gets its cursor when the collector first sees changes made
after the webhook was created.
"""

import django.db.models.deletion
from django.db import migrations, models


def stream_head_create(apps, schema_editor):
    PendingEntry = apps.get_model("deliveries", "PendingEntry")
    StreamHead = apps.get_model("deliveries", "StreamHead")
    waiting = PendingEntry.objects.aggregate(models.Max("last_change_id"))
    StreamHead.objects.create(pk=1, seq=waiting["last_change_id__max"] or 0)


class Migration(migrations.Migration):

    dependencies = [
        ('deliveries', '0003_operators_group'),
        ('webhooks', '0002_webhook_last_resync_at'),
    ]

    operations = [
        migrations.CreateModel(
            name='StreamHead',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('seq', models.BigIntegerField(default=0)),
            ],
        ),
        migrations.CreateModel(
            name='WebhookCursor',
            fields=[
                ('webhook', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True, related_name='stream_cursor', serialize=False, to='webhooks.webhook')),
                ('seq', models.BigIntegerField()),
            ],
        ),
        migrations.CreateModel(
            name='StreamEntry',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('object_kind', models.CharField(max_length=32)),
                ('object_id', models.BigIntegerField()),
                ('parent_id', models.BigIntegerField(blank=True, null=True)),
                ('action', models.CharField(max_length=16)),
                ('first_change_at', models.DateTimeField()),
                ('last_change_at', models.DateTimeField()),
                ('seq', models.BigIntegerField(unique=True)),
            ],
            options={
                'verbose_name_plural': 'stream entries',
                'constraints': [models.UniqueConstraint(fields=('object_kind', 'object_id'), name='stream_entry_one_per_object')],
            },
        ),
        migrations.RunPython(stream_head_create, migrations.RunPython.noop),
    ]
