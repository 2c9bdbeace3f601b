"""The eventsourcing Application wired to the envelope recorder, and the `Ledger` facade.

`Ledger` is what the API, CLI and projections hold: the database, the key
ring, the application (repository + save) and the personal-data vault.
"""

from __future__ import annotations

from typing import Any

from eventsourcing.application import Application
from eventsourcing.persistence import ApplicationRecorder, Mapper

from ledger.config import Config
from ledger.keys import KeyRing
from ledger.store.db import Database, LedgerMissing, connect
from ledger.store.mapper import LedgerMapper
from ledger.store.recorder import LedgerRecorder
from ledger.store.subjects import SubjectVault


class LedgerApplication(Application):
    """eventsourcing Application whose events are stored as signed envelopes."""

    name = "Ledger"

    def __init__(self, recorder: LedgerRecorder, cache_size: int = 20_000):
        self._ledger_recorder = recorder
        super().__init__(
            env={
                "PERSISTENCE_MODULE": "eventsourcing.popo",
                "AGGREGATE_CACHE_MAXSIZE": str(cache_size),
                "AGGREGATE_CACHE_FASTFORWARD": "y",
                "DEEPCOPY_FROM_AGGREGATE_CACHE": "y",
            }
        )

    def construct_mapper(self) -> Mapper:
        return LedgerMapper()

    def construct_recorder(self) -> ApplicationRecorder:
        return self._ledger_recorder


class Ledger:
    """Everything one process needs to append to and read the ledger."""

    def __init__(self, config: Config, db: Database | None = None):
        self.config = config
        self.db = db or connect(config.database_url, config.db_timeouts)
        self.keyring = KeyRing(config.keys_dir, config.master_key)
        self.recorder = LedgerRecorder(self.db, self.keyring, config.signing_threads)
        self.app = LedgerApplication(self.recorder)
        self.vault = SubjectVault(self.db, self.keyring)

    @classmethod
    def open_existing(cls, config: Config) -> Ledger:
        """The ledger `ledger init` created; LedgerMissing rather than a new, empty one.

        A missing SQLite file (a wrong path, a lost volume) must not silently
        start a second history signed with the production key.
        """
        ledger = cls(config)
        try:
            if not ledger.db.exists():
                where = config.database_url.split("@")[-1]
                raise LedgerMissing(f"no ledger at {where}; create it with `ledger init`")
            ledger.db.create_schema()  # adds tables of newer versions; never creates a ledger
        except BaseException:
            ledger.close()
            raise
        return ledger

    def init(self) -> None:
        """Create tables and, if none exist yet, the first signing key and master key."""
        self.db.create_schema()
        if not self.keyring.exists():
            self.keyring.create()
        self.keyring.ensure_master_key()

    def save(self, *aggregates: Any) -> list[int]:
        """Append the aggregates' pending events atomically; return their seqs."""
        recordings = self.app.save(*aggregates)
        return [r.notification.id for r in recordings]

    def close(self) -> None:
        self.app.close()
        self.db.close()
