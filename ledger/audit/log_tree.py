"""The Merkle tree over the live log, kept incrementally in memory.

Leaves are the events' hashes in seq order (format section 5). Each refresh
reads only the hashes appended since the last one, so checkpoints and proofs
cost a small query plus tree hashing, not a full scan of the log.
"""

from __future__ import annotations

import threading

from ledger.audit.merkle import MerkleAccumulator, consistency_proof, inclusion_proof, root_hash
from ledger.store.application import Ledger


class LogTree:
    def __init__(self, ledger: Ledger):
        self.ledger = ledger
        self._leaves: list[bytes] = []
        self._accumulator = MerkleAccumulator()
        self._lock = threading.Lock()

    def refresh(self) -> int:
        """Load hashes appended since the last refresh; return the tree size."""
        with self._lock:
            with self.ledger.db.read() as cur:
                cur.execute(
                    "SELECT hash FROM ledger_events WHERE seq > ? ORDER BY seq",
                    (len(self._leaves),),
                )
                fresh = [bytes.fromhex(r[0]) for r in cur.fetchall()]
            self._leaves.extend(fresh)
            for leaf in fresh:
                self._accumulator.append(leaf)
            return len(self._leaves)

    def leaves(self, size: int) -> list[bytes]:
        return self._leaves[:size]

    def root(self, size: int) -> bytes:
        """The latest root in O(log n); an older size is recomputed from its leaves."""
        if size == len(self._accumulator):
            return self._accumulator.root()
        return root_hash(self.leaves(size))

    def checkpoint(self) -> str:
        """The latest stored checkpoint with its cosignatures (signed on a schedule, kept)."""
        from ledger.services.checkpoints import latest_note  # the services build on this tree

        return latest_note(self.ledger)

    def inclusion(self, seq: int, size: int) -> list[bytes]:
        return inclusion_proof(self.leaves(size), seq - 1)

    def consistency(self, old: int, new: int) -> list[bytes]:
        return consistency_proof(self.leaves(new), old)
