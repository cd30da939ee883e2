"""Bad webhook URLs typed into the real admin add form: a clear message, nothing saved."""

import html

import pytest

from webhooks.models import Webhook

ADD_URL = "/admin/webhooks/webhook/add/"


def post(admin_client, url: str):
    return admin_client.post(
        ADD_URL, {"name": "Partner", "url": url, "description": "", "is_active": "on",
                  "bundle_delay": ""},
    )


@pytest.fixture
def guarded(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_URLS = False


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://partner.example/hook", "must start with http:// or https:// (it has 'ftp:')"),
        ("partner.example/hook", "must start with http:// or https://"),
        ("https://partner.example/" + "x" * 2000, "at most 2000 characters"),
        ("https://partner.example/ho ok", "whitespace or an invisible character (U+0020)"),
        ("https://partner.example/\thook", "whitespace or an invisible character (U+0009)"),
        ("https://user:secret@partner.example/hook", "must not contain a user name or password"),
        ("https://lo\u00adcalhost/hook", "invisible character (U+00AD)"),
        ("https://\uff11\uff12\uff17.\uff10.\uff10.\uff11/hook", "loopback address"),
        ("https://\u0301abc.example/hook", "not a valid internationalised domain name"),
        ("https://b\u00fccher..example/hook", "not a valid"),
        ("http://127.1:8000/hook", "is a loopback address"),
        ("http://[::ffff:10.0.0.1]/hook", "private address"),
    ],
    ids=["scheme", "no-scheme", "length", "space", "tab", "credentials", "soft-hyphen",
         "full-width-idn", "idn-combining-mark", "empty-idn-label", "short-loopback", "mapped-v6"],
)
def test_a_bad_url_shows_a_clear_error_and_saves_nothing(admin_client, guarded, url, message):
    response = post(admin_client, url)
    assert response.status_code == 200, "the form is shown again, not a redirect"
    errors = " ".join(response.context["adminform"].form.errors["url"])
    assert message in errors
    assert message in html.unescape(response.content.decode())
    assert not Webhook.objects.exists()


@pytest.mark.django_db
def test_a_good_url_is_saved_and_surrounding_whitespace_trimmed(admin_client, guarded):
    response = post(admin_client, "  https://93.184.216.34/hook?x=1  ")
    assert response.status_code == 302
    assert Webhook.objects.get().url == "https://93.184.216.34/hook?x=1"
