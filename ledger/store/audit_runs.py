"""Outcomes of `ledger audit verify` on the live store, for monitoring to read.

An operator's scheduled audit is only useful if someone sees it fail: each run
records when it ran, whether it passed, how many events it covered and its
first problem, and `/metrics` exposes the latest.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ledger.domain import clock
from ledger.store.db import Database, StoreError

MAX_PROBLEM = 300


@dataclass(frozen=True)
class AuditRun:
    at: datetime
    ok: bool
    size: int
    problem: str | None


def record(db: Database, ok: bool, size: int, problem: str | None) -> AuditRun:
    run = AuditRun(clock.now(), ok, size, (problem or "")[:MAX_PROBLEM] or None)
    with db.write(lock=None) as cur:
        cur.execute(
            "INSERT INTO audit_runs (at, ok, size, problem) VALUES (?, ?, ?, ?)",
            (clock.format_time(run.at), int(ok), size, run.problem),
        )
    return run


def latest(db: Database) -> AuditRun | None:
    """The most recent run, or None if the store was never audited (or predates the table)."""
    try:
        with db.read() as cur:
            cur.execute("SELECT at, ok, size, problem FROM audit_runs ORDER BY at DESC LIMIT 1")
            row = cur.fetchone()
    except StoreError:
        return None
    if row is None:
        return None
    return AuditRun(clock.parse_time(row[0]), bool(row[1]), int(row[2]), row[3])
