"""Bad webhook URLs typed into the real admin add form: a clear message, nothing saved."""

import html
import ipaddress
import socket

import pytest

from webhooks.addresses import address_is_forbidden
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
        ("https://partner.example/hook#frag", "must not contain a fragment (#…)"),
        ("https://evil.example#@partner.example/", "must not contain a fragment"),
    ],
    ids=["scheme", "no-scheme", "length", "space", "tab", "credentials", "soft-hyphen",
         "full-width-idn", "idn-combining-mark", "empty-idn-label", "short-loopback", "mapped-v6",
         "fragment", "fragment-hiding-host"],
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


@pytest.mark.django_db
def test_a_name_that_resolves_to_a_private_address_is_refused_without_the_address(
    admin_client, guarded
):
    # This machine's own name resolves, through the real system resolver, to one of its
    # own addresses (/etc/hosts maps it to loopback, a container to its private address):
    # a name whose spelling the guard cannot refuse, only its answer.
    hostname = socket.gethostname().lower()
    addresses = {answer[4][0] for answer in socket.getaddrinfo(hostname, 443)}
    assert addresses and all(
        address_is_forbidden(ipaddress.ip_address(address.split("%")[0]))
        for address in addresses
    ), f"{hostname} resolves to {addresses}; this test needs a name of this machine"

    response = post(admin_client, f"https://{hostname}/hook")

    assert response.status_code == 200
    errors = " ".join(response.context["adminform"].form.errors["url"])
    assert f"Webhook host {hostname!r} resolves to a private address" in html.unescape(errors)
    assert "Webhooks may only point at public addresses" in errors
    page = html.unescape(response.content.decode())
    for address in addresses:
        assert address not in errors
        assert address not in page
    assert not Webhook.objects.exists()
