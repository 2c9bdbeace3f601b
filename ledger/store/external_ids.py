"""Which candidate holds a national external id (INE), kept outside the log.

External ids are national and unique, so a second registration of the same id
is refused. The log holds them only sealed per subject, so the lookup is a keyed
hash (HMAC under a key derived from the master key: an INE has too little
entropy for a plain hash) in a table with that hash as primary key, which makes
the check race-safe: two concurrent registrations cannot both insert it. It
lives outside the log so that an erasure can delete it.
"""

from __future__ import annotations

from datetime import timedelta

from ledger.domain import clock
from ledger.keys import KeyRing
from ledger.store.db import Database

INDEX_INFO = b"crcn-ledger external-id index v1"
STALE_AFTER = timedelta(minutes=5)
"""A reservation this old whose candidate is not in the log was left by a crash."""


class ExternalIds:
    def __init__(self, db: Database, keyring: KeyRing):
        self.db = db
        self.keyring = keyring

    def blind(self, external_id: str) -> str:
        """The keyed hash of the id, case-insensitive (INEs are letters and digits)."""
        return self.keyring.master_mac(INDEX_INFO, external_id.strip().casefold())

    def holder(self, external_id: str) -> tuple[str, str] | None:
        """(candidate, subject) the index names for the id: a hint, to check against the log."""
        with self.db.read() as cur:
            cur.execute(
                "SELECT candidate, subject FROM external_ids WHERE blind = ?",
                (self.blind(external_id),),
            )
            row = cur.fetchone()
        return (row[0], row[1]) if row else None

    def claim(self, external_id: str, candidate: str, subject: str) -> str:
        """Reserve the id for `candidate`; returns whoever holds it now (maybe `candidate`)."""
        blind = self.blind(external_id)
        with self.db.write(lock=None) as cur:
            cur.execute(
                "INSERT INTO external_ids (blind, candidate, subject, created) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (blind) DO NOTHING",
                (blind, candidate, subject, clock.format_time(clock.now())),
            )
            cur.execute("SELECT candidate FROM external_ids WHERE blind = ?", (blind,))
            return cur.fetchone()[0]

    def take_over(self, external_id: str, stale: str, candidate: str, subject: str) -> bool:
        """Move a reservation whose registration never reached the log; False if raced.

        Only one older than STALE_AFTER: a younger one may belong to a registration
        still being saved, which must keep it.
        """
        blind = self.blind(external_id)
        now = clock.now()
        with self.db.write(lock=None) as cur:
            cur.execute(
                "UPDATE external_ids SET candidate = ?, subject = ?, created = ?"
                " WHERE blind = ? AND candidate = ? AND created < ?",
                (candidate, subject, clock.format_time(now), blind, stale,
                 clock.format_time(now - STALE_AFTER)),
            )  # fmt: skip
            cur.execute("SELECT candidate FROM external_ids WHERE blind = ?", (blind,))
            return cur.fetchone()[0] == candidate

    def is_empty(self) -> bool:
        return not self.db.scalar("SELECT COUNT(*) FROM external_ids")

    def release(self, candidate: str) -> None:
        """Drop a reservation whose registration failed to save."""
        with self.db.write(lock=None) as cur:
            cur.execute("DELETE FROM external_ids WHERE candidate = ?", (candidate,))

    def forget(self, subject: str) -> None:
        """On erasure: the person may register again, and no trace of the id is left."""
        with self.db.write(lock=None) as cur:
            cur.execute("DELETE FROM external_ids WHERE subject = ?", (subject,))
