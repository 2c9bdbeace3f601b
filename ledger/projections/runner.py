"""Runs projections: read envelopes after the saved position, apply, save position.

Applying a page of events and moving the position happen in one transaction,
so a crash or restart neither skips nor applies an event twice. Each
projection has its own lock, so several workers catching up at once take
turns instead of racing. Projections only read the log; they write only their
own tables.

A projection can never wedge the service: an event it fails to apply rolls
its transaction back, is recorded in `projection_stalls` with its `seq`, and
the projection keeps the state just before that event while the others go on;
it is retried with exponential backoff (a fix deployed, it catches up alone).
A rebuild replays into the emptied tables inside one transaction, so a
failure leaves the old read models exactly as they were.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any, Protocol

from ledger.domain import clock
from ledger.envelope import Envelope
from ledger.store.db import Database
from ledger.store.recorder import COLUMNS, row_to_envelope

PAGE = 2000
MAX_BACKOFF_SECONDS = 300
log = logging.getLogger("ledger.projections")


class Projection(Protocol):
    """A read model: its tables, the event types it reads, and how it applies one."""

    name: str
    types: frozenset[str]
    schema: str
    tables: Sequence[str]

    def apply(self, cur: Any, env: Envelope) -> None: ...


class ProjectionStalled(Exception):
    """A projection could not apply the event at `seq`; its read model stays before it."""

    def __init__(self, name: str, seq: int, error: str):
        super().__init__(f"projection {name} stalled at seq {seq}: {error}")
        self.name, self.seq, self.error = name, seq, error


def _lock_id(name: str) -> int:
    return zlib.crc32(f"projection:{name}".encode())


def position(db: Database, name: str) -> int:
    with db.read() as cur:
        cur.execute("SELECT position FROM projection_positions WHERE name = ?", (name,))
        row = cur.fetchone()
    return row[0] if row else 0


def head(db: Database) -> int:
    return db.scalar("SELECT COALESCE(MAX(seq), 0) FROM ledger_events")


def _set_position(cur: Any, name: str, seq: int) -> None:
    cur.execute(
        "INSERT INTO projection_positions (name, position) VALUES (?, ?) "
        "ON CONFLICT (name) DO UPDATE SET position = excluded.position",
        (name, seq),
    )


def _describe(exc: Exception) -> str:
    """The error's type and first line, bounded: never a whole row of data."""
    first = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {first}"[:300]


def _apply_all(cur: Any, projection: Projection, envelopes: Iterable[Envelope]) -> None:
    """Apply each envelope the projection reads; a failure names the event's seq."""
    for env in envelopes:
        try:
            if env.type in projection.types:
                projection.apply(cur, env)
        except Exception as exc:
            raise ProjectionStalled(projection.name, env.seq, _describe(exc)) from exc


def _read_page(cur: Any, after: int, stop: int | None = None) -> list[Envelope]:
    sql = f"SELECT {COLUMNS} FROM ledger_events WHERE seq > ?"
    params: list[Any] = [after]
    if stop is not None:
        sql += " AND seq <= ?"
        params.append(stop)
    cur.execute(sql + " ORDER BY seq LIMIT ?", (*params, PAGE))
    return [row_to_envelope(r) for r in cur.fetchall()]


def _apply_page(db: Database, projection: Projection, stop: int | None = None) -> int:
    """Apply up to one page (up to `stop`); return how many envelopes were read."""
    with db.write(lock=_lock_id(projection.name)) as cur:
        cur.execute("SELECT position FROM projection_positions WHERE name = ?", (projection.name,))
        row = cur.fetchone()
        envelopes = _read_page(cur, row[0] if row else 0, stop)
        _apply_all(cur, projection, envelopes)
        if envelopes:
            _set_position(cur, projection.name, envelopes[-1].seq)
    return len(envelopes)


def _advance(db: Database, projection: Projection) -> None:
    """Apply pages until the head; on a bad event keep every event before it, then raise."""
    try:
        while _apply_page(db, projection) == PAGE:
            pass
    except ProjectionStalled as stalled:
        while _apply_page(db, projection, stop=stalled.seq - 1) == PAGE:
            pass
        raise


# --- stalls --------------------------------------------------------------------


def stalls(db: Database) -> dict[str, dict[str, Any]]:
    """Stalled projections by name: the seq they stopped before, why, since when."""
    with db.read() as cur:
        cur.execute("SELECT name, seq, error, since, attempts, retry_at FROM projection_stalls")
        keys = ("seq", "error", "since", "attempts", "retry_at")
        return {r[0]: dict(zip(keys, r[1:], strict=True)) for r in cur.fetchall()}


def _record_stall(
    db: Database, stalled: ProjectionStalled, previous: dict[str, Any] | None
) -> None:
    attempts = (previous["attempts"] if previous else 0) + 1
    now = clock.now()
    wait = timedelta(seconds=min(2**attempts, MAX_BACKOFF_SECONDS))
    since = previous["since"] if previous and previous["seq"] == stalled.seq else None
    log.error("%s (attempt %d)", stalled, attempts)
    with db.write(lock=None) as cur:
        cur.execute(
            "INSERT INTO projection_stalls (name, seq, error, since, attempts, retry_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET seq = excluded.seq,"
            " error = excluded.error, since = excluded.since, attempts = excluded.attempts,"
            " retry_at = excluded.retry_at",
            (stalled.name, stalled.seq, stalled.error, since or clock.format_time(now),
             attempts, clock.format_time(now + wait)),
        )  # fmt: skip


def _clear_stall(db: Database, name: str) -> None:
    with db.write(lock=None) as cur:
        cur.execute("DELETE FROM projection_stalls WHERE name = ?", (name,))


def create_tables(db: Database, projections: Iterable[Projection]) -> None:
    for projection in projections:
        with db.write(lock=_lock_id(projection.name)) as cur:
            for statement in projection.schema.split(";"):
                if statement.strip():
                    cur.execute(statement)


def catch_up(db: Database, projections: Iterable[Projection]) -> set[str]:
    """Bring each projection up to the head of the log (cheap when already there).

    Returns the names of stalled projections; they never stop the others, and
    one waiting for its backoff is skipped.
    """
    latest = head(db)
    stalled = stalls(db)
    now = clock.format_time(clock.now())
    still: set[str] = set()
    for projection in projections:
        previous = stalled.get(projection.name)
        if previous and previous["retry_at"] > now:
            still.add(projection.name)
            continue
        if position(db, projection.name) < latest:
            try:
                _advance(db, projection)
            except ProjectionStalled as exc:
                _record_stall(db, exc, previous)
                still.add(projection.name)
                continue
        if previous:
            _clear_stall(db, projection.name)
    return still


def rebuild(db: Database, projections: Iterable[Projection]) -> None:
    """Empty each projection and replay the whole log into it, all or nothing.

    Each projection is rebuilt in one transaction: on failure it rolls back,
    the old read model stays exactly as it was, the stall is recorded and
    ProjectionStalled is raised.
    """
    for projection in projections:
        try:
            with db.write(lock=_lock_id(projection.name)) as cur:
                for table in projection.tables:
                    cur.execute(f"DELETE FROM {table}")
                after = 0
                while envelopes := _read_page(cur, after):
                    _apply_all(cur, projection, envelopes)
                    after = envelopes[-1].seq
                _set_position(cur, projection.name, after)
        except ProjectionStalled as exc:
            _record_stall(db, exc, stalls(db).get(projection.name))
            raise
        _clear_stall(db, projection.name)


def dump(db: Database, projections: Iterable[Projection]) -> dict[str, list[tuple]]:
    """Every row of every projection table, sorted: to compare live and rebuilt state."""
    state: dict[str, list[tuple]] = {}
    with db.read() as cur:
        for projection in projections:
            for table in projection.tables:
                cur.execute(f"SELECT * FROM {table}")
                state[table] = sorted(tuple(r) for r in cur.fetchall())
    return state
