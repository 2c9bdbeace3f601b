"""Per-client rate limits on lookups and uploads (flask-limiter).

Limits come from configuration; the current window's limit and remaining
count go out in headers on every limited response, and a breach is a 429
with Retry-After. Storage is in-process by default; point
LEDGER_RATELIMIT_STORAGE at a shared store (e.g. redis://) when several
workers or nodes must share counters.
"""

from __future__ import annotations

from flask import Flask
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

from ledger.config import Config

limiter = Limiter(key_func=get_remote_address, headers_enabled=True)
_limits: dict[str, str] = {}


def _lookup_limit() -> str:
    return _limits["lookup"]


def _upload_limit() -> str:
    return _limits["upload"]


# One bucket per client for every way of looking a certificate up, one for uploads.
lookups = limiter.shared_limit(_lookup_limit, scope="lookups")
uploads = limiter.shared_limit(_upload_limit, scope="uploads")


def init_limits(app: Flask, config: Config) -> None:
    _limits["lookup"] = config.lookup_rate_limit
    _limits["upload"] = config.upload_rate_limit
    app.config["RATELIMIT_STORAGE_URI"] = config.ratelimit_storage
    app.config["RATELIMIT_HEADERS_ENABLED"] = True
    limiter.init_app(app)
