"""Tests of the address guard (webhooks/addresses.py): pure Python, no Django needed.

Run alone with ``pytest tests/webhooks/test_addresses.py -p no:django``.
"""

from __future__ import annotations

import ipaddress
import socket

import pytest

from webhooks.addresses import (
    MAX_URL_LENGTH,
    AddressRefused,
    HostUnresolvable,
    InvalidWebhookURL,
    address_is_forbidden,
    host_resolve,
    parse_ip_literal,
    url_validate,
)

LONG_PATH_URL = "https://example.com/" + "a" * (MAX_URL_LENGTH - len("https://example.com/"))

# (url, exception class, reason for AddressRefused). Malformed URLs are InvalidWebhookURL
# even when their host is also forbidden: they are rejected before the host is looked at.
HOSTILE_URLS = [
    # Schemes other than http(s).
    ("ftp://example.com/", InvalidWebhookURL, None),
    ("file:///etc/passwd", InvalidWebhookURL, None),
    ("gopher://127.0.0.1:6379/_FLUSHALL", InvalidWebhookURL, None),
    ("javascript:alert(1)", InvalidWebhookURL, None),
    ("data:text/plain,hello", InvalidWebhookURL, None),
    ("dict://127.0.0.1:11211/stat", InvalidWebhookURL, None),
    ("//example.com/hook", InvalidWebhookURL, None),
    ("example.com/hook", InvalidWebhookURL, None),
    ("", InvalidWebhookURL, None),
    # No host, credentials, bad ports.
    ("http:///path", InvalidWebhookURL, None),
    ("http://", InvalidWebhookURL, None),
    ("http://:8080/", InvalidWebhookURL, None),
    ("http://user:pw@example.com/", InvalidWebhookURL, None),
    ("http://user@example.com/", InvalidWebhookURL, None),
    ("http://example.com@127.0.0.1/", InvalidWebhookURL, None),
    ("http://example.com:0/", InvalidWebhookURL, None),
    ("http://example.com:65536/", InvalidWebhookURL, None),
    ("http://example.com:99999/", InvalidWebhookURL, None),
    ("http://example.com:-1/", InvalidWebhookURL, None),
    ("http://example.com:80:80/", InvalidWebhookURL, None),
    ("http://example.com:/", InvalidWebhookURL, None),
    ("http://example.com:８０/", InvalidWebhookURL, None),
    # Whitespace, control and invisible characters, backslashes, length.
    ("http://exa mple.com/", InvalidWebhookURL, None),
    ("http://example.com/hook\n", InvalidWebhookURL, None),
    ("http://exa\tmple.com/", InvalidWebhookURL, None),
    ("http://example.com/\r\nX-Injected: 1", InvalidWebhookURL, None),
    ("http://example.com/\x00", InvalidWebhookURL, None),
    # A fragment is never sent; "#@" can also hide the host ("evil.example" here).
    ("https://partner.example/hook#frag", InvalidWebhookURL, None),
    ("https://partner.example/hook?source=springhook#", InvalidWebhookURL, None),
    ("https://evil.example#@partner.example/hook", InvalidWebhookURL, None),
    ("http://\u00a0example.com/", InvalidWebhookURL, None),
    ("http://lo\u00adcalhost/", InvalidWebhookURL, None),  # soft hyphen: IDNA drops it
    ("http://ex\u200bample.com/", InvalidWebhookURL, None),  # zero-width space
    ("http://example.com\\@127.0.0.1/", InvalidWebhookURL, None),
    (LONG_PATH_URL + "a", InvalidWebhookURL, None),
    # Hosts that are neither an address nor a name.
    ("http://[::1/", InvalidWebhookURL, None),
    ("http://::1/", InvalidWebhookURL, None),
    ("http://[127.0.0.1]/", InvalidWebhookURL, None),
    ("http://[v1.fe]/", InvalidWebhookURL, None),
    ("http://[::ffff:127.1]/", InvalidWebhookURL, None),
    ("http://[fe80::1%]/", InvalidWebhookURL, None),
    ("http://1.2.3.4.5/", InvalidWebhookURL, None),
    ("http://256.256.256.256/", InvalidWebhookURL, None),
    ("http://0x7g.1/", InvalidWebhookURL, None),
    ("http://08.0.0.1/", InvalidWebhookURL, None),
    ("http://%31%32%37.0.0.1/", InvalidWebhookURL, None),
    ("http://example..com/", InvalidWebhookURL, None),
    ("http://-example.com/", InvalidWebhookURL, None),
    ("http://exa\uff03mple.com/", InvalidWebhookURL, None),
    ("http://\u2603.example/", InvalidWebhookURL, None),  # a snowman is not IDNA 2008
    # Loopback, in every spelling.
    ("http://127.0.0.1/", AddressRefused, "loopback"),
    ("https://127.0.0.1:8443/hook", AddressRefused, "loopback"),
    ("HTTP://127.0.0.1/", AddressRefused, "loopback"),
    ("http://127.1/", AddressRefused, "loopback"),
    ("http://127.0.1/", AddressRefused, "loopback"),
    ("http://127.0.0.1./", AddressRefused, "loopback"),
    ("http://2130706433/", AddressRefused, "loopback"),
    ("http://0x7f.1/", AddressRefused, "loopback"),
    ("http://0X7F000001/", AddressRefused, "loopback"),
    ("http://0177.0.0.1/", AddressRefused, "loopback"),
    ("http://0177.1/", AddressRefused, "loopback"),
    ("http://017700000001/", AddressRefused, "loopback"),
    ("http://127.255.255.254/", AddressRefused, "loopback"),
    ("http://１２７.０.０.１/", AddressRefused, "loopback"),  # full-width digits
    ("http://127。0。0。1/", AddressRefused, "loopback"),  # ideographic full stops
    ("http://[::1]/", AddressRefused, "loopback"),
    ("http://[::1]:8080/", AddressRefused, "loopback"),
    ("http://[0:0:0:0:0:0:0:1]/", AddressRefused, "loopback"),
    # IPv6 that embeds a forbidden IPv4 address.
    ("http://[::ffff:127.0.0.1]/", AddressRefused, "IPv4-mapped loopback"),
    ("http://[::ffff:7f00:1]/", AddressRefused, "IPv4-mapped loopback"),
    ("http://[::ffff:169.254.169.254]/", AddressRefused, "IPv4-mapped link-local"),
    ("http://[::127.0.0.1]/", AddressRefused, "IPv4-compatible loopback"),
    ("http://[64:ff9b::a00:1]/", AddressRefused, "NAT64 private"),
    ("http://[64:ff9b::127.0.0.1]/", AddressRefused, "NAT64 loopback"),
    ("http://[64:ff9b:1::a00:1]/", AddressRefused, "NAT64 private"),
    ("http://[2002:c0a8:101::]/", AddressRefused, "6to4 private"),
    ("http://[2002:7f00:1::1]/", AddressRefused, "6to4 loopback"),
    ("http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/", AddressRefused, "Teredo loopback"),
    # Private, shared and link-local networks, cloud metadata.
    ("http://10.0.0.1/", AddressRefused, "private"),
    ("http://10.0.0.1./", AddressRefused, "private"),
    ("http://10.1/", AddressRefused, "private"),
    ("http://172.16.0.1/", AddressRefused, "private"),
    ("http://172.31.255.255/", AddressRefused, "private"),
    ("http://192.168.1.1/", AddressRefused, "private"),
    ("http://0xc0.0xa8.1.1/", AddressRefused, "private"),
    ("http://169.254.169.254/latest/meta-data", AddressRefused, "link-local"),
    ("http://[fd00:ec2::254]/latest/meta-data", AddressRefused, "unique local"),
    ("http://[fc00::1]/", AddressRefused, "unique local"),
    ("http://[fe80::1]/", AddressRefused, "link-local"),
    ("http://[fe80::1%25eth0]/", AddressRefused, "link-local"),
    ("http://[fec0::1]/", AddressRefused, "site-local"),
    ("http://100.64.0.1/", AddressRefused, "carrier-grade NAT"),
    # Unspecified, multicast, broadcast, reserved, documentation, benchmarking.
    ("http://0.0.0.0/", AddressRefused, "unspecified"),
    ("http://0.0.0.0:8000/", AddressRefused, "unspecified"),
    ("http://0/", AddressRefused, "unspecified"),
    ("http://0.1.2.3/", AddressRefused, "unspecified"),
    ("http://[::]/", AddressRefused, "unspecified"),
    ("http://224.0.0.1/", AddressRefused, "multicast"),
    ("http://239.255.255.250/", AddressRefused, "multicast"),
    ("http://[ff02::1]/", AddressRefused, "multicast"),
    ("http://255.255.255.255/", AddressRefused, "broadcast"),
    ("http://4294967295/", AddressRefused, "broadcast"),
    ("http://240.0.0.1/", AddressRefused, "reserved"),
    ("http://192.0.0.8/", AddressRefused, "reserved"),
    ("http://[100::1]/", AddressRefused, "discard-only"),
    ("http://192.0.2.1/", AddressRefused, "documentation"),
    ("http://198.51.100.7/", AddressRefused, "documentation"),
    ("http://203.0.113.9/", AddressRefused, "documentation"),
    ("http://[2001:db8::1]/", AddressRefused, "documentation"),
    ("http://198.18.0.1/", AddressRefused, "benchmarking"),
    # Names that only ever mean this machine or its local network.
    ("http://localhost/", AddressRefused, "local name"),
    ("http://localhost:8000/hook", AddressRefused, "local name"),
    ("http://LOCALHOST./", AddressRefused, "local name"),
    ("http://foo.localhost/", AddressRefused, "local name"),
    ("http://a.b.localhost./", AddressRefused, "local name"),
    ("http://ＬＯＣＡＬＨＯＳＴ/", AddressRefused, "local name"),  # full-width letters
    ("http://localhost.localdomain/", AddressRefused, "local name"),
    ("http://ip6-localhost/", AddressRefused, "local name"),
    ("http://printer.local/", AddressRefused, "local name"),
    ("http://metadata.google.internal/computeMetadata/v1/", AddressRefused, "local name"),
    ("http://router.home.arpa/", AddressRefused, "local name"),
]

LEGITIMATE_URLS = [
    "https://example.com/hook",
    "https://partner.example.org:8443/x?y=1",
    "http://93.184.216.34/",
    "https://bücher.example/",
    "https://xn--bcher-kva.example/",
    "http://[2606:4700::1111]/",
    "http://[2001:4860:4860::8888]:443/webhooks",
    "http://8.8.8.8:8080/hook",
    "HTTPS://Example.COM/Hook",
    "https://example.com",
    "https://example.com./hook",
    "https://hooks.partner-site.example.net/v1/springhook?source=springhook",
    "https://my_service.example.com/",
    "https://example.com/ünïcode/path?q=a%20b",
    "https://example.com:1/",
    "https://example.com:65535/",
    "http://1.1.1.1/",
    "http://[64:ff9b::5db8:d822]/",  # NAT64 of a public address: how IPv6-only hosts reach it
    LONG_PATH_URL,
]


@pytest.mark.parametrize(("url", "error_class", "reason"), HOSTILE_URLS)
def test_url_validate_refuses_hostile_url(url, error_class, reason):
    with pytest.raises(ValueError) as caught:
        url_validate(url, allow_private=False)

    assert type(caught.value) is error_class, str(caught.value)
    if reason is not None:
        assert caught.value.reason == reason


def test_hostile_table_is_large_and_has_no_duplicates():
    urls = [url for url, _error_class, _reason in HOSTILE_URLS]
    assert len(urls) >= 50
    assert len(set(urls)) == len(urls)


@pytest.mark.parametrize("url", LEGITIMATE_URLS)
def test_url_validate_accepts_legitimate_url(url):
    assert url_validate(url, allow_private=False) is None


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/",
        "http://localhost/",
        "http://localhost:8000/hooks",
        "http://[::1]:8000/",
        "http://10.0.0.5/",
        "http://0x7f.1/",
        "http://printer.local/",
    ],
)
def test_url_validate_allow_private_accepts_local_targets(url):
    assert url_validate(url, allow_private=True) is None


@pytest.mark.parametrize(
    "url",
    ["ftp://localhost/", "http://user:pw@localhost/", "http://127.0.0.1:0/", "http://1.2.3.4.5/"],
)
def test_url_validate_allow_private_still_refuses_malformed_urls(url):
    with pytest.raises(InvalidWebhookURL):
        url_validate(url, allow_private=True)


def test_refusal_message_names_the_host_and_the_address():
    with pytest.raises(AddressRefused) as caught:
        url_validate("http://127.1/", allow_private=False)

    assert str(caught.value) == "webhook host '127.1' is a loopback address (127.0.0.1)"
    assert caught.value.host == "127.1"
    assert caught.value.address == "127.0.0.1"


def test_refusal_messages_read_as_sentences():
    # How the address itself is printed is ipaddress's business (Python 3.13 changed the
    # IPv4-mapped form), so only the sentence around it is pinned here.
    with pytest.raises(
        AddressRefused,
        match=r"^webhook host '\[::ffff:127\.0\.0\.1\]' is an IPv4-mapped loopback address \(",
    ):
        url_validate("http://[::ffff:127.0.0.1]/", allow_private=False)

    with pytest.raises(AddressRefused, match=r"is a NAT64 private address \(64:ff9b::a00:1\)$"):
        url_validate("http://[64:ff9b::a00:1]/", allow_private=False)

    with pytest.raises(AddressRefused, match=r"^webhook host 'foo\.localhost' is a loopback name"):
        url_validate("http://foo.localhost/", allow_private=False)

    with pytest.raises(InvalidWebhookURL, match="2001 characters"):
        url_validate(LONG_PATH_URL + "a", allow_private=False)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://user:pw@example.com/", "must not contain a user name or password"),
        ("http://example.com@127.0.0.1/", "must not contain a user name or password"),
        ("ftp://example.com/", "must start with http:// or https:// (it has 'ftp:')"),
        ("http:///path", "has no host"),
        ("http://example.com:99999/", "port 99999 is not between 1 and 65535"),
        ("http://exa mple.com/", "whitespace or an invisible character (U+0020) at position 10"),
        ("http://1.2.3.4.5/", "looks like an IPv4 address but is not a valid one"),
        ("http://bad_-.example/", "is not a valid host name"),
    ],
)
def test_invalid_url_message_says_what_is_wrong(url, message):
    with pytest.raises(InvalidWebhookURL) as caught:
        url_validate(url, allow_private=False)

    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("spelling", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0x7F.0x0.0x0.0x1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("00000177.0.0.01", "127.0.0.1"),
        ("10.0.0.1.", "10.0.0.1"),
        ("1.256", "1.0.1.0"),
        ("0", "0.0.0.0"),
        ("0x", "0.0.0.0"),
        ("4294967295", "255.255.255.255"),
        ("::1", "::1"),
        ("[::1]", "::1"),
        ("[::ffff:127.0.0.1]", "::ffff:7f00:1"),
        ("fe80::1%eth0", "fe80::1%eth0"),
        ("[fe80::1%25eth0]", "fe80::1%eth0"),
        ("4294967296", None),
        ("256.0.0.1", None),
        ("1.2.3.4.5", None),
        ("08.0.0.1", None),
        ("0x1g.0.0.1", None),
        ("1..2", None),
        ("", None),
        (".", None),
        ("+1.2.3.4", None),
        (" 127.0.0.1", None),
        ("127.0.0.1 evil", None),
        ("١٢٧.0.0.1", None),  # Arabic-Indic digits are digits to str.isdigit, not to us
        ("example.com", None),
        ("[example.com]", None),
        ("[::ffff:127.1]", None),
        ("fe80::1%", None),
    ],
)
def test_parse_ip_literal(spelling, expected):
    parsed = parse_ip_literal(spelling)

    assert parsed == (None if expected is None else ipaddress.ip_address(expected))
    if parsed is not None:
        assert str(parsed) == str(ipaddress.ip_address(expected))  # the zone id is kept


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("8.8.8.8", None),
        ("93.184.216.34", None),
        ("1.0.1.0", None),
        ("172.32.0.1", None),
        ("100.128.0.1", None),
        ("127.0.0.1", "loopback"),
        ("10.255.255.255", "private"),
        ("192.168.0.1", "private"),
        ("169.254.1.1", "link-local"),
        ("100.127.255.255", "carrier-grade NAT"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.251", "multicast"),
        ("255.255.255.255", "broadcast"),
        ("250.1.2.3", "reserved"),
        ("192.88.99.1", "reserved"),
        ("198.19.255.255", "benchmarking"),
        ("2606:4700::1111", None),
        ("2001:4860:4860::8888", None),
        ("::ffff:93.184.216.34", None),
        ("64:ff9b::5db8:d822", None),
        ("2002:5db8:d822::1", None),
        ("2001:0:4136:e378:8000:63bf:a247:2dcb", None),
        ("::", "unspecified"),
        ("::1", "loopback"),
        ("::ffff:10.1.2.3", "IPv4-mapped private"),
        ("::ffff:0.0.0.0", "IPv4-mapped unspecified"),
        ("::10.1.2.3", "IPv4-compatible private"),
        ("::93.184.216.34", "reserved"),
        ("64:ff9b::c0a8:101", "NAT64 private"),
        ("64:ff9b:1:7f00:1::", "NAT64 loopback"),
        ("64:ff9b:1::5db8:d822", "local-use NAT64"),
        ("2002:a9fe:a9fe::", "6to4 link-local"),
        ("2001:0:a00:1:8000:63bf:a247:2dcb", "Teredo private"),
        ("fd12:3456::1", "unique local"),
        ("fe80::1", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("fec0::1", "site-local"),
        ("ff05::1:3", "multicast"),
        ("100::dead", "discard-only"),
        ("2001:2::1", "benchmarking"),
        ("2001:db8:85a3::8a2e:370:7334", "documentation"),
        ("3fff::1", "documentation"),
        ("2001:10::1", "reserved"),
        ("4000::1", "reserved"),
        ("5f00::1", "reserved"),
    ],
)
def test_address_is_forbidden(address, reason):
    assert address_is_forbidden(ipaddress.ip_address(address)) == reason


def fake_resolver(*addresses: str, calls: list | None = None):
    """A getaddrinfo stand-in answering with ``addresses``, as a real one would."""

    def resolve(host, port, family=0, type=0, proto=0, flags=0):
        if calls is not None:
            calls.append((host, port, family, type))
        answers = []
        for address in addresses:
            if ":" in address:
                answers.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0)))
            else:
                answers.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)))
        return answers

    return resolve


def resolver_that_must_not_be_called(*args, **kwargs):
    raise AssertionError("an IP literal must not be looked up in DNS")


def test_host_resolve_returns_public_addresses_in_order_without_duplicates():
    calls = []
    resolver = fake_resolver(
        "93.184.216.34", "2606:2800:220:1::1", "93.184.216.35", "93.184.216.34", calls=calls
    )

    addresses = host_resolve("partner.example", 443, allow_private=False, resolver=resolver)

    assert addresses == ["93.184.216.34", "2606:2800:220:1::1", "93.184.216.35"]
    assert calls == [("partner.example", 443, socket.AF_UNSPEC, socket.SOCK_STREAM)]


def test_host_resolve_refuses_when_any_answer_is_private():
    # A rebinding name answers with one public and one internal address; connecting to
    # "the first good one" would still let the client library try the other.
    resolver = fake_resolver("93.184.216.34", "10.0.0.7", "2606:2800:220:1::1")

    with pytest.raises(AddressRefused) as caught:
        host_resolve("rebind.example", 443, allow_private=False, resolver=resolver)

    assert type(caught.value) is AddressRefused
    assert caught.value.address == "10.0.0.7"
    assert caught.value.reason == "private"
    # Staff and partners read this message: it says what is wrong, not where our
    # network is.
    assert str(caught.value) == "webhook host 'rebind.example' resolves to a private address"
    assert "10.0.0.7" not in str(caught.value)


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "IPv4-mapped loopback"),
        ("169.254.169.254", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("0.0.0.0", "unspecified"),
    ],
)
def test_host_resolve_refuses_each_forbidden_answer(answer, reason):
    resolver = fake_resolver("93.184.216.34", answer)

    with pytest.raises(AddressRefused) as caught:
        host_resolve("partner.example", 80, allow_private=False, resolver=resolver)

    assert caught.value.reason == reason
    assert caught.value.address == str(ipaddress.ip_address(answer))
    assert "resolves to a private address" in str(caught.value)
    assert answer.split("%")[0] not in str(caught.value)


def test_host_resolve_allow_private_returns_private_answers():
    resolver = fake_resolver("127.0.0.1", "::1")

    assert host_resolve("dev.example", 8000, allow_private=True, resolver=resolver) == [
        "127.0.0.1",
        "::1",
    ]


def test_host_resolve_unresolvable_name_is_a_distinct_refusal():
    def failing_resolver(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(HostUnresolvable) as caught:
        host_resolve("nowhere.example", 443, allow_private=False, resolver=failing_resolver)

    assert isinstance(caught.value, AddressRefused)
    assert "nowhere.example" in str(caught.value)
    assert caught.value.address is None


def test_host_resolve_empty_answer_is_unresolvable():
    with pytest.raises(HostUnresolvable):
        host_resolve("empty.example", 443, allow_private=False, resolver=fake_resolver())


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("93.184.216.34", ["93.184.216.34"]),
        ("1572395042", ["93.184.216.34"]),
        ("[2606:4700::1111]", ["2606:4700::1111"]),
        ("2606:4700::1111", ["2606:4700::1111"]),
    ],
)
def test_host_resolve_normalises_ip_literals_without_dns(host, expected):
    resolver = resolver_that_must_not_be_called

    assert host_resolve(host, 443, allow_private=False, resolver=resolver) == expected


@pytest.mark.parametrize("host", ["0x7f.1", "127.1", "[::ffff:7f00:1]", "１２７.０.０.１", "0"])
def test_host_resolve_refuses_ip_literals_without_dns(host):
    with pytest.raises(AddressRefused) as caught:
        host_resolve(host, 80, allow_private=False, resolver=resolver_that_must_not_be_called)

    assert type(caught.value) is AddressRefused


def test_host_resolve_idna_encodes_names_before_lookup():
    calls = []
    resolver = fake_resolver("93.184.216.34", calls=calls)

    host_resolve("bücher.example", 443, allow_private=False, resolver=resolver)

    assert calls[0][0] == "xn--bcher-kva.example"


def test_host_resolve_name_that_is_not_idna_is_unresolvable():
    with pytest.raises(HostUnresolvable, match="cannot be looked up"):
        host_resolve("\u2603.example", 443, allow_private=False, resolver=fake_resolver("8.8.8.8"))


@pytest.mark.parametrize("port", [0, 65536, -1])
def test_host_resolve_refuses_impossible_ports(port):
    with pytest.raises(InvalidWebhookURL):
        host_resolve("example.com", port, allow_private=False, resolver=fake_resolver("8.8.8.8"))


def test_host_resolve_real_resolver_refuses_localhost():
    # The real getaddrinfo, reading /etc/hosts: localhost must be refused for its address,
    # not mistaken for a DNS failure.
    with pytest.raises(AddressRefused) as caught:
        host_resolve("localhost", 80, allow_private=False)

    assert type(caught.value) is AddressRefused
    assert caught.value.reason == "loopback"


def test_host_resolve_real_resolver_allow_private_returns_loopback():
    addresses = host_resolve("localhost", 80, allow_private=True)

    assert addresses
    assert all(ipaddress.ip_address(address).is_loopback for address in addresses)
