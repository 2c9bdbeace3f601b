"""The eventsourcing Application wired to the envelope recorder, and the `Ledger` facade.

`Ledger` is what the API, CLI and projections hold: the database, the key
ring, the application (repository + save), the personal-data vault, and the
trust anchor with the key history endorsed from it.
"""

from __future__ import annotations

import pickle
import threading
from typing import Any

from eventsourcing.application import Application, Repository
from eventsourcing.persistence import ApplicationRecorder, Mapper

from ledger import trust
from ledger.attestation import ca as attestation_ca
from ledger.config import Config
from ledger.crypto import SigningKey
from ledger.keys import KeyRing
from ledger.store import migrations
from ledger.store.db import Database, LedgerMissing, connect
from ledger.store.mapper import LedgerMapper
from ledger.store.recorder import LedgerRecorder
from ledger.store.subjects import SubjectVault
from ledger.trust import Anchor, KeyHistory, TrustError


class LockedRepository(Repository):
    """Repository whose cached aggregates are never copied while another thread updates them.

    eventsourcing fast-forwards a cached aggregate in place under a lock, but
    deep-copies it for the caller outside that lock, so a concurrent write to
    the same aggregate fails the copy ("dictionary changed size during
    iteration"). A striped lock around the whole cached read closes the gap
    without serializing reads of different aggregates.

    The caller's copy is made by a pickle round trip rather than `deepcopy`: the
    same deep, independent copy (aggregates hold plain data), about three times
    cheaper, and a certification answer loads two aggregates.
    """

    STRIPES = 64

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._stripes = [threading.Lock() for _ in range(self.STRIPES)]

    def get(self, aggregate_id: Any, *, version: int | None = None, **kwargs: Any) -> Any:
        if version is not None or not self.cache:
            return super().get(aggregate_id, version=version, **kwargs)
        with self._stripes[hash(aggregate_id) % self.STRIPES]:
            copied = kwargs.pop("deepcopy_from_cache", True)
            cached = super().get(aggregate_id, deepcopy_from_cache=False, **kwargs)
            return pickle.loads(pickle.dumps(cached, pickle.HIGHEST_PROTOCOL)) if copied else cached


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

    def construct_repository(self) -> Repository:
        plain = super().construct_repository()
        return LockedRepository(
            event_store=plain.event_store,
            snapshot_store=plain.snapshot_store,
            cache_maxsize=int(self.env["AGGREGATE_CACHE_MAXSIZE"]),
            fastforward=plain.fastforward,
            fastforward_skipping=plain.fastforward_skipping,
            deepcopy_from_cache=plain.deepcopy_from_cache,
        )


class Ledger:
    """Everything one process needs to append to and read the ledger."""

    def __init__(self, config: Config, db: Database | None = None):
        self.config = config
        self.db = db or connect(config.database_url, config.db_timeouts)
        self.keyring = KeyRing(config.keys_dir, config.master_key)
        self.recorder = LedgerRecorder(
            self.db, self.keyring, config.signing_threads, anchor=self.trust_anchor
        )
        self.app = LedgerApplication(self.recorder)
        self.vault = SubjectVault(self.db, self.keyring)
        self._anchor: tuple[Anchor, str] | None = None
        self._anchor_read = False

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
            migrations.check(ledger.db)  # serving never migrates: `ledger init` does, once
        except BaseException:
            ledger.close()
            raise
        return ledger

    def init(self) -> tuple[int, int]:
        """Migrate the schema and, if none exist yet, create the first signing key, anchor,
        master key and the attestation CA with its document-signing certificate.

        Returns the schema version before and after (equal: nothing to migrate).
        """
        versions = migrations.migrate(self.db)
        if not self.keyring.exists():
            self.keyring.create()
        self.keyring.ensure_master_key()
        attestation_ca.ensure_files(self.config)
        if not self.config.trust_anchor and not (self.config.keys_dir / trust.ANCHOR_FILE).exists():
            self._write_anchor()
        return versions

    def _write_anchor(self) -> None:
        """Record the anchor: the log's own first key if it has one, else the active key.

        The database is untrusted: the log's first key is pinned only when this
        node holds its private key, so a log rewritten under someone else's key
        is never adopted as ours.
        """
        genesis = self.recorder.iter_envelopes_of_type(trust.KEY_ACTIVATED)[:1]
        history = KeyHistory.fold(genesis, None)
        public = history.public_key(history.anchor_kid or "")
        if public is None:
            public = self.keyring.active().public_raw
        elif public not in {key.public_raw for key in self.keyring.all()}:
            raise TrustError(
                "the log's first key is not held in the keys directory: set LEDGER_TRUST_ANCHOR"
                " to the published anchor instead of deriving it from the database"
            )
        Anchor.of(public, self.config.log_origin).save(self.config.keys_dir)
        self._anchor_read = False

    def check_trust(self) -> Anchor:
        """The anchor this node serves under; TrustError when it cannot vouch for its log.

        Serving without an anchor would let the database vouch for its own keys,
        and an anchor for another origin would make every checkpoint fail audit.
        """
        anchor = self.trust_anchor()
        if anchor is None:
            raise TrustError(
                "no trust anchor: run `ledger init` or set LEDGER_TRUST_ANCHOR to the published one"
            )
        if anchor.origin != self.config.log_origin:
            raise TrustError(
                f"the trust anchor is for log origin {anchor.origin!r},"
                f" not LEDGER_LOG_ORIGIN {self.config.log_origin!r}"
            )
        history = self.key_history()
        if history.started and history.current is None:
            why = history.rejected[0][1] if history.rejected else "its keys were retired"
            raise TrustError(f"refusing to serve this log: {why}")
        return anchor

    def trust_anchor(self) -> Anchor | None:
        """The configured anchor (LEDGER_TRUST_ANCHOR, else `anchor.json`), or None."""
        found = self.trust_anchor_source()
        return found[0] if found else None

    def trust_anchor_source(self) -> tuple[Anchor, str] | None:
        """The anchor and where it came from; read once per process."""
        if not self._anchor_read:
            self._anchor = trust.configured_anchor(self.config.trust_anchor, self.config.keys_dir)
            self._anchor_read = True
        return self._anchor

    def key_history(self) -> KeyHistory:
        """The keys endorsed by the chain rooted in the anchor, as of the log's head."""
        return self.recorder.key_history()

    def signing_key(self) -> SigningKey:
        """The key that signs now: the chain's current key, held in the key ring."""
        return self.recorder.signing_key()

    def save(self, *aggregates: Any) -> list[int]:
        """Append the aggregates' pending events atomically; return their seqs."""
        recordings = self.app.save(*aggregates)
        return [r.notification.id for r in recordings]

    def close(self) -> None:
        self.app.close()
        self.db.close()
