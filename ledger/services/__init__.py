"""Application services: load aggregates, run a domain command, save atomically.

The glue between the API/CLI and the domain. A command that lost a race for a
stream (ConcurrencyConflict) is re-run on fresh state a few times when it is
safe to (commands here are idempotent or re-checked), then reported as 409.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from ledger.domain.base import Conflict
from ledger.store.recorder import ConcurrencyConflict

T = TypeVar("T")
ATTEMPTS = 5


def retrying(command: Callable[[], T], attempts: int = ATTEMPTS) -> T:
    """Run `command`; on a concurrency conflict, run it again on reloaded state."""
    for _ in range(attempts - 1):
        try:
            return command()
        except ConcurrencyConflict:
            continue
    try:
        return command()
    except ConcurrencyConflict as exc:
        raise Conflict("the stream changed concurrently; retry the request") from exc
