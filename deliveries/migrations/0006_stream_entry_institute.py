"""Stream rows carry their institute, so that a webhook with a scope reads only its
institutes' rows; a moved training keeps a row in each institute. Rows waiting at the
upgrade get theirs from what they hold (an institute's own id, a training's parent)."""

from django.db import migrations, models

_INSTITUTE_SET = (
    "UPDATE deliveries_streamentry SET institute_id = CASE WHEN object_kind = 'institute' "
    "THEN object_id ELSE COALESCE(parent_id, 0) END"
)


class Migration(migrations.Migration):

    dependencies = [
        ('deliveries', '0005_engine_payload_index'),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name='streamentry',
            name='stream_entry_one_per_object',
        ),
        migrations.AddField(
            model_name='streamentry',
            name='institute_id',
            field=models.BigIntegerField(default=0),
        ),
        migrations.RunSQL(_INSTITUTE_SET, migrations.RunSQL.noop),
        migrations.AddIndex(
            model_name='streamentry',
            index=models.Index(fields=['institute_id', 'seq'], name='stream_entry_institute_seq'),
        ),
        migrations.AddConstraint(
            model_name='streamentry',
            constraint=models.UniqueConstraint(fields=('object_kind', 'object_id', 'institute_id'), name='stream_entry_one_per_object_institute'),
        ),
    ]
