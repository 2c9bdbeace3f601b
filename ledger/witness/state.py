"""The witness's own storage: one SQLite file with the latest cosigned checkpoint per origin.

Checking a request against the stored checkpoint and storing the new one happen
in one `BEGIN IMMEDIATE` transaction, which takes SQLite's write lock first: two
concurrent requests (threads or worker processes) are judged one after the
other, so the race of the specification (an older checkpoint stored over a newer
one) cannot happen. Refused requests that prove misbehaviour are appended to
`evidence`, which triggers keep append-only.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ledger.witness.request import AddCheckpoint, Refusal
from ledger.witness.rules import Latest

BUSY_TIMEOUT_S = 5.0
Clock = Callable[[], int]
_SCHEMA = """
CREATE TABLE IF NOT EXISTS checkpoints (
    origin TEXT PRIMARY KEY,
    size TEXT NOT NULL,
    root BLOB NOT NULL,
    note TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS evidence (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at INTEGER NOT NULL,
    origin TEXT NOT NULL,
    status INTEGER NOT NULL,
    reason TEXT NOT NULL,
    request BLOB NOT NULL
);
CREATE TRIGGER IF NOT EXISTS evidence_no_update BEFORE UPDATE ON evidence
BEGIN SELECT RAISE(ABORT, 'evidence is append-only'); END;
CREATE TRIGGER IF NOT EXISTS evidence_no_delete BEFORE DELETE ON evidence
BEGIN SELECT RAISE(ABORT, 'evidence is append-only'); END;
"""


class StateError(Exception):
    """The witness state file cannot be opened or written."""


@dataclass(frozen=True)
class Stored:
    """One origin's row, for `ledger witness status`."""

    origin: str
    size: int
    root: bytes
    updated_at: int


class WitnessState:
    """DIR/witness.sqlite: the latest cosigned checkpoint per origin, and the evidence log."""

    def __init__(self, path: Path):
        self.path = path

    def create(self) -> None:
        with self._connect(create=True) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)

    @contextmanager
    def _connect(self, create: bool = False) -> Iterator[sqlite3.Connection]:
        if not create and not self.path.is_file():
            raise StateError(f"no witness state at {self.path}: run `ledger witness init`")
        try:
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        except sqlite3.Error as exc:
            raise StateError(f"cannot open {self.path.name}: {exc}") from None
        try:
            yield conn
        except sqlite3.Error as exc:
            raise StateError(f"witness state {self.path.name}: {exc}") from None
        finally:
            conn.close()

    def add(
        self, request: AddCheckpoint, judge: Callable[[Latest | None], None], clock: Clock
    ) -> int:
        """Judge `request` against the stored checkpoint and store it, atomically; the time.

        `judge` raises Refusal; a refusal marked as evidence is kept (committed),
        any other leaves the state untouched. The time is read under the lock and
        never goes back for an origin, so of two cosignatures the later-timed one
        is always for the larger (or the same) tree, as cosignature/v1 states.
        """
        origin = request.checkpoint.origin
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                latest, last_time = _latest(conn, origin)
                now = max(clock(), last_time)
                judge(latest)
            except Refusal as refusal:
                if refusal.evidence:
                    _keep_evidence(conn, request, refusal, now)
                    conn.execute("COMMIT")
                else:
                    conn.execute("ROLLBACK")
                raise
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            _store(conn, request, now)
            conn.execute("COMMIT")
        return now

    def origins(self) -> list[Stored]:
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT origin, size, root, updated_at FROM checkpoints ORDER BY origin"
            ).fetchall()
        return [Stored(o, int(s), bytes(r), int(t)) for o, s, r, t in rows]

    def evidence(self) -> list[tuple[int, str, int, str, bytes]]:
        """(received_at, origin, status, reason, request bytes), oldest first."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT received_at, origin, status, reason, request FROM evidence ORDER BY id"
            ).fetchall()
        return [(int(t), o, int(s), r, bytes(b)) for t, o, s, r, b in rows]


def _latest(conn: sqlite3.Connection, origin: str) -> tuple[Latest | None, int]:
    """The origin's cosigned checkpoint (None if none yet) and when it was cosigned."""
    row = conn.execute(
        "SELECT size, root, updated_at FROM checkpoints WHERE origin = ?", (origin,)
    ).fetchone()
    return (None, 0) if row is None else (Latest(int(row[0]), bytes(row[1])), int(row[2]))


def _store(conn: sqlite3.Connection, request: AddCheckpoint, now: int) -> None:
    cp = request.checkpoint
    conn.execute(
        "INSERT INTO checkpoints (origin, size, root, note, updated_at) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (origin) DO UPDATE SET size = excluded.size, root = excluded.root,"
        " note = excluded.note, updated_at = excluded.updated_at",
        (cp.origin, str(cp.size), cp.root, request.note, now),
    )


def _keep_evidence(
    conn: sqlite3.Connection, request: AddCheckpoint, refusal: Refusal, now: int
) -> None:
    conn.execute(
        "INSERT INTO evidence (received_at, origin, status, reason, request) VALUES (?, ?, ?, ?, ?)",
        (now, request.checkpoint.origin, refusal.status, refusal.reason, request.raw),
    )
