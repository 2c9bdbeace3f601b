"""Where a webhook may be sent, and sending there only (no server-side request forgery).

A school chooses the URL, so the ledger must not become its way into the
operator's network: the URL is https and its host resolves only to public
addresses. This is checked when the webhook is registered and again on each
send, on the addresses resolved then (a name may be re-pointed after
registration), and the connection goes to the address just checked, not to a
second lookup. Redirects are not followed and only the answer's status line
and headers are read. `allow_private` lifts the address and scheme rules, for
development and tests only.

A URL is kept in one normal form (`normalise`), the exact target URI the
request goes to, so the RFC 9421 `@target-uri` a receiver rebuilds from the
Host header and request path is the one signed. A receiver cannot hold a
dispatcher: the name lookup and the whole exchange each have a wall-clock
deadline, whatever the receiver trickles. A lookup runs in its own thread, which
a resolver that never answers keeps: lookups in flight are bounded per host, per
school and in all, so a school's stuck names refuse only themselves, and a
lookup refused because all are busy (`LookupBusy`) is no fault of the receiver.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import socket
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any, NamedTuple
from urllib.parse import quote, urlsplit

TIMEOUT_SECONDS = 5  # per socket operation
DEADLINE_SECONDS = 10  # one whole send: connect, request, status line and headers
RESOLVE_SECONDS = 5
DEFAULT_PORTS = {"https": 443, "http": 80}
URI_SAFE = "/%:@!$&'()*+,;=-._~?"  # RFC 3986 characters kept as they are in a path or query
NAT64 = ipaddress.ip_network("64:ff9b::/96")
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]
LOOKUPS = 64  # name lookups in flight in this process, stuck ones included
LOOKUPS_PER_HOST = 2  # a name whose lookups hang holds at most this many threads
LOOKUPS_PER_OWNER = 4  # nor can one school's names hold more


class TargetRefused(ValueError):
    """The URL may not receive webhooks; the message says why."""


class LookupBusy(TargetRefused):
    """Every lookup thread is taken by other names: try again later, not the host's fault."""


class Lookups:
    """Name lookups in flight, each in a daemon thread, counted in all, per host and per owner."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hosts: Counter[str] = Counter()
        self._owners: Counter[str] = Counter()
        self._total = 0

    def run(
        self, resolver: Resolver, host: str, port: int, owner: str, seconds: float
    ) -> list[str]:
        """`resolver`'s answer, or OSError when it takes longer than `seconds` (it has no timeout)."""
        self._take(host, owner)
        done, answer = threading.Event(), dict[str, Any]()

        def lookup() -> None:
            try:
                answer["addresses"] = resolver(host, port)
            except Exception as exc:  # re-raised in the caller's thread
                answer["error"] = exc
            finally:
                self._give(host, owner)
                done.set()

        threading.Thread(target=lookup, name="webhook-dns", daemon=True).start()
        if not done.wait(seconds):
            raise OSError(f"no answer within {seconds} s")
        if "error" in answer:
            raise answer["error"]
        return answer["addresses"]

    def _take(self, host: str, owner: str) -> None:
        """Count one more lookup, or refuse: the stuck host or owner only, anyone when all are busy."""
        with self._lock:
            if self._hosts[host] >= LOOKUPS_PER_HOST:
                raise TargetRefused(
                    f"url: the host {host} does not resolve (earlier lookups still unanswered)"
                )
            if owner and self._owners[owner] >= LOOKUPS_PER_OWNER:
                raise LookupBusy(f"url: too many lookups of {owner}'s hosts unanswered; try later")
            if self._total >= LOOKUPS:
                raise LookupBusy(f"url: the host {host} could not be looked up now; try later")
            self._hosts[host] += 1
            self._owners[owner] += 1
            self._total += 1

    def _give(self, host: str, owner: str) -> None:
        with self._lock:
            self._hosts[host] -= 1
            self._owners[owner] -= 1
            self._total -= 1
            self._hosts += Counter()  # drops the names back at zero
            self._owners += Counter()


_lookups = Lookups()


class Target(NamedTuple):
    """A checked URL: its parts and the address to connect to."""

    scheme: str
    host: str
    port: int
    path: str
    address: str


def normalise(url: str) -> str:
    """The URL as the request to it is addressed: what is stored, sent to and signed.

    Scheme and host lower-case, host in IDNA (ASCII) form, default port dropped,
    empty path as `/`; a fragment or user info is refused (never sent, so never
    signed). Anything that does not parse as such a URL is refused, never raised as is.
    """
    try:
        return _normalise(url)
    except TargetRefused:
        raise
    except ValueError:  # urlsplit, ipaddress, quote: brackets, IPv6 text, lone surrogates
        raise TargetRefused("url: not a valid URL (expected https://host/path)") from None


def _normalise(url: str) -> str:
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        raise TargetRefused(f"url: expected an https:// URL with a host, got {parts.scheme}://")
    if "@" in parts.netloc:
        raise TargetRefused("url: user info (user:password@) is not allowed")
    if parts.fragment or "#" in url:
        raise TargetRefused("url: a fragment (#…) is not allowed")
    try:
        port = parts.port
    except ValueError:
        raise TargetRefused("url: the port is not a number from 0 to 65535") from None
    host = _ascii_host(parts.hostname)
    netloc = host + (f":{port}" if port not in (None, DEFAULT_PORTS[scheme]) else "")
    query = f"?{quote(parts.query, safe=URI_SAFE)}" if parts.query else ""
    return f"{scheme}://{netloc}{quote(parts.path or '/', safe=URI_SAFE)}{query}"


def _ascii_host(hostname: str) -> str:
    """The host in lower-case ASCII (IDNA for names, brackets for IPv6)."""
    if ":" in hostname:
        return f"[{ipaddress.ip_address(hostname.split('%')[0]).compressed}]"
    try:
        return hostname.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise TargetRefused(f"url: the host {hostname!r} is not a valid name") from None


def resolve(host: str, port: int) -> list[str]:
    """Every address the host resolves to now."""
    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in found))


def resolve_within(
    resolver: Resolver, host: str, port: int, seconds: float, owner: str = ""
) -> list[str]:
    """`resolver`'s answer, OSError past `seconds`, TargetRefused when lookups are held up."""
    return _lookups.run(resolver, host, port, owner, seconds)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, Teredo, NAT64, compatible)."""
    if address.ipv4_mapped:
        return address.ipv4_mapped
    if address.sixtofour:
        return address.sixtofour
    if address.teredo:
        return address.teredo[1]
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if int(address) >> 32 == 0 and int(address) > 1:  # IPv4-compatible ::a.b.c.d
        return ipaddress.IPv4Address(int(address))
    return None


def refusal(address: Address) -> str | None:
    """Why an address is not a public one, or None when it is."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None and (reason := refusal(embedded)):
            return reason
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("site-local", getattr(address, "is_site_local", False)),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
        ("not globally routable", not address.is_global),
    )
    return next((name for name, hit in checks if hit), None)


def check(
    url: str, allow_private: bool = False, resolver: Resolver = resolve, owner: str = ""
) -> Target:
    """The target of `url` if webhooks may go there, else `TargetRefused` naming the reason.

    `owner` (the school) bounds the lookups one school can hold at once.
    """
    parts = urlsplit(normalise(url))
    if parts.scheme != "https" and not allow_private:
        raise TargetRefused(f"url: expected an https:// URL with a host, got {parts.scheme}://")
    assert parts.hostname is not None  # normalise refused a URL without one
    port = parts.port or DEFAULT_PORTS[parts.scheme]
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    try:
        addresses = resolve_within(resolver, parts.hostname, port, RESOLVE_SECONDS, owner)
    except TargetRefused:
        raise
    except (OSError, ValueError):  # no answer in time, unknown name, a name the resolver refuses
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
    """POST to the checked address and return the status; a network error is 0 (retried).

    Past `DEADLINE_SECONDS` the socket is shut, which ends any read in progress.
    """
    connection = _connection(target)
    timer = threading.Timer(DEADLINE_SECONDS, _abort, (connection,))
    timer.daemon = True
    timer.start()
    try:
        connection.request("POST", target.path, body=body, headers=headers)
        return connection.getresponse().status  # the answer's body is never read
    except (OSError, http.client.HTTPException, ValueError):
        return 0
    finally:
        timer.cancel()
        connection.close()


def _abort(connection: http.client.HTTPConnection) -> None:
    """End the exchange now: a blocked connect or read returns with an error."""
    sock = connection.sock
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _connection(target: Target) -> http.client.HTTPConnection:
    """A connection to `target.address` that still names (and for TLS, verifies) the host."""
    kind = http.client.HTTPSConnection if target.scheme == "https" else http.client.HTTPConnection
    host = target.host if ":" not in target.host else f"[{target.host}]"
    connection = kind(host, target.port, timeout=TIMEOUT_SECONDS)

    def pinned(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        return socket.create_connection((target.address, address[1]), *args, **kwargs)

    connection._create_connection = pinned  # type: ignore[attr-defined]
    return connection
