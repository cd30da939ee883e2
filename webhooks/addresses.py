"""The address guard: which webhook URLs and addresses Springhook may send to.

A webhook URL is typed by staff, but the request is made by our own servers, from inside
our network. Without a guard, a webhook pointed at ``http://169.254.169.254/`` or
``http://127.1:6379/`` turns the dispatcher into a proxy into that network (SSRF). So
loopback, private, link-local, multicast, unspecified and reserved targets are refused, in
every spelling, when the webhook is saved (:func:`url_validate`) and again at every send
(:func:`host_resolve`), because a name that resolved to a public address at save time
can resolve to ``127.0.0.1`` a minute later (DNS rebinding).

This module is pure Python on purpose (no Django import): the model's validator, the
admin form and the HTTP sender all call it, and it is tested without a database.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import unicodedata
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

try:
    import idna
except ImportError:  # pragma: no cover - requests depends on idna, so it is always there
    idna = None

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[..., Sequence[tuple[Any, ...]]]

ALLOWED_SCHEMES = frozenset({"http", "https"})
MAX_URL_LENGTH = 2000


class InvalidWebhookURL(ValueError):
    """The URL is malformed or uses something a webhook URL may not (scheme, credentials…)."""


class AddressRefused(ValueError):
    """The URL is well formed, but its host is, or resolves to, a forbidden address.

    ``host`` is the host as given, ``address`` the offending address (``None`` when a
    name alone was refused) and ``reason`` the short reason, e.g. ``"loopback"``.
    """

    def __init__(
        self, message: str, *, host: str, address: str | None = None, reason: str = ""
    ) -> None:
        super().__init__(message)
        self.host = host
        self.address = address
        self.reason = reason


class HostUnresolvable(AddressRefused):
    """The host name does not resolve, so there is no address to send to (a DNS error)."""


# --- Forbidden address ranges -------------------------------------------------------------
#
# Built from the IANA IPv4 and IPv6 Special-Purpose Address Registries. The first matching
# network wins, so specific entries come before the ranges that contain them. A reason of
# None marks a range whose own addresses are fine but whose embedded IPv4 address has
# already been checked by address_is_forbidden (the transition mechanisms).

_Rule = tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str | None]

_IPV4_RULES: tuple[_Rule, ...] = tuple(
    (ipaddress.IPv4Network(network), reason)
    for network, reason in (
        # Linux routes all of 0.0.0.0/8 to this host, not only 0.0.0.0 itself.
        ("0.0.0.0/8", "unspecified"),
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "carrier-grade NAT"),
        ("127.0.0.0/8", "loopback"),
        # 169.254.169.254 is the cloud metadata service: the classic SSRF prize.
        ("169.254.0.0/16", "link-local"),
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "reserved"),
        ("192.0.2.0/24", "documentation"),
        ("192.88.99.0/24", "reserved"),  # the retired 6to4 relay anycast (RFC 7526)
        ("192.168.0.0/16", "private"),
        ("198.18.0.0/15", "benchmarking"),
        ("198.51.100.0/24", "documentation"),
        ("203.0.113.0/24", "documentation"),
        ("224.0.0.0/4", "multicast"),
        ("255.255.255.255/32", "broadcast"),
        ("240.0.0.0/4", "reserved"),
    )
)

_IPV6_RULES: tuple[_Rule, ...] = tuple(
    (ipaddress.IPv6Network(network), reason)
    for network, reason in (
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("::ffff:0:0/96", None),  # IPv4-mapped: the embedded IPv4 address decides
        ("64:ff9b::/96", None),  # NAT64 well-known prefix: the embedded IPv4 address decides
        # Local-use NAT64 (RFC 8215) is defined by each network for itself, like a private
        # range, and the IANA registry lists it as not globally reachable.
        ("64:ff9b:1::/48", "local-use NAT64"),
        ("100::/64", "discard-only"),
        ("2001::/32", None),  # Teredo: the embedded IPv4 addresses decide
        ("2001:2::/48", "benchmarking"),
        ("2001:db8::/32", "documentation"),
        ("2001::/23", "reserved"),  # IETF protocol assignments
        ("2002::/16", None),  # 6to4: the embedded IPv4 address decides
        ("3fff::/20", "documentation"),
        ("2000::/3", None),  # global unicast: the public IPv6 internet
        ("5f00::/16", "reserved"),  # SRv6 segment identifiers
        ("fc00::/7", "unique local"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local"),
        ("ff00::/8", "multicast"),
        # Only 2000::/3 is allocated for global unicast; everything else is unassigned
        # or reserved (including the deprecated IPv4-compatible ::/96).
        ("::/0", "reserved"),
    )
)

_IPV4_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL_USE = ipaddress.IPv6Network("64:ff9b:1::/48")
_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")
_TEREDO = ipaddress.IPv6Network("2001::/32")

# Names that only ever point at this machine or its local network, whatever DNS says.
# Refusing them at save time gives staff a clear message instead of a failure at send time.
_LOCAL_NAMES = {
    "ip6-localhost": "a loopback name (from /etc/hosts, it always means this machine)",
    "ip6-loopback": "a loopback name (from /etc/hosts, it always means this machine)",
}
_LOCAL_SUFFIXES = (
    ("localhost", "a loopback name (localhost and *.localhost always mean this machine)"),
    ("localdomain", "a local-only name (.localdomain comes from /etc/hosts, not public DNS)"),
    ("local", "a multicast DNS name (.local only exists on the local network)"),
    ("internal", "a private-network name (.internal is reserved for private use)"),
    ("home.arpa", "a home-network name (.home.arpa is for home networks only)"),
)

# A DNS label: letters, digits and hyphens, 1 to 63 of them, not starting or ending with a
# hyphen. The underscore is not valid in host names but appears in real ones (service
# records, some cloud hosts) and resolvers accept it, so it is allowed.
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
# An IPv4 part as inet_aton and the WHATWG URL standard read it: hex, octal or decimal.
_IPV4_PART = re.compile(r"0[xX][0-9a-fA-F]*|0[0-7]*|[1-9][0-9]*")
# What the WHATWG URL standard calls "ends in a number": such a host is an IPv4 address to
# a browser, never a name, so if it is not a valid address it is not a valid host at all.
_NUMERIC_LABEL = re.compile(r"[0-9]+|0[xX][0-9a-fA-F]*")
_ZONE_ID = re.compile(r"[A-Za-z0-9._~-]+")
_PORT = re.compile(r"[0-9]{1,5}")


# --- Public API ---------------------------------------------------------------------------


def url_validate(url: str, *, allow_private: bool) -> None:
    """Check a webhook URL as typed by staff, without any DNS query.

    Guarantees on return: the scheme is ``http`` or ``https``; the URL is at most
    ``MAX_URL_LENGTH`` characters without whitespace, control or invisible format
    characters, backslashes or a fragment (``#``); it has a host and no
    ``user:password@``; an explicit port is 1–65535; the host is a valid IP literal or a
    valid (IDNA-encodable) host name. Unless ``allow_private``, an IP literal in any
    spelling is not a forbidden address (see :func:`address_is_forbidden`) and the name is
    not a local-only one (``localhost``, ``*.localhost``, ``*.local``, …).

    A host name that is not forbidden here may still resolve to a forbidden address: the
    sender must call :func:`host_resolve` before every connection.

    Raises :class:`InvalidWebhookURL` for a malformed URL and :class:`AddressRefused` for a
    forbidden target.
    """
    if not isinstance(url, str):
        raise InvalidWebhookURL(f"webhook URL must be text, not {type(url).__name__}")
    if not url:
        raise InvalidWebhookURL("webhook URL is empty")
    if len(url) > MAX_URL_LENGTH:
        raise InvalidWebhookURL(
            f"webhook URL is {len(url)} characters long; at most {MAX_URL_LENGTH} are allowed"
        )
    # Checked before parsing because urlsplit silently deletes tabs and newlines, and an
    # invisible character (a soft hyphen, a zero-width space) can make a URL read as one
    # host and be sent to another: IDNA mapping drops them, so "lo\xadcalhost" is localhost.
    for position, character in enumerate(url):
        if character.isspace() or unicodedata.category(character) in _INVISIBLE_CATEGORIES:
            raise InvalidWebhookURL(
                f"webhook URL contains whitespace or an invisible character "
                f"(U+{ord(character):04X}) at position {position}"
            )
    # Browsers read a backslash as a slash in http(s) URLs and Python does not, so the two
    # would disagree on where the host ends.
    if "\\" in url:
        raise InvalidWebhookURL("webhook URL contains a backslash")
    # A fragment is never sent in a request: the partner would not get what staff typed,
    # and a "#" can hide where the host ends from a reader ("https://evil#@trusted/").
    if "#" in url:
        raise InvalidWebhookURL(
            "webhook URL must not contain a fragment (#…): it is never sent to the partner"
        )
    try:
        parts = urlsplit(url)
    except ValueError as error:  # unbalanced brackets, NFKC tricks in the host
        raise InvalidWebhookURL(f"webhook URL cannot be parsed: {error}") from error

    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        shown = f"'{scheme}:'" if scheme else "no scheme"
        raise InvalidWebhookURL(f"webhook URL must start with http:// or https:// (it has {shown})")
    if not parts.netloc:
        raise InvalidWebhookURL("webhook URL has no host")
    if "@" in parts.netloc:
        # Credentials in a URL end up in logs and admin lists; partners authenticate the
        # sender by the signature instead. Also "http://trusted@evil/" misleads the reader.
        raise InvalidWebhookURL(
            "webhook URL must not contain a user name or password (user:password@host)"
        )
    host, port = _host_port_split(parts.netloc)
    if port is not None and not 1 <= port <= 65535:
        raise InvalidWebhookURL(f"webhook URL port {port} is not between 1 and 65535")
    _host_check(host, allow_private=allow_private)


def address_is_forbidden(ip: IPAddress) -> str | None:
    """Return why ``ip`` must not be sent to, or ``None`` when it is a public address.

    The reason is a short phrase such as ``"loopback"``, ``"private"``, ``"link-local"``,
    ``"carrier-grade NAT"``, ``"multicast"``, ``"unspecified"``, ``"reserved"``,
    ``"documentation"``, ``"benchmarking"``, ``"broadcast"``, ``"unique local"``. For an
    IPv6 address that embeds an IPv4 address (IPv4-mapped, IPv4-compatible, NAT64, 6to4,
    Teredo) the embedded address is checked too, and its reason is prefixed with the
    mechanism, e.g. ``"IPv4-mapped loopback"`` or ``"6to4 private"``: a dual-stack socket or
    a translator would deliver the packet to that IPv4 address.
    """
    if isinstance(ip, ipaddress.IPv4Address):
        return _first_match(ip, _IPV4_RULES)
    # The zone id (fe80::1%eth0) says which interface, not which address.
    ip = ipaddress.IPv6Address(int(ip))
    for mechanism, embedded in _embedded_ipv4(ip):
        reason = _first_match(embedded, _IPV4_RULES)
        if reason is not None:
            return f"{mechanism} {reason}"
    return _first_match(ip, _IPV6_RULES)


def host_resolve(
    host: str, port: int, *, allow_private: bool, resolver: Resolver = socket.getaddrinfo
) -> list[str]:
    """Resolve ``host`` once and return the addresses the sender may connect to.

    Guarantees on return: a non-empty list of distinct IP address strings, in the
    resolver's order, every one of them checked (unless ``allow_private``). The caller
    must connect only to these addresses, never resolve the name again, so that a DNS
    answer cannot change between the check and the connection (DNS rebinding).

    ``host`` is a host name, an IPv4 address in any inet_aton spelling or an IPv6 address
    with or without brackets and zone id; an IP literal is normalised without any DNS
    query. Non-ASCII names are IDNA-encoded as the HTTP client would encode them.

    Raises :class:`AddressRefused` if any returned address is forbidden (one bad answer
    among good ones is exactly what a rebinding attack looks like), and
    :class:`HostUnresolvable` (a subclass) if the name cannot be resolved.
    """
    if not host:
        raise InvalidWebhookURL("webhook host is empty")
    if not isinstance(port, int) or not 1 <= port <= 65535:
        raise InvalidWebhookURL(f"webhook port {port!r} is not between 1 and 65535")
    ip = parse_ip_literal(host)
    if ip is None and not host.isascii():
        # Full-width digits ("１２７.０.０.１") become an IPv4 address after IDNA mapping.
        try:
            ascii_host = _idna_encode(host)
        except InvalidWebhookURL as error:
            raise HostUnresolvable(f"{error}, so it cannot be looked up", host=host) from error
        ip = parse_ip_literal(ascii_host)
    else:
        ascii_host = host
    if ip is not None:
        _address_check(host, ip, allow_private=allow_private)
        return [str(ip)]

    try:
        answers = resolver(ascii_host, port, socket.AF_UNSPEC, socket.SOCK_STREAM)
    except (OSError, UnicodeError, ValueError) as error:
        raise HostUnresolvable(
            f"webhook host {host!r} does not resolve: {error}", host=host
        ) from error
    addresses: list[str] = []
    for family, _type, _proto, _canonname, sockaddr in answers:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        address = ipaddress.ip_address(sockaddr[0])
        _address_check(host, address, allow_private=allow_private, resolved=True)
        if str(address) not in addresses:
            addresses.append(str(address))
    if not addresses:
        raise HostUnresolvable(f"webhook host {host!r} resolves to no IP address", host=host)
    return addresses


def host_ascii(host: str) -> str:
    """The host as it goes on the wire (the Host header, TLS server name): ASCII, lower
    case; a non-ASCII name IDNA-encoded as :func:`host_resolve` looks it up.

    Raises :class:`InvalidWebhookURL` for a name that has no IDNA encoding.
    """
    return host.lower() if host.isascii() else _idna_encode(host)


def parse_ip_literal(host: str) -> IPAddress | None:
    """Return the IP address that ``host`` spells, or ``None`` if it is not an IP literal.

    IPv4 is read as inet_aton and browsers (the WHATWG URL standard) read it: 1 to 4 parts
    separated by dots, each decimal, octal with a leading ``0`` or hex with ``0x``, the last
    part filling the remaining bytes (``127.1``, ``0x7f.1``, ``2130706433``, ``0177.0.0.1``),
    with one optional trailing dot. IPv6 is accepted with or without brackets and with a
    zone id (``fe80::1%eth0``, or ``[fe80::1%25eth0]`` as RFC 6874 writes it in a URL); the
    zone is kept on the returned address.

    This is written out rather than calling ``socket.inet_aton`` because inet_aton is the
    C library's and differs between platforms: glibc accepts trailing garbage after a space
    ("127.1 evil"), others refuse short or octal forms. The guard's verdict must not depend
    on which machine runs it, and it must know every spelling a resolver or a browser would
    still turn into an address.
    """
    if host.startswith("[") and host.endswith("]"):
        return _ipv6_parse(host[1:-1], bracketed=True)
    if ":" in host:
        return _ipv6_parse(host, bracketed=False)
    return _ipv4_parse(host)


# --- Helpers ------------------------------------------------------------------------------

# Whitespace is caught by str.isspace; these are control (Cc), format (Cf: soft hyphen,
# zero-width and bidi characters), line/paragraph separators, surrogates and private use.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Zs", "Cs", "Co"})
_ARTICLE_AN = ("unspecified", "IPv4")


def _ipv4_parse(text: str) -> ipaddress.IPv4Address | None:
    # One trailing dot is the root of the DNS tree ("10.0.0.1." is a fully qualified
    # spelling of 10.0.0.1); browsers drop it the same way.
    if text.endswith("."):
        text = text[:-1]
    parts = text.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    values: list[int] = []
    for part in parts:
        if not _IPV4_PART.fullmatch(part):
            return None
        if part[:2] in ("0x", "0X"):
            values.append(int(part[2:] or "0", 16))
        elif part.startswith("0"):
            values.append(int(part, 8))
        else:
            values.append(int(part))
    # Every part but the last is one byte; the last fills the remaining bytes, so "127.1"
    # is 127.0.0.1 and "2130706433" is the whole address.
    *leading, last = values
    if any(value > 0xFF for value in leading) or last >= 256 ** (5 - len(values)):
        return None
    number = last
    for index, value in enumerate(leading):
        number += value << (8 * (3 - index))
    return ipaddress.IPv4Address(number)


def _ipv6_parse(text: str, *, bracketed: bool) -> ipaddress.IPv6Address | None:
    address, separator, zone = text.partition("%")
    if separator:
        if bracketed and zone.startswith("25"):
            zone = unquote(zone[2:])  # RFC 6874: "%25" is the escaped "%" in a URL
        if not _ZONE_ID.fullmatch(zone):
            return None
    try:
        # ipaddress is strict and the same everywhere: no octal or short IPv4 tails
        # ("::ffff:127.1"), which is what inet_pton accepts too.
        ip = ipaddress.IPv6Address(address)
    except ValueError:
        return None
    return ipaddress.IPv6Address(f"{ip}%{zone}") if separator else ip


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[tuple[str, ipaddress.IPv4Address]]:
    """Every IPv4 address that ``ip`` may deliver to, with the mechanism's name."""
    number = int(ip)
    low32 = ipaddress.IPv4Address(number & 0xFFFFFFFF)
    if ip in _IPV4_MAPPED:
        return [("IPv4-mapped", low32)]
    if ip in _IPV4_COMPATIBLE and number > 1:  # :: and ::1 are themselves, not IPv4
        return [("IPv4-compatible", low32)]
    if ip in _NAT64_WELL_KNOWN:
        return [("NAT64", low32)]
    if ip in _NAT64_LOCAL_USE:
        # The translator's prefix length is local knowledge, so check both the /96 layout
        # and the /48 one (IPv4 split around the reserved "u" octet, RFC 6052 §2.2). A
        # layout whose bits are all zero is not the one in use: skipping it avoids calling
        # the address "NAT64 unspecified" (the range is refused as local-use anyway).
        split = ipaddress.IPv4Address(((number >> 64) & 0xFFFF) << 16 | (number >> 40) & 0xFFFF)
        return [("NAT64", embedded) for embedded in (split, low32) if int(embedded)]
    if ip in _SIX_TO_FOUR:
        return [("6to4", ipaddress.IPv4Address((number >> 80) & 0xFFFFFFFF))]
    if ip in _TEREDO:
        # RFC 4380: the server's IPv4 address follows the prefix; the client's, where the
        # packet finally goes, is in the last 32 bits, inverted. Both are checked: a private
        # server in a Teredo address is as much a sign of an attack.
        server = ipaddress.IPv4Address((number >> 64) & 0xFFFFFFFF)
        client = ipaddress.IPv4Address(~number & 0xFFFFFFFF)
        return [("Teredo", client), ("Teredo", server)]
    return []


def _first_match(ip: IPAddress, rules: tuple[_Rule, ...]) -> str | None:
    for network, reason in rules:
        if ip in network:
            return reason
    return None


def _host_port_split(netloc: str) -> tuple[str, int | None]:
    """Split ``host[:port]`` or ``[v6]:port`` without urlsplit's lenient port parsing."""
    if netloc.startswith("["):
        end = netloc.find("]")
        if end == -1:
            raise InvalidWebhookURL("webhook URL has an unclosed '[' in its host")
        host, rest = netloc[: end + 1], netloc[end + 1 :]
        if rest and not rest.startswith(":"):
            raise InvalidWebhookURL(f"webhook URL has {rest!r} after the IPv6 address")
        port_text = rest[1:] if rest else None
    else:
        host, separator, port_text = netloc.partition(":")
        if not separator:
            port_text = None
        elif ":" in port_text:
            raise InvalidWebhookURL(
                "webhook URL has several ':' in its host (an IPv6 address needs [brackets])"
            )
    if not host:
        raise InvalidWebhookURL("webhook URL has no host")
    if port_text is None:
        return host, None
    if not _PORT.fullmatch(port_text):
        raise InvalidWebhookURL(f"webhook URL port {port_text!r} is not a number from 1 to 65535")
    return host, int(port_text)


def _host_check(host: str, *, allow_private: bool) -> None:
    """Check the host part of a URL, brackets included for IPv6."""
    if host.startswith("["):
        ip = parse_ip_literal(host)
        if not isinstance(ip, ipaddress.IPv6Address):
            raise InvalidWebhookURL(f"webhook host {host!r} is not a valid IPv6 address")
        _address_check(host, ip, allow_private=allow_private)
        return

    # The HTTP client (requests) IDNA-encodes non-ASCII hosts with UTS 46 mapping before it
    # connects, so the guard must judge the same encoded name, or "１２７.０.０.１" would pass
    # here as a name and then connect to 127.0.0.1.
    ascii_host = _idna_encode(host) if not host.isascii() else host.lower()
    ip = parse_ip_literal(ascii_host)
    if ip is not None:
        _address_check(host, ip, allow_private=allow_private)
        return

    name = ascii_host[:-1] if ascii_host.endswith(".") else ascii_host
    labels = name.split(".")
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise InvalidWebhookURL(f"webhook host {host!r} is not a valid host name")
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        raise InvalidWebhookURL(
            f"webhook host {host!r} looks like an IPv4 address but is not a valid one"
        )
    if allow_private:
        return
    why = _LOCAL_NAMES.get(name) or next(
        (text for suffix, text in _LOCAL_SUFFIXES if name == suffix or name.endswith("." + suffix)),
        None,
    )
    if why is not None:
        raise AddressRefused(f"webhook host {host!r} is {why}", host=host, reason="local name")


def _address_check(
    host: str, ip: IPAddress, *, allow_private: bool, resolved: bool = False
) -> None:
    if allow_private:
        return
    reason = address_is_forbidden(ip)
    if reason is None:
        return
    article = "an" if reason.startswith(_ARTICLE_AN) else "a"
    if resolved:
        # Never the address itself: the message reaches staff at save time and partners in
        # their delivery history, and what an internal name resolves to is a map of our
        # network. `address` keeps it for the code that may know it.
        kind = "" if reason == "private" else f" ({reason})"
        message = f"webhook host {host!r} resolves to a private address{kind}"
    else:
        message = f"webhook host {host!r} is {article} {reason} address ({ip})"
    raise AddressRefused(message, host=host, address=str(ip), reason=reason)


def _idna_encode(host: str) -> str:
    """Encode a non-ASCII host name to ASCII the way the HTTP client will (IDNA 2008 + UTS 46)."""
    try:
        if idna is not None:
            return idna.encode(host, uts46=True).decode("ascii").lower()
        return host.encode("idna").decode("ascii").lower()  # pragma: no cover - IDNA 2003
    except (UnicodeError, ValueError) as error:  # idna.IDNAError is a UnicodeError
        raise InvalidWebhookURL(
            f"webhook host {host!r} is not a valid internationalised domain name: {error}"
        ) from error
