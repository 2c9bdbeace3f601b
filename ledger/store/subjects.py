"""Personal data sealed per person, erasable by deleting one key (format section 4).

Each subject has a random AES-256 data key, stored wrapped by the master key
outside the log. Event data carries `{"sealed": ..., "subject": ...}`; the
hash covers that sealed form, so erasing the key leaves every signature valid
while the person's data can no longer be read anywhere. Keys are not cached
across calls: an erasure on one node is effective on all at once.

Free text that may be about several people (a session's incident report) is
sealed under a subject of its own, linked to each of theirs: erasing any one
of them erases it too. After an erasure the store is purged, so the deleted
key is not left behind in free pages, a write-ahead log or dead tuples.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

from ledger import crypto
from ledger.domain import clock
from ledger.keys import KeyRing
from ledger.store.db import Cursor, Database, StoreError

log = logging.getLogger("ledger.subjects")
LINK_LOCK = 0x5EA1ED  # PostgreSQL advisory lock: linking and erasing never interleave


class SubjectErased(Exception):
    """The subject's key was deleted: their data is gone for good."""


class SubjectVault:
    def __init__(self, db: Database, keyring: KeyRing):
        self.db = db
        self.keyring = keyring

    def _wrap(self, subject: str, data_key: bytes) -> str:
        return crypto.b64url(crypto.seal(self.keyring.master_key(), data_key, subject.encode()))

    def _unwrap(self, subject: str, wrapped: str) -> bytes:
        return crypto.unseal(
            self.keyring.master_key(), crypto.b64url_decode(wrapped), subject.encode()
        )

    def _key(self, subject: str, create: bool) -> bytes:
        row = self.db.row("SELECT wrapped, erased FROM subject_keys WHERE subject = ?", (subject,))
        if row is None and create:
            return self._create_key(subject)
        if row is None or row[1] is not None:
            raise SubjectErased(subject)
        return self._unwrap(subject, row[0])

    def _create_key(self, subject: str) -> bytes:
        wrapped = self._wrap(subject, crypto.new_data_key())
        with self.db.write(lock=None) as cur:
            cur.execute(
                "INSERT INTO subject_keys (subject, wrapped, created) VALUES (?, ?, ?)"
                " ON CONFLICT (subject) DO NOTHING",
                (subject, wrapped, clock.format_time(clock.now())),
            )
        return self._key(subject, create=False)

    def seal(self, subject: str, value: Any) -> dict[str, str]:
        """Seal a JSON value for `subject`; creates their key on first use.

        For a subject already erased the value is sealed under a key that is
        thrown away at once: it is born erased, as it would be a moment later.
        """
        try:
            key = self._key(subject, create=True)
        except SubjectErased:
            key = crypto.new_data_key()
        return self._sealed(key, subject, value)

    @staticmethod
    def _sealed(key: bytes, subject: str, value: Any) -> dict[str, str]:
        plaintext = json.dumps(value, ensure_ascii=False, sort_keys=True).encode()
        sealed = crypto.seal(key, plaintext, subject.encode())
        return {"sealed": crypto.b64url(sealed), "subject": subject}

    def unseal(self, sealed: dict[str, str]) -> Any:
        """The value, or raises SubjectErased once the subject's key is deleted."""
        subject = sealed["subject"]
        key = self._key(subject, create=False)
        raw = crypto.unseal(key, crypto.b64url_decode(sealed["sealed"]), subject.encode())
        return json.loads(raw)

    def open_or_none(self, sealed: dict[str, str] | None) -> Any:
        """For display: the value, or None when erased (or absent)."""
        if not sealed:
            return None
        try:
            return self.unseal(sealed)
        except (SubjectErased, crypto.CryptoError):
            return None

    def seal_shared(self, subject: str, owners: Iterable[str], value: Any) -> dict[str, str]:
        """Seal `value` under `subject`, erased with any of `owners` (the people it may be about)."""
        owners = sorted(set(owners))
        if any(self.is_erased(owner) for owner in owners):
            return self._sealed(crypto.new_data_key(), subject, value)  # born erased
        sealed = self.seal(subject, value)
        with self.db.write(lock=LINK_LOCK) as cur:
            cur.executemany(
                "INSERT INTO subject_links (owner, subject) VALUES (?, ?)"
                " ON CONFLICT (owner, subject) DO NOTHING",
                [(owner, subject) for owner in owners],
            )
            marks = ", ".join("?" * len(owners))
            if owners:
                cur.execute(
                    f"SELECT 1 FROM subject_keys WHERE erased IS NOT NULL AND subject IN ({marks})",
                    owners,
                )
                if cur.fetchone():  # an owner was erased meanwhile
                    self._erase_rows(cur, [subject])
        return sealed

    def erase(self, subject: str) -> str:
        """Delete the subject's key and those of its linked texts: "erased", "already" or "unknown"."""
        with self.db.write(lock=LINK_LOCK) as cur:
            cur.execute("SELECT erased FROM subject_keys WHERE subject = ?", (subject,))
            row = cur.fetchone()
            if row is None:
                return "unknown"
            if row[0] is not None:
                return "already"
            cur.execute("SELECT subject FROM subject_links WHERE owner = ?", (subject,))
            self._erase_rows(cur, [subject, *(r[0] for r in cur.fetchall())])
        self.purge()
        return "erased"

    @staticmethod
    def _erase_rows(cur: Cursor, subjects: list[str]) -> None:
        now = clock.format_time(clock.now())
        for subject in subjects:
            cur.execute(
                "UPDATE subject_keys SET wrapped = NULL, erased = ? WHERE subject = ?"
                " AND erased IS NULL",
                (now, subject),
            )
            cur.execute("DELETE FROM subject_links WHERE subject = ?", (subject,))

    def purge(self) -> None:
        """Make erased keys unrecoverable from the database files; a failure is only logged."""
        try:
            self.db.purge_deleted("subject_keys")
        except StoreError as exc:
            log.warning(
                "erased keys may remain in free database space until the next purge: %s", exc
            )

    def is_erased(self, subject: str) -> bool:
        row = self.db.row("SELECT erased FROM subject_keys WHERE subject = ?", (subject,))
        return row is not None and row[0] is not None
