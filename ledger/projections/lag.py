"""How far each read model is behind the log, and a bounded wait for it.

Read-only: each projection's position against the log's head, and the age of
the oldest event it has not applied yet (its wait so far). Readiness compares
them with thresholds; `/metrics` exposes them.

When the projection runner is the only writer of read models, an API worker
that must answer from the state after some seq (the head when the request
began, or the write the client just made) waits for the runner to apply it,
but never longer than a bound: past it the answer would be stale, so the
worker says so (503 with Retry-After) instead of serving it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ledger.domain import clock
from ledger.projections.runner import Projection, head
from ledger.store.db import Cursor, Database, StoreUnavailable

FIRST_POLL_S = 0.002
MAX_POLL_S = 0.05


@dataclass(frozen=True)
class Lag:
    events: int
    seconds: float


def lags(db: Database, names: Iterable[str], now: datetime) -> tuple[int, dict[str, Lag]]:
    """The log's head and each named projection's lag behind it, in one read transaction."""
    with db.read() as cur:
        cur.execute("SELECT COALESCE(MAX(seq), 0) FROM ledger_events")
        latest = cur.fetchone()[0]
        cur.execute("SELECT name, position FROM projection_positions")
        positions = dict(cur.fetchall())
        waited: dict[int, float] = {}
        found: dict[str, Lag] = {}
        for name in names:
            at = positions.get(name, 0)
            if at < latest and at not in waited:
                waited[at] = _oldest_wait(cur, at, now)
            found[name] = Lag(max(latest - at, 0), waited.get(at, 0.0) if at < latest else 0.0)
    return latest, found


def _oldest_wait(cur: Cursor, position: int, now: datetime) -> float:
    """Seconds since the first event after `position` was appended."""
    cur.execute("SELECT time FROM ledger_events WHERE seq > ? ORDER BY seq LIMIT 1", (position,))
    row = cur.fetchone()
    return max((now - clock.parse_time(row[0])).total_seconds(), 0.0) if row else 0.0


def lag_problems(found: dict[str, Lag], max_events: int, max_seconds: float) -> list[str]:
    """What makes the read models too stale to serve: one sentence per projection at fault."""
    problems = []
    for name, lag in sorted(found.items()):
        if lag.events > max_events or lag.seconds > max_seconds:
            problems.append(
                f"{name} is {lag.events} events and {lag.seconds:.1f} s behind the log"
                f" (limits {max_events} events, {max_seconds:g} s)"
            )
    return problems


class ProjectionsBehind(StoreUnavailable):
    """The read models did not reach `required` within the wait: retry shortly (503)."""

    def __init__(self, required: int, applied: int, waited_ms: int):
        super().__init__(
            f"read models are at seq {applied}, behind seq {required} after {waited_ms} ms"
        )
        self.required, self.applied, self.waited_ms = required, applied, waited_ms


def _positions(db: Database) -> tuple[dict[str, int], set[str]]:
    """Each projection's position, and the names of the stalled ones."""
    with db.read() as cur:
        cur.execute("SELECT name, position FROM projection_positions")
        positions = dict(cur.fetchall())
        cur.execute("SELECT name FROM projection_stalls")
        return positions, {row[0] for row in cur.fetchall()}


def applied_upto(db: Database, projections: Iterable[Projection], ceiling: int) -> int:
    """The seq every projection has applied, up to `ceiling`.

    A stalled projection is left out: it waits for a fixed release, not for the
    runner, and `/api/v1/ready` already reports it.
    """
    positions, stalled = _positions(db)
    live = [positions.get(p.name, 0) for p in projections if p.name not in stalled]
    return min(live, default=ceiling)


def wait_for(db: Database, projections: Iterable[Projection], seq: int, max_wait_s: float) -> int:
    """Block until every projection applied `seq` (polling, backing off); return its position.

    Raises ProjectionsBehind once `max_wait_s` has passed.
    """
    projections = list(projections)
    started = time.monotonic()
    delay = FIRST_POLL_S
    while True:
        applied = applied_upto(db, projections, seq)
        if applied >= seq:
            return applied
        waited = time.monotonic() - started
        if waited >= max_wait_s:
            raise ProjectionsBehind(seq, applied, int(waited * 1000))
        time.sleep(min(delay, max_wait_s - waited))
        delay = min(delay * 2, MAX_POLL_S)


def _event_time(db: Database, seq: int) -> str | None:
    row = db.row("SELECT time FROM ledger_events WHERE seq = ?", (seq,))
    return row[0] if row else None


def projection_lag(db: Database, projections: Iterable[Projection] = ()) -> dict[str, Any]:
    """Lag of the slowest read model, in events and in seconds, with every position.

    `seconds` is the age of the oldest event not yet applied (0 when caught
    up). Without `projections`, every projection that recorded a position.
    """
    latest = head(db)
    positions, stalled = _positions(db)
    names = [p.name for p in projections] or sorted(positions)
    at = {name: positions.get(name, 0) for name in names}
    slowest = min(at.values(), default=latest)
    seconds = 0.0
    if slowest < latest and (oldest := _event_time(db, slowest + 1)) is not None:
        age = clock.now() - clock.parse_time(oldest)
        seconds = round(max(age.total_seconds(), 0.0), 3)
    return {
        "events": max(latest - slowest, 0),
        "seconds": seconds,
        "head": latest,
        "positions": at,
        "stalled": sorted(stalled & set(names)),
    }
