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
def test_a_plain_https_url_is_accepted():
    Webhook(name="Partner", url="https://partner.example/hook?x=1").full_clean()
