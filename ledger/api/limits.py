"""Per-client rate limits on certificate lookups and QR uploads, shared across workers.

Two shared buckets per client: every way of looking a certificate up (page,
JSON, QR image) counts in `lookups`; uploads in `uploads`. Each limited
response carries X-RateLimit-Limit/Remaining/Reset; a breach is a 429 with
Retry-After. Counters live where LEDGER_RATELIMIT_STORAGE says (`rate_stores`):
by default in a file shared by every worker of the host, so a limit of 60 per
minute is 60 whatever the number of workers; `redis://` shares them between
nodes. If Redis fails, the limits fall back to this host's store (they then hold
per node) and Redis is tried again after RETRY_S: a rate limiter must never turn
a lookup into an error. `limits` only parses the rate strings.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import time
from collections.abc import Callable
from typing import Any

import redis
from flask import Flask, current_app, request
from limits import RateLimitItem, parse
from werkzeug.exceptions import TooManyRequests

from ledger.api.headers import add_response_headers
from ledger.api.rate_stores import LocalWindows, NodeWindows, RedisWindows, Windows
from ledger.config import Config, ConfigError

EXTENSION = "ledger.limits"
log = logging.getLogger(__name__)


def node_windows(config: Config) -> NodeWindows:
    """This host's store for this ledger: one file per database, in the runtime dir."""
    ledger_id = hashlib.sha256(config.database_url.encode()).hexdigest()[:16]
    return NodeWindows(config.runtime_dir / f"ratelimit-{ledger_id}.bin")


def open_store(config: Config) -> tuple[Windows, NodeWindows | None]:
    """(store, fallback used while Redis is unreachable) for the configured URL."""
    url = config.ratelimit_storage
    try:
        if url == "memory://":
            return LocalWindows(), None
        if url == "node://":
            return node_windows(config), None
        if url.startswith(("redis://", "rediss://", "unix://")):
            return RedisWindows(url, config.log_origin), node_windows(config)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"LEDGER_RATELIMIT_STORAGE: {exc}") from exc
    raise ConfigError(
        f"LEDGER_RATELIMIT_STORAGE must be node://, redis://host:port/db or memory://, "
        f"got {url.split(':')[0]!r}"
    )


class RateLimits:
    RETRY_S = 5.0

    def __init__(self, config: Config):
        try:
            self.buckets: dict[str, RateLimitItem] = {
                "lookups": parse(config.lookup_rate_limit),
                "uploads": parse(config.upload_rate_limit),
            }
        except ValueError as exc:
            raise ConfigError(f"rate limit settings: {exc}") from exc
        self.store, self.fallback = open_store(config)
        self._down_until = 0.0

    def _count(self, key: str, period: int) -> tuple[int, float]:
        if self.fallback is None:
            return self.store.hit(key, period)
        if time.monotonic() >= self._down_until:
            try:
                return self.store.hit(key, period)
            except redis.RedisError as exc:
                self._down_until = time.monotonic() + self.RETRY_S
                log.warning("rate-limit store unreachable, counting on this node: %s", exc)
        return self.fallback.hit(key, period)

    def close(self) -> None:
        for store in (self.store, self.fallback):
            if isinstance(store, NodeWindows):
                store.close()

    def hit(self, bucket: str, client: str) -> tuple[bool, dict[str, str], int]:
        """(allowed, headers to send, seconds until the window resets)."""
        item = self.buckets[bucket]
        count, reset = self._count(f"{bucket}/{client}", item.get_expiry())
        headers = {
            "X-RateLimit-Limit": str(item.amount),
            "X-RateLimit-Remaining": str(max(0, item.amount - count)),
            "X-RateLimit-Reset": str(int(reset)),
        }
        return count <= item.amount, headers, max(1, math.ceil(reset - time.time()))


def limited(bucket: str) -> Callable:
    """Count the request in `bucket` for its client; refuse it with 429 past the limit."""

    def decorate(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            rates: RateLimits = current_app.extensions[EXTENSION]
            allowed, headers, retry = rates.hit(bucket, request.remote_addr or "unknown")
            add_response_headers(headers.items())
            if not allowed:
                raise TooManyRequests(f"too many requests; retry in {retry} s", retry_after=retry)
            return view(*args, **kwargs)

        return wrapper

    return decorate


lookups = limited("lookups")
uploads = limited("uploads")


def init_limits(app: Flask, config: Config) -> None:
    app.extensions[EXTENSION] = RateLimits(config)
