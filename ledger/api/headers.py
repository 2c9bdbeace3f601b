"""Headers on every response, added at the WSGI layer: security policy and rate limits.

Strict CSP (no inline script or style), no referrer (tokens travel in `?t=`
query strings, so no page may leak its URL to another origin), no framing,
no MIME sniffing, no caching unless a view says otherwise. Added to the raw header list on the way out, which costs a
fraction of going through the framework's header objects on every request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from flask import request

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; media-src 'self' blob:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    ("Content-Security-Policy", CSP),
    ("Referrer-Policy", "no-referrer"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Permissions-Policy", "camera=(self), microphone=(), geolocation=()"),
]
EXTRA = "ledger.extra_headers"
NO_STORE = ("Cache-Control", "no-store")


def add_response_headers(headers: Iterable[tuple[str, str]]) -> None:
    """Headers for the current request's response, whatever view or error produces it."""
    request.environ.setdefault(EXTRA, []).extend(headers)


class ResponseHeaders:
    """WSGI middleware appending the security headers and any per-request extras."""

    def __init__(self, app: Callable[..., Any]):
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            if not any(name.lower() == "cache-control" for name, _ in headers):
                headers.append(NO_STORE)  # answers about certificates must never be stale
            headers.extend(SECURITY_HEADERS)
            headers.extend(environ.get(EXTRA, ()))
            return start_response(status, headers, exc_info)

        return self.app(environ, start)
