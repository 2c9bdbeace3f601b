"""The Merkle tree over the live log, read from tiles persisted in the database.

Leaves are the events' hashes in seq order (format section 5). The tree lives
in `tlog_tiles` (ledger/store/tiles.py), so a worker holds no leaf list: roots
and proofs are O(log n) tile reads, and memory does not grow with the log.
Integration lags the log by a bounded amount: `refresh()` integrates whatever
was appended since, so any size a caller sees is already in the tiles.
"""

from __future__ import annotations

from ledger.store.application import Ledger
from ledger.store.tiles import TileStore


class LogTree:
    def __init__(self, ledger: Ledger):
        self.ledger = ledger
        self.tiles = TileStore(ledger.db)

    def refresh(self) -> int:
        """Integrate events appended since the last integration; return the tree size."""
        return self.tiles.catch_up()

    def root(self, size: int) -> bytes:
        """MTH of the first `size` events (size <= the integrated size)."""
        with self.tiles.view(size) as view:
            return view.root()

    def checkpoint(self) -> str:
        """The latest stored checkpoint with its cosignatures (signed on a schedule, kept)."""
        from ledger.services.checkpoints import latest_note  # the services build on this tree

        return latest_note(self.ledger)

    def inclusion(self, seq: int, size: int) -> list[bytes]:
        """RFC 9162 PATH of event `seq` in the tree of `size` events."""
        with self.tiles.view(size) as view:
            return view.inclusion(seq - 1)

    def consistency(self, old: int, new: int) -> list[bytes]:
        """RFC 9162 PROOF that the tree of `old` events is a prefix of that of `new`."""
        with self.tiles.view(new) as view:
            return view.consistency(old)
