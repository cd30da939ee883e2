"""The `operators` group: watch delivery health and history, retry, pause, resume
and send test events; never change a webhook's URL nor read its secret."""

from django.db import migrations

OPERATOR_PERMISSIONS = [
    ("webhooks", "view_webhook"),
    ("webhooks", "operate_webhook"),
    ("deliveries", "view_delivery"),
    ("deliveries", "view_deliveryattempt"),
    ("deliveries", "view_pendingentry"),
]


def operators_create(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    # Permissions are normally made after all migrations ran; make them now so that the
    # group can be given them in this very migration.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name="operators")
    for app_label, codename in OPERATOR_PERMISSIONS:
        group.permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )


def operators_remove(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name="operators").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("deliveries", "0002_operations"),
        ("webhooks", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(operators_create, operators_remove)]
