# The API key model comes over from the catalog app with its table (renamed by catalog
# 0003) and its rows; its content type follows, so that permissions granted on API keys
# stay granted. Then keys can belong to webhooks.

from django.db import migrations, models


def content_type_move(apps, schema_editor, old='catalog', new='apikeys'):
    ContentType = apps.get_model('contenttypes', 'ContentType')
    db = schema_editor.connection.alias
    if not ContentType.objects.using(db).filter(app_label=new, model='apikey').exists():
        ContentType.objects.using(db).filter(app_label=old, model='apikey').update(app_label=new)


def content_type_move_back(apps, schema_editor):
    content_type_move(apps, schema_editor, old='apikeys', new='catalog')


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('catalog', '0003_apikey_moves_to_apikeys'),
        ('contenttypes', '0002_remove_content_type_name'),
        ('webhooks', '0001_initial'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='ApiKey',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('name', models.CharField(help_text='Who uses this key, e.g. the partner.', max_length=200)),
                        ('prefix', models.CharField(editable=False, max_length=8)),
                        ('key_hash', models.CharField(editable=False, max_length=64, unique=True)),
                        ('is_active', models.BooleanField(default=True, help_text='An inactive key is refused (401) at once.', verbose_name='active')),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('last_used_at', models.DateTimeField(blank=True, editable=False, null=True)),
                    ],
                    options={
                        'verbose_name': 'API key',
                        'ordering': ['name', 'id'],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(content_type_move, content_type_move_back),
        migrations.AddField(
            model_name='apikey',
            name='webhooks',
            field=models.ManyToManyField(blank=True, help_text="The partner's webhooks this key may read and operate (GET /webhooks, resync, test event). None: the key reads the catalogue only.", related_name='api_keys', to='webhooks.webhook'),
        ),
    ]
