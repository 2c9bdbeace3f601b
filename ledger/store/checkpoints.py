"""Signed checkpoints and their witness cosignatures, kept for ever.

A row is written once and never updated: the note stored for a size is the one
the log published, so an auditor who saw it can hold the log to it. Storing
happens under a lock with a re-check of the latest size, so two processes
never both sign after the same checkpoint. Rows are read back strictly, as the
database is not trusted more than a network peer. `push_turn` lets one process
at a time push to witnesses; the others skip their round instead of waiting.
"""

from __future__ import annotations

import contextlib
import fcntl
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ledger.audit.checkpoint import CheckpointError, parse_checkpoint
from ledger.store.db import Cursor, Database, SQLiteDatabase, StoreError, UniqueViolation

CHECKPOINT_LOCK_ID = 0x1ED6E7  # PostgreSQL advisory lock of the checkpoint signer
PUSH_LOCK_ID = 0x1ED6E9  # PostgreSQL advisory lock (with the schema) of the witness pusher
MAX_NOTE_CHARS = 8192
COSIGNED_WINDOW = 1000  # newest checkpoints sizes_cosigned looks at (bounds the scan)
_ROOT_HEX = re.compile(r"[0-9a-f]{64}")
_COLUMNS = "size, root, note, created_at"
COSIGNED_SIZES = (  # (window, at least, limit): a range scan of the primary key (size, witness)
    "SELECT size FROM tlog_cosignatures WHERE size >= (SELECT MIN(size) FROM"
    " (SELECT size FROM tlog_checkpoints ORDER BY size DESC LIMIT ?) AS newest)"
    " GROUP BY size HAVING COUNT(*) >= ? ORDER BY size DESC LIMIT ?"
)


@dataclass(frozen=True)
class StoredCheckpoint:
    size: int
    root: bytes
    note: str  # the log's signed note, without cosignatures
    created_at: str


@dataclass(frozen=True)
class Cosignature:
    witness: str
    line: str  # one note signature line, with its newline
    timestamp: int


class CheckpointStore:
    def __init__(self, db: Database):
        self.db = db

    def latest(self) -> StoredCheckpoint | None:
        with self.db.read() as cur:
            return self._latest(cur)

    def get(self, size: int) -> StoredCheckpoint | None:
        with self.db.read() as cur:
            cur.execute(f"SELECT {_COLUMNS} FROM tlog_checkpoints WHERE size = ?", (size,))
            row = cur.fetchone()
        return _checkpoint(row) if row else None

    def after(self, size: int, limit: int) -> list[StoredCheckpoint]:
        """Checkpoints larger than `size`, ascending, at most `limit`."""
        with self.db.read() as cur:
            cur.execute(
                f"SELECT {_COLUMNS} FROM tlog_checkpoints WHERE size > ? ORDER BY size LIMIT ?",
                (size, limit),
            )
            return [_checkpoint(row) for row in cur.fetchall()]

    def each(self, page: int = 256) -> Iterator[StoredCheckpoint]:
        """Every stored checkpoint, ascending by size, read `page` rows at a time (flat memory).

        Each row is checked only when it is reached, so a reader walking the log
        in order meets a bad row where it is, after any earlier fault.
        """
        size = -1
        while True:
            with self.db.read() as cur:
                cur.execute(
                    f"SELECT {_COLUMNS} FROM tlog_checkpoints WHERE size > ? ORDER BY size LIMIT ?",
                    (size, page),
                )
                rows = cur.fetchall()
            for row in rows:
                yield _checkpoint(row)
            if len(rows) < page:
                return
            size = int(rows[-1][0])

    def store_next(
        self, expected: int | None, make: Callable[[], StoredCheckpoint]
    ) -> StoredCheckpoint | None:
        """Store `make()` if the latest stored size is still `expected`; None otherwise.

        `make` signs, so it runs only once the lock is held and the check passed:
        nothing is signed that is not stored.
        """
        try:
            with self.db.write(lock=CHECKPOINT_LOCK_ID) as cur:
                latest = self._latest(cur)
                if (latest.size if latest else None) != expected:
                    return None
                cp = make()
                cur.execute(
                    f"INSERT INTO tlog_checkpoints ({_COLUMNS}) VALUES (?, ?, ?, ?)",
                    (cp.size, cp.root.hex(), cp.note, cp.created_at),
                )
                return cp
        except UniqueViolation:
            return None

    def _latest(self, cur: Cursor) -> StoredCheckpoint | None:
        cur.execute(f"SELECT {_COLUMNS} FROM tlog_checkpoints ORDER BY size DESC LIMIT 1")
        row = cur.fetchone()
        return _checkpoint(row) if row else None

    # --- whose turn to push ------------------------------------------------------

    @contextlib.contextmanager
    def push_turn(self) -> Iterator[bool]:
        """True while this caller alone may push to witnesses; False (at once) if another has it.

        Every serving worker runs the checkpoint loop: without this, N workers push
        each checkpoint N times. PostgreSQL: a transaction-scoped advisory lock, held
        by a transaction left open for the round (every node shares it; another
        ledger in another schema of the same database has its own). SQLite: an
        exclusive flock on a file beside the database (SQLite's own lock would stop
        appends for the round).
        """
        if isinstance(self.db, SQLiteDatabase):
            with _file_lock(Path(f"{self.db.path}.push-lock")) as got:
                yield got
            return
        with self.db.write(lock=None) as cur:
            cur.execute(  # advisory locks span the database: keyed by schema too
                "SELECT pg_try_advisory_xact_lock(?, hashtext(current_schema()))", (PUSH_LOCK_ID,)
            )
            yield bool(cur.fetchone()[0])

    # --- cosignatures ----------------------------------------------------------

    def cosignatures(self, size: int) -> list[Cosignature]:
        with self.db.read() as cur:
            cur.execute(
                "SELECT witness, line, timestamp FROM tlog_cosignatures WHERE size = ?"
                " ORDER BY witness",
                (size,),
            )
            return [Cosignature(w, line, int(ts)) for w, line, ts in cur.fetchall()]

    def add_cosignatures(self, size: int, found: list[Cosignature]) -> None:
        """Keep the newest cosignature of each witness on a size.

        A witness asked again about an idle log's checkpoint re-signs it with a later
        time: the newer line replaces the older, so verifiers see it is still watched.
        """
        with self.db.write(lock=None) as cur:
            for c in found:
                cur.execute(
                    "INSERT INTO tlog_cosignatures (size, witness, line, timestamp)"
                    " VALUES (?, ?, ?, ?) ON CONFLICT (size, witness) DO UPDATE"
                    " SET line = excluded.line, timestamp = excluded.timestamp"
                    " WHERE excluded.timestamp > tlog_cosignatures.timestamp",
                    (size, c.witness, c.line, c.timestamp),
                )

    def sizes_cosigned(self, at_least: int, limit: int, within: int = COSIGNED_WINDOW) -> list[int]:
        """Sizes with at least `at_least` stored cosignatures, largest first (unverified).

        Only the newest `within` checkpoints are looked at: the table keeps every
        cosignature for ever, and a history build must not count them all. The
        primary key (size, witness) is the index on size that bounds the scan.
        A log whose witnesses were silent for that many checkpoints has no
        recent witnessed one, and the history says so.
        """
        with self.db.read() as cur:
            if at_least <= 0:
                cur.execute(
                    "SELECT size FROM tlog_checkpoints ORDER BY size DESC LIMIT ?", (limit,)
                )
            else:
                cur.execute(COSIGNED_SIZES, (within, at_least, limit))
            return [int(row[0]) for row in cur.fetchall()]

    def last_cosigned(self, witness: str) -> int:
        """The largest size `witness` cosigned for us (0 when none): the next push's old size."""
        found = self.db.scalar(
            "SELECT MAX(size) FROM tlog_cosignatures WHERE witness = ?", (witness,)
        )
        return int(found or 0)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[bool]:
    """A non-blocking exclusive flock: per open file, so threads contend like processes."""
    with open(path, "a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _checkpoint(row: tuple) -> StoredCheckpoint:
    """A row, checked: its note must be a checkpoint of the row's own size and root."""
    size, root_hex, note, created_at = row
    if not isinstance(root_hex, str) or not _ROOT_HEX.fullmatch(root_hex):
        raise StoreError(f"stored checkpoint {size}: root is not 64 lowercase hex digits")
    if not isinstance(note, str) or len(note) > MAX_NOTE_CHARS:
        raise StoreError(f"stored checkpoint {size}: note is missing or too long")
    try:
        cp, _ = parse_checkpoint(note)
    except CheckpointError as exc:
        raise StoreError(f"stored checkpoint {size}: {exc}") from exc
    if cp.size != int(size) or cp.root.hex() != root_hex:
        raise StoreError(f"stored checkpoint {size}: its note is for another tree")
    return StoredCheckpoint(int(size), cp.root, note, str(created_at))
