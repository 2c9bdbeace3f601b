"""The Merkle tree persisted as C2SP tlog-tiles, next to the events it covers.

`integrate()` appends the hashes of events past the integrated size to the
right edge of the tree, page by page, in transactions of at most BATCH events
under its own lock: concurrent callers (threads, workers, nodes) queue and the
second finds the work done; a crash rolls back to the last complete tree. Each
full tile is written once; a right-edge tile is widened in place. The integrated
size is not stored apart: it is read off the last level-0 tile, so the tiles
can never disagree with a separate counter.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ledger.audit.merkle import leaf_hash
from ledger.audit.tiles import (
    HASH,
    TILE_BITS,
    WIDTH,
    TileBuilder,
    TileError,
    TreeView,
    available_width,
    full_tiles,
    partial_width,
)
from ledger.store.db import Cursor, Database

TILES_LOCK_ID = 0x1ED6E8  # PostgreSQL advisory lock that serializes integrations (its own id)
PAGE = 4096  # events read per query while integrating (bounds memory)
BATCH = 65_536  # events integrated per transaction (bounds how long the lock is held)
_HEX_HASH = re.compile(r"[0-9a-f]{64}")
_UPSERT = (
    "INSERT INTO tlog_tiles (level, idx, hashes) VALUES (?, ?, ?) "
    "ON CONFLICT (level, idx) DO UPDATE SET hashes = excluded.hashes"
)


class TileStore:
    """Tiles of the log's Merkle tree in the ledger database (table `tlog_tiles`)."""

    def __init__(self, db: Database, page: int = PAGE, batch: int = BATCH):
        self.db = db
        self.page = page
        self.batch = max(batch, page)

    # --- writing ---------------------------------------------------------------

    def integrate(self) -> int:
        """Add every event after the integrated size to the tree; return the new size.

        Works in transactions of at most `batch` events, each leaving a complete
        tree of a larger size, so a long backlog (a first integration of an old
        log) never holds the lock long enough to stall appends on SQLite.
        """
        while True:
            size, added = self._integrate_batch()
            if added < self.batch:
                return size

    def _integrate_batch(self) -> tuple[int, int]:
        """One transaction: up to `batch` events; returns (new size, events added)."""
        with self.db.write(lock=TILES_LOCK_ID) as cur:
            size = _size(cur)
            edge = _edge(cur, size)
            _check_edge_tile(cur, size)
            builder = TileBuilder(size, edge)
            while builder.size - size < self.batch:
                want = min(self.page, self.batch - (builder.size - size))
                leaves = _event_hashes(cur, builder.size, want)
                done = builder.extend(leaf_hash(h) for h in leaves)
                if done:
                    cur.executemany(_UPSERT, done)
                if len(leaves) < want:
                    break
            cur.executemany(_UPSERT, builder.partials())
            return builder.size, builder.size - size

    def catch_up(
        self, batches: int | None = None, needed: int = 0, allowed: Callable[[], bool] | None = None
    ) -> int:
        """The integrated size, integrating first if the log has grown past it (bounded lag).

        `batches` caps the transactions run (None: the whole backlog). A request
        thread passes 1: on an old, never-integrated log the backlog is the
        background integrator's work, not a reader's. Nothing is integrated
        unless the log holds at least `needed` events, so asking for a tile
        beyond the log costs no write. `allowed` is asked last, only when there
        is work to do (a request's cooldown: a miss that needs nothing keeps it).
        """
        size = self.size()
        head = int(self.db.scalar("SELECT MAX(seq) FROM ledger_events") or 0)
        if head < size:
            raise TileError(f"the log has {head} events but its tree already had {size}")
        if head == size or head < needed or (allowed is not None and not allowed()):
            return size
        if batches is None:
            return self.integrate()
        for _ in range(batches):
            size, added = self._integrate_batch()
            if added < self.batch:
                break
        return size

    # --- reading ---------------------------------------------------------------

    def size(self) -> int:
        """The integrated tree size (0 before the first integration)."""
        with self.db.read() as cur:
            return _size(cur)

    def tile(self, level: int, index: int, width: int = WIDTH) -> bytes | None:
        """The first `width` hashes of tile (level, index), or None beyond the integrated tree."""
        with self.db.read() as cur:
            if width > available_width(level, index, _size(cur)):
                return None
            data = _stored(cur, level, index)
        if len(data) < width * HASH:
            raise TileError(f"stored tile {level}/{index} is shorter than the integrated tree")
        return data[: width * HASH]

    def entry_bundle(self, index: int, width: int = WIDTH) -> bytes | None:
        """Entries index*256+1 .. +width as a C2SP entry bundle: per event 0x00 0x20 || hash."""
        with self.db.read() as cur:
            if width > available_width(0, index, _size(cur)):
                return None
            start = index * WIDTH
            hashes = _event_hashes(cur, start, width)
        if len(hashes) != width:
            raise TileError(f"events {start + 1}..{start + width} are missing from the log")
        return b"".join(b"\x00\x20" + h for h in hashes)

    @contextmanager
    def view(self, size: int) -> Iterator[TreeView]:
        """Roots and proofs for a tree of `size` <= the integrated size, in one read snapshot.

        Tiles only ever widen, so any earlier size reads the same hashes. Each
        tile is fetched at most once per view.
        """
        with self.db.read() as cur:
            yield TreeView(size, lambda level, index: _stored(cur, level, index))


def _stored(cur: Cursor, level: int, index: int) -> bytes:
    cur.execute("SELECT hashes FROM tlog_tiles WHERE level = ? AND idx = ?", (level, index))
    row = cur.fetchone()
    return bytes(row[0]) if row else b""


def _size(cur: Cursor) -> int:
    """idx * 256 + width of the last level-0 tile; checked to be a whole number of hashes."""
    cur.execute("SELECT idx, hashes FROM tlog_tiles WHERE level = 0 ORDER BY idx DESC LIMIT 1")
    row = cur.fetchone()
    if row is None:
        return 0
    index, data = int(row[0]), bytes(row[1])
    if index < 0 or not data or len(data) % HASH or len(data) > WIDTH * HASH:
        raise TileError(f"stored tile 0/{index} is malformed ({len(data)} bytes)")
    return index * WIDTH + len(data) // HASH


def _edge(cur: Cursor, size: int) -> dict[int, bytes]:
    """The partial tile of each level for `size`, as stored (TileBuilder checks the widths)."""
    edge: dict[int, bytes] = {}
    level = 0
    while size >> (TILE_BITS * level):
        width = partial_width(level, size)
        if width:
            edge[level] = _stored(cur, level, full_tiles(level, size))[: width * HASH]
        level += 1
    return edge


def _check_edge_tile(cur: Cursor, size: int) -> None:
    """The right-edge level-0 tile must hold exactly the leaves of the events it covers.

    Re-derived in full (up to 256 leaves) before it is widened: an edited leaf
    or a rewritten event there would otherwise be sealed into every later root.
    """
    if size == 0:
        return
    index = (size - 1) // WIDTH
    hashes = _event_hashes(cur, index * WIDTH, size - index * WIDTH)
    expected = b"".join(leaf_hash(h) for h in hashes)
    stored = _stored(cur, 0, index)[: len(expected)]
    if len(hashes) != size - index * WIDTH or stored != expected:
        raise TileError(
            f"tile 0/{index} does not hold the leaves of events {index * WIDTH + 1}..{size}: "
            "the log was rewritten or the tile edited"
        )


def _event_hashes(cur: Cursor, after: int, limit: int) -> list[bytes]:
    """Raw hashes of events after..after+limit, checked gap-free and well-formed."""
    cur.execute(
        "SELECT seq, hash FROM ledger_events WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit)
    )
    hashes = []
    for expected, (seq, value) in enumerate(cur.fetchall(), start=after + 1):
        if seq != expected:
            raise TileError(f"the log has a gap at seq {expected}: the audit names the fault")
        if not isinstance(value, str) or not _HEX_HASH.fullmatch(value):
            raise TileError(f"event {seq} has a malformed hash")
        hashes.append(bytes.fromhex(value))
    return hashes
