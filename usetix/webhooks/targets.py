"""Where a webhook may go: the URL's rules when an endpoint is saved, and the addresses its
name resolves to when a delivery is sent (so a name that resolved to a public address at
save time and to a private one later, DNS rebinding, is refused then). The sender connects
to the very address checked here, never resolving the name a second time."""

from __future__ import annotations

import ipaddress
import re
import socket
from urllib.parse import quote, urlsplit, urlunsplit

from ..core.webhooks import RefusedTarget, refused_address

__all__ = ["RefusedTarget", "Target", "check_url", "resolve"]


def _literal_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


_NON_ASCII = re.compile(r"[^\x00-\x7f]+")


def _as_ascii(url: str) -> str:
    # An IRI as a browser sends it (RFC 3987, 3.1): the host's name IDNA-encoded, the rest's
    # non-ASCII characters percent-encoded as UTF-8, so the request line and the Host header
    # are ASCII (http.client cannot send anything else) and the endpoint routes it as typed.
    parts = urlsplit(url)
    netloc = parts.netloc
    if _NON_ASCII.search(netloc):
        host, colon, port = netloc.rpartition(":") if netloc.rpartition(":")[2].isdigit() else (netloc, "", "")
        try:
            netloc = host.encode("idna").decode("ascii") + colon + port
        except UnicodeError:
            raise RefusedTarget("This host name is not a valid internationalised domain name.") from None
    def encoded(text: str) -> str:
        return _NON_ASCII.sub(lambda found: quote(found.group(), safe=""), text)

    return urlunsplit((parts.scheme, netloc, encoded(parts.path), encoded(parts.query), parts.fragment))


def check_url(url: str, allow_private: bool = False) -> str:
    """The URL as it will be used, or RefusedTarget: ``https`` only (``http`` to a
    loopback address when ``allow_private``: development and tests), no credentials, a
    host, and no address the sender would refuse when the host is a literal address. A
    non-ASCII host is IDNA-encoded and a non-ASCII path or query percent-encoded."""
    if not isinstance(url, str) or not url or len(url) > 2048:
        raise RefusedTarget("A webhook URL is an https URL of at most 2048 characters.")
    if any(ord(character) < 33 or ord(character) == 127 for character in url):
        raise RefusedTarget("A webhook URL has no spaces or control characters.")
    try:
        url = _as_ascii(url)
    except ValueError:  # urlsplit's, on a malformed host
        raise RefusedTarget("This is not a valid URL.") from None
    if len(url) > 2048:
        raise RefusedTarget("A webhook URL is an https URL of at most 2048 characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise RefusedTarget("This is not a valid URL.") from None
    scheme = parts.scheme.lower()
    host = parts.hostname
    if not host:
        raise RefusedTarget("A webhook URL names a host.")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise RefusedTarget("A webhook URL carries no credentials: sign-in details in a URL end up in logs.")
    if parts.fragment:
        raise RefusedTarget("A webhook URL has no #fragment.")
    literal = _literal_address(host)
    if scheme == "http" and allow_private and literal is not None and literal.is_loopback:
        return url
    if scheme != "https":
        raise RefusedTarget("A webhook URL must use https.")
    if port == 0:
        raise RefusedTarget("This is not a valid port.")
    if literal is not None:
        refused_address(literal, allow_private)
    elif not allow_private and (host.rstrip(".").lower() == "localhost"
                                or host.rstrip(".").lower().endswith(".localhost")):
        raise RefusedTarget("A webhook URL may not point at this machine (localhost).")
    return url




class Target:
    """A checked URL's parts, and the address a delivery connects to."""

    def __init__(self, url: str, address: str) -> None:
        parts = urlsplit(url)
        self.https = parts.scheme.lower() == "https"
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if self.https else 80)
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.host_header = parts.netloc.rpartition("@")[2]
        self.address = address


def resolve(url: str, allow_private: bool = False) -> Target:
    """The URL checked again (the rules may have changed since it was saved) and its name
    resolved: RefusedTarget if it does not resolve, or if any address it resolves to is
    refused."""
    url = check_url(url, allow_private)  # an endpoint saved before URLs were made ASCII too
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise RefusedTarget(f"The name {host} does not resolve ({error}).") from None
    addresses = []
    for *_, sockaddr in found:
        address = ipaddress.ip_address(sockaddr[0].split("%", 1)[0])
        refused_address(address, allow_private)
        addresses.append(str(address))
    if not addresses:
        raise RefusedTarget(f"The name {host} does not resolve.")
    return Target(url, addresses[0])
