# ApiKey moves to the apikeys app, which both APIs build on. Its table is renamed, with
# every key in it; apikeys 0001 takes the model over in the migration state.

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('catalog', '0002_api'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.AlterModelTable(name='ApiKey', table='apikeys_apikey'),
            ],
            state_operations=[
                migrations.DeleteModel(name='ApiKey'),
            ],
        ),
    ]
