"""Runs projections: read envelopes after the saved position, apply, save position.

Applying a page of events and moving the position happen in one transaction,
so a crash or restart neither skips nor applies an event twice. Each
projection has its own lock, so several workers catching up at once take
turns instead of racing. Projections only read the log; they write only their
own tables.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from ledger.envelope import Envelope
from ledger.store.db import Database
from ledger.store.recorder import COLUMNS, row_to_envelope

PAGE = 2000


class Projection(Protocol):
    """A read model: its tables, the event types it reads, and how it applies one."""

    name: str
    types: frozenset[str]
    schema: str
    tables: Sequence[str]

    def apply(self, cur: Any, env: Envelope) -> None: ...


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


def _apply_page(db: Database, projection: Projection) -> int:
    """Apply up to one page; return how many envelopes were read."""
    with db.write(lock=_lock_id(projection.name)) as cur:
        cur.execute("SELECT position FROM projection_positions WHERE name = ?", (projection.name,))
        row = cur.fetchone()
        after = row[0] if row else 0
        cur.execute(
            f"SELECT {COLUMNS} FROM ledger_events WHERE seq > ? ORDER BY seq LIMIT ?",
            (after, PAGE),
        )
        envelopes = [row_to_envelope(r) for r in cur.fetchall()]
        for env in envelopes:
            if env.type in projection.types:
                projection.apply(cur, env)
        if envelopes:
            _set_position(cur, projection.name, envelopes[-1].seq)
    return len(envelopes)


def create_tables(db: Database, projections: Iterable[Projection]) -> None:
    for projection in projections:
        with db.write(lock=_lock_id(projection.name)) as cur:
            for statement in projection.schema.split(";"):
                if statement.strip():
                    cur.execute(statement)


def catch_up(db: Database, projections: Iterable[Projection]) -> None:
    """Bring each projection up to the head of the log (cheap when already there)."""
    latest = head(db)
    for projection in projections:
        if position(db, projection.name) >= latest:
            continue
        while _apply_page(db, projection) == PAGE:
            pass


def rebuild(db: Database, projections: Iterable[Projection]) -> None:
    """Empty each projection and replay the whole log into it."""
    projections = list(projections)
    for projection in projections:
        with db.write(lock=_lock_id(projection.name)) as cur:
            for table in projection.tables:
                cur.execute(f"DELETE FROM {table}")
            _set_position(cur, projection.name, 0)
    catch_up(db, projections)


def dump(db: Database, projections: Iterable[Projection]) -> dict[str, list[tuple]]:
    """Every row of every projection table, sorted: to compare live and rebuilt state."""
    state: dict[str, list[tuple]] = {}
    with db.read() as cur:
        for projection in projections:
            for table in projection.tables:
                cur.execute(f"SELECT * FROM {table}")
                state[table] = sorted(tuple(r) for r in cur.fetchall())
    return state
