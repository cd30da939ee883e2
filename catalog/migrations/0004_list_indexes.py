from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('catalog', '0003_apikey_moves_to_apikeys'),
    ]

    operations = [
        migrations.AddIndex(
            model_name='institute',
            index=models.Index(fields=['updated_at', 'id'], name='institute_updated_id_idx'),
        ),
        migrations.AddIndex(
            model_name='training',
            index=models.Index(fields=['updated_at', 'id'], name='training_updated_id_idx'),
        ),
    ]
