"""Request lines as logs may keep them: no query values, no path segment that could name anyone.

Logs outlive an erasure and are copied to places no erasure reaches. A verify
URL's `?t=` token carries the holder's names and birth date, a visitor can
type a name into the lookup form or straight into a path, and a certificate
code leads to its holder. So a logged request keeps only what is structurally
impersonal: the routes' own literal words and UUIDs in the path (a number could
be a phone or pupil number), and a few known query parameters whose values are
numbers or a language code.
Everything else becomes `*`. Used by the app's loggers and gunicorn's access log.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REDACTED = "*"
MAX_SEGMENTS = 12
SAFE_PARAMS = frozenset({"lang", "after", "limit", "seq", "size", "from", "to"})
NAMED_PARAMS = SAFE_PARAMS | {"t", "code"}  # names kept, values always redacted
SAFE_VALUE = re.compile(r"[0-9]{1,20}|[a-z]{2}")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)

METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT"}
)
PROTOCOL = re.compile(r"HTTP/[0-9](\.[0-9])?")

_literals: set[str] = set()


def learn_routes(app: Any) -> None:
    """Keep the literal words of `app`'s routes and its static files' names readable in logs."""
    for rule in app.url_map.iter_rules():
        _literals.update(s for s in rule.rule.split("/") if s and "<" not in s)
    for blueprint in [app, *app.blueprints.values()]:
        folder = getattr(blueprint, "static_folder", None)
        if folder and Path(folder).is_dir():
            _literals.update(p.name for p in Path(folder).iterdir() if p.is_file())


def redact_path(path: str) -> str:
    segments = path.split("/")
    kept = [s if not s or s in _literals or UUID.fullmatch(s) else REDACTED for s in segments]
    if len(kept) > MAX_SEGMENTS:
        kept = [*kept[:MAX_SEGMENTS], "…"]
    return "/".join(kept)


def redact_query(query: str) -> str:
    """`lang=fr&after=10` stay, `t=*`; any other value (and any unknown name) becomes `*`."""
    pairs = []
    for pair in query.split("&")[:MAX_SEGMENTS]:
        name, has_value, value = pair.partition("=")
        if name not in NAMED_PARAMS:
            pairs.append(REDACTED)
        elif has_value and (name not in SAFE_PARAMS or not SAFE_VALUE.fullmatch(value)):
            pairs.append(f"{name}={REDACTED}")
        else:
            pairs.append(pair)
    return "&".join(pairs)


def redact_target(target: str) -> str:
    """A request target (`/path?query`, or an absolute URL) with the rules above."""
    try:
        parts = urlsplit(target)
    except ValueError:  # e.g. a malformed IPv6 host in an absolute URL
        return REDACTED
    path = redact_path(parts.path)
    return f"{path}?{redact_query(parts.query)}" if parts.query else path


def redact_method(method: str) -> str:
    return method if method in METHODS else REDACTED


def redact_request_line(line: str) -> str:
    """`GET /v/P-ABC?t=… HTTP/1.1` -> `GET /v/*?t=* HTTP/1.1` (a standard method and protocol kept)."""
    method, _, rest = line.partition(" ")
    target, _, protocol = rest.rpartition(" ")
    if not target:
        target, protocol = rest, ""
    protocol = protocol if not protocol or PROTOCOL.fullmatch(protocol) else REDACTED
    return " ".join(x for x in (redact_method(method), redact_target(target), protocol) if x)


class RedactingFilter(logging.Filter):
    """Rewrites werkzeug's request log lines (`"%s" %s %s` with the request line first)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and args and isinstance(args[0], str) and " /" in args[0]:
            record.args = (redact_request_line(args[0]), *args[1:])
        return True
