"""The serving process's own audit of the log, a page at a time.

`/api/v1/ready` advances it: each call checks the events appended since the
last verified one (seq, chain link, hash, signature by a key the endorsement
chain rooted in the trust anchor accepts at that seq) and keeps the Merkle root of what it verified, the "last verified
checkpoint". A failure is permanent for this process and raised as an
integrity alarm: the service then reports itself not ready.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass

from ledger import crypto, envelope
from ledger.audit.merkle import MerkleAccumulator
from ledger.store.application import Ledger
from ledger.trust import KeyHistory, is_key_event

PAGE = 500  # events verified per call, so one probe stays fast (~0.1 s)


@dataclass
class VerifiedCheckpoint:
    size: int
    root: str

    def to_dict(self) -> dict[str, object]:
        return {"size": self.size, "root": self.root}


class TailVerifier:
    def __init__(self, ledger: Ledger):
        self.ledger = ledger
        self._tree = MerkleAccumulator()
        self._prev = crypto.ZERO_HASH
        self._history = KeyHistory(ledger.trust_anchor())
        self._lock = threading.Lock()
        self.problem = ""

    def advance(self) -> VerifiedCheckpoint:
        """Verify up to one page of new events; a problem is kept in `problem`."""
        with self._lock:
            if not self.problem:
                after = len(self._tree)
                for env in self.ledger.recorder.envelopes(after=after, limit=PAGE):
                    self.problem = self._check(env.to_json_line(), len(self._tree) + 1)
                    if self.problem:
                        break
                    self._prev = env.hash
                    self._tree.append(bytes.fromhex(env.hash))
            return VerifiedCheckpoint(len(self._tree), crypto.b64(self._tree.root()))

    def _check(self, line: str, seq: int) -> str:
        try:
            record = json.loads(line)
        except ValueError:
            return f"seq {seq}: stored event is not JSON"
        if record["seq"] != seq or record["prev"] != self._prev:
            return f"seq {seq}: chain broken"
        if not envelope.check_hash(record):
            return f"seq {seq}: hash does not match the event"
        problem = self._history.apply(record) if is_key_event(str(record["type"])) else ""
        problem = problem or self._history.signature_problem(record)
        return f"seq {seq}: {problem}" if problem else ""
