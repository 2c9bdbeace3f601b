"""Where a webhook may be sent, and sending there only (no server-side request forgery).

A school chooses the URL, so the ledger must not become its way into the
operator's network: the URL is https and its host resolves only to public
addresses. This is checked when the webhook is registered and again on each
send, on the addresses resolved then (a name may be re-pointed after
registration), and the connection goes to the address just checked, not to a
second lookup. Redirects are not followed and only the answer's status line
and headers are read. `allow_private` lifts the address and scheme rules, for
development and tests only.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
from collections.abc import Callable
from typing import Any, NamedTuple
from urllib.parse import urlsplit

TIMEOUT_SECONDS = 5
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]


class TargetRefused(ValueError):
    """The URL may not receive webhooks; the message says why."""


class Target(NamedTuple):
    """A checked URL: its parts and the address to connect to."""

    scheme: str
    host: str
    port: int
    path: str
    address: str


def resolve(host: str, port: int) -> list[str]:
    """Every address the host resolves to now."""
    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in found))


def refusal(address: Address) -> str | None:
    """Why an address is not a public one, or None when it is."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return refusal(address.ipv4_mapped)
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
        ("not globally routable", not address.is_global),
    )
    return next((name for name, hit in checks if hit), None)


def check(url: str, allow_private: bool = False, resolver: Resolver = resolve) -> Target:
    """The target of `url` if webhooks may go there, else `TargetRefused` naming the reason."""
    parts = urlsplit(url)
    allowed = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in allowed or not parts.hostname:
        raise TargetRefused(f"url: expected an https:// URL with a host, got {parts.scheme}://")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise TargetRefused("url: the port is not a number from 0 to 65535") from None
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        addresses = resolver(parts.hostname, port)
    except OSError:
        raise TargetRefused(f"url: the host {parts.hostname} does not resolve") from None
    if not addresses:
        raise TargetRefused(f"url: the host {parts.hostname} does not resolve")
    if not allow_private:
        for raw in addresses:
            reason = refusal(ipaddress.ip_address(raw.split("%")[0]))
            if reason:
                raise TargetRefused(f"url: {parts.hostname} resolves to a {reason} address")
    return Target(parts.scheme, parts.hostname, port, path, addresses[0])


def post(target: Target, body: bytes, headers: dict[str, str]) -> int:
    """POST to the checked address and return the status; a network error is 0 (retried)."""
    connection = _connection(target)
    try:
        connection.request("POST", target.path, body=body, headers=headers)
        return connection.getresponse().status  # the answer's body is never read
    except (OSError, http.client.HTTPException, ValueError):
        return 0
    finally:
        connection.close()


def _connection(target: Target) -> http.client.HTTPConnection:
    """A connection to `target.address` that still names (and for TLS, verifies) the host."""
    kind = http.client.HTTPSConnection if target.scheme == "https" else http.client.HTTPConnection
    connection = kind(target.host, target.port, timeout=TIMEOUT_SECONDS)

    def pinned(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        return socket.create_connection((target.address, address[1]), *args, **kwargs)

    connection._create_connection = pinned  # type: ignore[attr-defined]
    return connection
