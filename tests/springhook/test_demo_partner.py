"""The demo partner command of `dev.py run`: idempotent, and the partner starts complete."""

import io
import json
import stat

from django.core.management import call_command

from apikeys.models import ApiKey
from apikeys.services import api_key_check
from catalog.models import Institute
from changes.models import Change
from webhooks.models import Webhook


def run(config, *args: str, url: str = "http://127.0.0.1:9000/") -> dict:
    call_command("demo_partner", "--url", url, "--config", str(config), *args,
                 stdout=io.StringIO())
    return json.loads(config.read_text())


def imports() -> list[int]:
    return sorted(Change.objects.filter(action="import").values_list("object_id", flat=True))


def test_first_run_makes_webhook_and_key_and_asks_the_partner_to_read_everything(db, tmp_path):
    first, second = Institute.objects.create(name="A"), Institute.objects.create(name="B")
    Change.objects.all().delete()
    config = tmp_path / "var" / "demo-partner.json"

    written = run(config)

    webhook = Webhook.objects.get()
    assert written == {"webhook_id": webhook.pk, "url": "http://127.0.0.1:9000/",
                       "secret": webhook.secret, "api_key": written["api_key"]}
    assert api_key_check(raw_key=written["api_key"]) is not None
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert imports() == [first.pk, second.pk]


def test_later_runs_keep_webhook_and_key_and_resend_only_when_asked(db, tmp_path):
    institute = Institute.objects.create(name="A")
    config = tmp_path / "demo-partner.json"
    written = run(config)
    Change.objects.all().delete()

    assert run(config) == written
    assert Webhook.objects.count() == 1 and ApiKey.objects.count() == 1
    assert imports() == []

    assert run(config, "--resend") == written
    assert imports() == [institute.pk]


def test_a_lost_key_is_replaced_and_a_new_port_followed(db, tmp_path):
    config = tmp_path / "demo-partner.json"
    written = run(config)
    ApiKey.objects.update(is_active=False)

    again = run(config, url="http://127.0.0.1:9100/")

    assert again["api_key"] != written["api_key"]
    assert api_key_check(raw_key=again["api_key"]) is not None
    assert Webhook.objects.get().url == again["url"] == "http://127.0.0.1:9100/"


def test_the_catalogue_goes_to_the_demo_webhook_alone_and_its_key_reads_it(db, tmp_path):
    other = Webhook.objects.create(name="Another partner", url="https://other.example/hook")
    Institute.objects.create(name="A")
    Change.objects.all().delete()

    written = run(tmp_path / "demo-partner.json")

    demo = Webhook.objects.get(pk=written["webhook_id"])
    assert set(Change.objects.values_list("webhook_id", flat=True)) == {demo.pk}
    assert list(api_key_check(raw_key=written["api_key"]).webhooks.all()) == [demo]
    assert other not in demo.api_keys.get().webhooks.all()
