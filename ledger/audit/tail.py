"""The serving process's own audit of the log, a page at a time.

`/api/v1/ready` advances it: each call checks the events appended since the
last verified one with the auditor's own per-event checks (seq, chain link,
hash, signature by a key the endorsement chain rooted in the trust anchor
accepts at that seq, compromise declarations) and keeps the Merkle root of
what it verified, the "last verified checkpoint". It also notices a log whose
head fell below what it already verified (a truncated tail), and remembers
how many events each certificate had, so the verify page can tell a
certificate whose later event (a cancellation) was deleted. A failure is
permanent for this process and raised as an integrity alarm: the service then
reports itself not ready.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass

from ledger import crypto
from ledger.audit.merkle import MerkleAccumulator
from ledger.audit.verify import check_key, check_record
from ledger.projections.runner import head
from ledger.services.signed_certificate import TYPES as CERTIFICATE_TYPES
from ledger.store.application import Ledger
from ledger.trust import KeyHistory, SignedSeqs

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
        self._signed = SignedSeqs()
        self._lock = threading.Lock()
        self.problem = ""
        self.problem_seq: int | None = None
        # stream -> versions verified, for certificates revised after issue (few of them)
        self.revised_certificates: dict[str, int] = {}

    @property
    def size(self) -> int:
        return len(self._tree)

    def advance(self) -> VerifiedCheckpoint:
        """Verify up to one page of new events; a problem is kept in `problem`."""
        with self._lock:
            if not self.problem:
                self._advance()
            return VerifiedCheckpoint(len(self._tree), crypto.b64(self._tree.root()))

    def _advance(self) -> None:
        verified = len(self._tree)
        if head(self.ledger.db) < verified:
            self._fail(
                verified, f"the log ends before seq {verified}, already verified (truncated)"
            )
            return
        for env in self.ledger.recorder.envelopes(after=verified, limit=PAGE):
            seq = len(self._tree) + 1
            try:
                record = json.loads(env.to_json_line())
            except ValueError:
                self._fail(seq, "stored event is not JSON")
                return
            bad_seq, problem = self._check(record, seq)
            if problem:
                self._fail(bad_seq, problem)
                return
            self._prev = env.hash
            self._tree.append(bytes.fromhex(env.hash))
            if env.type in CERTIFICATE_TYPES and env.version > 1:
                self.revised_certificates[env.stream] = env.version

    def _check(self, record: dict, seq: int) -> tuple[int, str]:
        problem = check_record(record, seq, self._prev)
        if problem:
            return seq, problem
        return check_key(record, self._history, self._signed)

    def _fail(self, seq: int, problem: str) -> None:
        self.problem_seq = seq
        self.problem = f"seq {seq}: {problem}"
