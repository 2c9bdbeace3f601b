"""Per-client rate limits on certificate lookups and QR uploads (the `limits` library).

Two shared buckets per client: every way of looking a certificate up (page,
JSON, QR image) counts in `lookups`; uploads in `uploads`. Each limited
response carries X-RateLimit-Limit/Remaining/Reset; a breach is a 429 with
Retry-After. Counters live in process memory by default; point
LEDGER_RATELIMIT_STORAGE at a shared store (e.g. redis://) when several workers
or nodes must share them. A thin layer over `limits` rather than a Flask
extension: lookups are the hottest path of the public site.
"""

from __future__ import annotations

import functools
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from flask import Flask, current_app, request
from limits import RateLimitItem, parse
from limits.errors import ConfigurationError
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter
from werkzeug.exceptions import TooManyRequests

from ledger.api.headers import add_response_headers
from ledger.config import Config, ConfigError

EXTENSION = "ledger.limits"


class LocalWindows:
    """Fixed-window counters in process memory: one dict and one lock.

    Used for `memory://` instead of `limits`' memory storage, which starts a timer
    thread to expire keys; on the lookup path that cost more than the lookup itself.
    """

    MAX_KEYS = 200_000

    def __init__(self) -> None:
        self._counts: dict[tuple[str, int, int], int] = {}
        self._lock = threading.Lock()

    def hit(self, key: str, period: int) -> tuple[int, float]:
        """Count one hit; return the window's count and when the window ends."""
        window = int(time.time() // period)
        slot = (key, period, window)
        with self._lock:
            count = self._counts.get(slot, 0) + 1
            self._counts[slot] = count
            if len(self._counts) > self.MAX_KEYS:
                self._forget_before(time.time())
        return count, (window + 1) * period

    def _forget_before(self, now: float) -> None:
        for slot in [s for s in self._counts if (s[2] + 1) * s[1] <= now]:
            del self._counts[slot]


class RateLimits:
    def __init__(self, config: Config):
        try:
            self.buckets: dict[str, RateLimitItem] = {
                "lookups": parse(config.lookup_rate_limit),
                "uploads": parse(config.upload_rate_limit),
            }
            local = config.ratelimit_storage.startswith("memory://")
            self.local = LocalWindows() if local else None
            self.strategy = (
                None
                if local
                else FixedWindowRateLimiter(storage_from_string(config.ratelimit_storage))
            )
        except (ConfigurationError, ValueError) as exc:
            raise ConfigError(f"rate limit settings: {exc}") from exc

    def _count(self, item: RateLimitItem, bucket: str, client: str) -> tuple[bool, int, float]:
        if self.local is not None:
            count, reset = self.local.hit(f"{bucket}/{client}", item.get_expiry())
            return count <= item.amount, max(0, item.amount - count), reset
        allowed = self.strategy.hit(item, bucket, client)  # type: ignore[union-attr]
        reset, remaining = self.strategy.get_window_stats(item, bucket, client)  # type: ignore[union-attr]
        return allowed, remaining, reset

    def hit(self, bucket: str, client: str) -> tuple[bool, dict[str, str], int]:
        """(allowed, headers to send, seconds until the window resets)."""
        item = self.buckets[bucket]
        allowed, remaining, reset = self._count(item, bucket, client)
        headers = {
            "X-RateLimit-Limit": str(item.amount),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": str(int(reset)),
        }
        return allowed, headers, max(1, math.ceil(reset - time.time()))


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
