"""How far each read model is behind the log: in events, and in seconds.

Read-only: each projection's position against the log's head, and the age of
the oldest event it has not applied yet (its wait so far). Readiness compares
them with thresholds; `/metrics` exposes them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from ledger.domain import clock
from ledger.store.db import Cursor, Database


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
