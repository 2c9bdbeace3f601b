"""Which pupils a school has, and which courses and certificates each candidate has, from the log.

Institution documents list rows the read model holds; the database is untrusted,
so a deleted row would leave a pupil or a certificate out of a signed document
unseen. These lists are therefore folded from the signed events themselves
(`CandidateRegistered` with the school, `CourseStarted`, `CertificateIssued`),
read through the (type, seq) index. A kept fold (`roster_folds`, one row per
school or candidate) lets a request read only the events after it, as
positioning folds do (ledger/store/positioning.py); it counts only when its MAC
verifies under a key derived from the master key and the log's row at its seq
still has the hash it was made from. A missing, stale, rolled-back or forged
fold only costs reading further back, never a wrong list.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass, field

from ledger.domain.candidate import Candidate
from ledger.domain.certificate import Certificate
from ledger.domain.course import Course
from ledger.keys import KeyRing
from ledger.store.db import Database

MAC_INFO = b"ledger roster folds v1"
KEEP_EVERY = 64  # events read past a kept fold before a newer one is kept
REGISTERED = Candidate.Registered.TYPE
STARTED = Course.Started.TYPE
ISSUED = Certificate.Issued.TYPE
TYPES = (REGISTERED, STARTED, ISSUED)
COURSES, CERTIFICATES = "courses", "certificates"


@dataclass
class Roster:
    """Candidates (a school's, or one) with their course ids and certificate codes, in log order."""

    school: str | None
    seq: int = 0  # the last event folded
    hash: str = ""  # that event's hash
    pupils: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    read: int = 0  # log rows read past the kept fold by this request

    def fold(self, seq: int, type_name: str, stream: str, data: dict, hash_hex: str) -> None:
        if type_name == REGISTERED and self.school and data.get("school") == self.school:
            self.pupils.setdefault(stream, {COURSES: [], CERTIFICATES: []})
        elif type_name in (STARTED, ISSUED) and data.get("candidate") in self.pupils:
            listed = self.pupils[data["candidate"]]
            if type_name == STARTED:
                listed[COURSES].append(stream)
            else:
                listed[CERTIFICATES].append(data["code"])
        self.seq, self.hash = seq, hash_hex


def _key(school: str | None, candidate: str | None) -> str:
    return f"school:{school}" if school else f"candidate:{candidate}"


class Rosters:
    """Folds rosters from the latest valid kept fold, up to a bound, and keeps newer ones."""

    def __init__(self, db: Database, keyring: KeyRing):
        self.db = db
        self.keyring = keyring

    def of_school(self, school: str, upto: int) -> Roster:
        """The pupils registered with `school` by `upto`, each with their courses and certificates."""
        return self._fold(_key(school, None), Roster(school), upto)

    def of_candidate(self, candidate: str, upto: int, registered: tuple[int, str]) -> Roster:
        """One candidate's courses and certificates by `upto`; none precedes their checked
        registration (`registered`: its seq and hash), so the log is read from there."""
        seq, hash_hex = registered
        listed = {candidate: {COURSES: [], CERTIFICATES: []}}
        empty = Roster(None, seq=seq, hash=hash_hex, pupils=listed)
        return self._fold(_key(None, candidate), empty, upto)

    def _fold(self, key: str, empty: Roster, upto: int) -> Roster:
        roster = self._kept(key, empty.school, upto) or empty
        rows = self.db.rows(
            "SELECT seq, type, stream, data, hash FROM ledger_events"
            f" WHERE type IN ({', '.join('?' * len(TYPES))}) AND seq > ? AND seq <= ?"
            " ORDER BY seq",
            (*TYPES, roster.seq, upto),
        )
        for seq, type_name, stream, data, hash_hex in rows:
            roster.fold(int(seq), type_name, stream, json.loads(data), hash_hex)
        roster.read = len(rows)
        if len(rows) >= KEEP_EVERY:
            self._keep(key, roster)
        return roster

    def _mac(self, key: str, seq: int, hash_hex: str, state: str) -> str:
        return self.keyring.master_mac(MAC_INFO, key, str(seq), hash_hex, state)

    def _kept(self, key: str, school: str | None, upto: int) -> Roster | None:
        """The kept fold, if its MAC verifies, the log still agrees and it is not past `upto`."""
        found = self.db.rows(
            "SELECT f.seq, f.hash, f.state, f.mac, e.hash FROM roster_folds f"
            " LEFT JOIN ledger_events e ON e.seq = f.seq WHERE f.scope = ?",
            (key,),
        )
        if not found:
            return None
        seq, hash_hex, state, mac, logged = found[0]
        if seq > upto or logged != hash_hex:
            return None
        if not hmac.compare_digest(mac, self._mac(key, seq, hash_hex, state)):
            return None
        return Roster(school, seq=seq, hash=hash_hex, pupils=json.loads(state))

    def _keep(self, key: str, roster: Roster) -> None:
        """Keep the fold, unless a newer one is kept already (a lost race)."""
        state = json.dumps(roster.pupils, sort_keys=True, separators=(",", ":"))
        mac = self._mac(key, roster.seq, roster.hash, state)
        with self.db.write(lock=None) as cur:
            cur.execute(
                "INSERT INTO roster_folds (scope, seq, hash, state, mac)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (scope) DO UPDATE SET"
                " seq = excluded.seq, hash = excluded.hash, state = excluded.state,"
                " mac = excluded.mac WHERE roster_folds.seq <= excluded.seq",
                (key, roster.seq, roster.hash, state, mac),
            )
