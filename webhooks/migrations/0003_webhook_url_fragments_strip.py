from django.db import migrations


def webhook_url_fragments_strip(apps, schema_editor) -> None:
    """Drop the fragment from every stored webhook URL.

    URLs with a "#" are refused from now on, at save and at send. A fragment was never
    sent (HTTP clients drop it), so cutting it off sends every batch where it went before,
    instead of refusing every send of a webhook saved under the old rule.
    """
    Webhook = apps.get_model("webhooks", "Webhook")
    for webhook_id, url in Webhook.objects.filter(url__contains="#").values_list("id", "url"):
        Webhook.objects.filter(pk=webhook_id).update(url=url.split("#", 1)[0])


class Migration(migrations.Migration):
    dependencies = [("webhooks", "0002_webhook_last_resync_at")]

    operations = [
        migrations.RunPython(webhook_url_fragments_strip, migrations.RunPython.noop),
    ]
