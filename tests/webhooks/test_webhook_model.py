import base64

import pytest
from django.core.exceptions import ValidationError

from webhooks.models import Webhook


@pytest.mark.django_db
def test_a_new_webhook_gets_a_standard_webhooks_secret():
    first = Webhook.objects.create(name="A", url="https://a.example/hook")
    second = Webhook.objects.create(name="B", url="https://b.example/hook")
    assert first.secret.startswith("whsec_")
    assert len(base64.b64decode(first.secret.removeprefix("whsec_"))) == 32
    assert first.secret != second.secret


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url",
    [
        "ftp://partner.example/hook",
        "partner.example/hook",
        "https://",
        "https:///path-only",
        " https://partner.example/hook",
        "https://partner.example/ho ok",
        "https://partner.example/" + "x" * 2000,
    ],
)
def test_bad_urls_are_refused_with_a_clear_message(url):
    webhook = Webhook(name="Partner", url=url)
    with pytest.raises(ValidationError) as error:
        webhook.full_clean()
    assert "url" in error.value.message_dict


@pytest.mark.django_db
def test_a_public_https_url_is_accepted(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_URLS = False
    Webhook(name="Partner", url="https://93.184.216.34/hook?x=1").full_clean()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.1:8000/hook", "is a loopback address"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://localhost/hook", "localhost"),
        ("https://no-such-host.invalid/hook", "does not resolve"),
    ],
)
def test_internal_or_unresolvable_hosts_are_refused_when_saved(settings, url, message):
    settings.WEBHOOK_ALLOW_PRIVATE_URLS = False
    with pytest.raises(ValidationError) as error:
        Webhook(name="Partner", url=url).full_clean()
    assert message in " ".join(error.value.message_dict["url"])


@pytest.mark.django_db
def test_private_urls_are_allowed_when_the_setting_says_so(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_URLS = True
    Webhook(name="Local partner", url="http://127.0.0.1:9000/hook").full_clean()


@pytest.mark.django_db
def test_a_url_with_a_fragment_is_refused_when_saved():
    with pytest.raises(ValidationError) as error:
        Webhook(name="Partner", url="https://93.184.216.34/hook#part").full_clean()
    assert "must not contain a fragment" in " ".join(error.value.message_dict["url"])


@pytest.mark.django_db
def test_the_migration_cuts_the_fragment_off_stored_urls_and_sends_where_they_went():
    from importlib import import_module

    from django.apps import apps

    migration = import_module("webhooks.migrations.0003_webhook_url_fragments_strip")
    stored = {
        "https://partner.example/hook#frag": "https://partner.example/hook",
        "https://partner.example/hook?x=1#": "https://partner.example/hook?x=1",
        "https://evil.example#@partner.example/hook": "https://evil.example",
        "https://plain.example/hook": "https://plain.example/hook",
    }
    ids = {
        Webhook.objects.create(name="P", url=url).pk: expected
        for url, expected in stored.items()
    }

    migration.webhook_url_fragments_strip(apps, None)

    for webhook_id, expected in ids.items():
        assert Webhook.objects.get(pk=webhook_id).url == expected
