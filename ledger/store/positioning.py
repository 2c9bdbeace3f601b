"""A candidate's positioning folded up to a version, kept authenticated so it is never trusted blindly.

Enrolment and course start read a candidate's knowledge; folding every answer
again costs as much as the history is long. A kept fold (`positioning_folds`)
lets them read only the answers after it. The database is untrusted, so a fold
counts only when both hold:
- its MAC verifies, under a key derived from the master key, which the database
  does not hold: a fold edited in place is refused;
- the log's row at the fold's (stream, version) still has the hash the fold was
  made from: a log rewritten under it refuses the fold too.
A refused or missing fold costs a full fold from the log, never a wrong profile.
"""

from __future__ import annotations

import hmac
import json

from ledger.domain.candidate import Positioning
from ledger.domain.referential import Referential
from ledger.keys import KeyRing
from ledger.store.db import Database
from ledger.store.schema import ANSWER_TYPE

MAC_INFO = b"ledger positioning folds v1"
KEEP_EVERY = 64  # answers read past a kept fold before a newer one is kept


class PositioningFolds:
    """Folds a candidate's answers from the latest valid kept fold, and keeps newer ones."""

    def __init__(self, db: Database, keyring: KeyRing):
        self.db = db
        self.keyring = keyring

    def _mac(self, candidate: str, hash_hex: str, state: str) -> str:
        return self.keyring.master_mac(MAC_INFO, candidate, hash_hex, state)

    def positioning(self, ref: Referential, candidate: str) -> Positioning:
        """The candidate's positioning as of the log's head, under `ref`."""
        fold = self._kept(ref, candidate) or Positioning(referential=ref.version)
        last_hash = ""
        rows = self.db.rows(
            "SELECT version, type, data, hash FROM ledger_events"
            " WHERE stream = ? AND version > ? ORDER BY version",
            (candidate, fold.version),
        )
        for version, type_name, data, hash_hex in rows:
            fold.fold(ref, version, json.loads(data) if type_name == ANSWER_TYPE else None)
            last_hash = hash_hex
        if fold.answers and len(rows) >= KEEP_EVERY:
            self._keep(candidate, fold, last_hash)
        return fold

    def _kept(self, ref: Referential, candidate: str) -> Positioning | None:
        """The kept fold, if its MAC verifies, the log still agrees and `ref` is the same."""
        found = self.db.rows(
            "SELECT f.version, f.state, f.hash, f.mac, e.hash FROM positioning_folds f"
            " LEFT JOIN ledger_events e ON e.stream = f.candidate AND e.version = f.version"
            " WHERE f.candidate = ?",
            (candidate,),
        )
        if not found:
            return None
        version, state, hash_hex, mac, logged = found[0]
        if logged != hash_hex or not hmac.compare_digest(
            mac, self._mac(candidate, hash_hex, state)
        ):
            return None
        fold = Positioning.from_state(json.loads(state))
        return fold if (fold.version, fold.referential) == (version, ref.version) else None

    def _keep(self, candidate: str, fold: Positioning, hash_hex: str) -> None:
        """Keep the candidate's fold, unless a newer one is kept already (a lost race)."""
        state = json.dumps(fold.to_state(), sort_keys=True, separators=(",", ":"))
        mac = self._mac(candidate, hash_hex, state)
        with self.db.write(lock=None) as cur:
            cur.execute(
                "INSERT INTO positioning_folds (candidate, version, hash, state, mac)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (candidate) DO UPDATE SET"
                " version = excluded.version, hash = excluded.hash, state = excluded.state,"
                " mac = excluded.mac WHERE positioning_folds.version <= excluded.version",
                (candidate, fold.version, hash_hex, state, mac),
            )
