"""The eventsourcing application recorder that writes v1 envelopes.

One write transaction, under the append lock: read the chain head, give each
event the next `seq`, link `prev`, hash, sign, insert. The event and its chain
link are one row, so neither can exist without the other. A (stream, version)
already taken means the writer worked on a stale aggregate: ConcurrencyConflict.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import (
    ApplicationRecorder,
    IntegrityError,
    Notification,
    StoredEvent,
    Subscription,
)

from ledger import crypto, envelope
from ledger.domain import clock
from ledger.envelope import Envelope
from ledger.keys import KeyRing
from ledger.store.db import Database, UniqueViolation
from ledger.store.mapper import LedgerStoredEvent

KEY_EVENT_TYPE = "keys.KeyActivated"
KEY_STREAM_NAMESPACE = uuid.UUID("6d1c1f0e-43a5-4e8e-9a43-2b0b6c1f7a11")

INSERT = (
    "INSERT INTO ledger_events (seq, id, stream, version, type, time, data, prev, hash, kid, sig)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
COLUMNS = "seq, id, stream, version, type, time, data, prev, hash, kid, sig"


class ConcurrencyConflict(IntegrityError):
    """A stream position was already written: the command ran on stale state."""


def key_stream(kid: str) -> str:
    return str(uuid.uuid5(KEY_STREAM_NAMESPACE, kid))


def row_to_envelope(row: Sequence[Any]) -> Envelope:
    return Envelope(*row)


class LedgerRecorder(ApplicationRecorder):
    """Stores events as signed, hash-chained envelopes in `ledger_events`."""

    def __init__(self, db: Database, keyring: KeyRing, signing_threads: int = 1):
        self.db = db
        self.keyring = keyring
        self.signing_threads = signing_threads
        self.writes = 0  # appends by this process: readers' caches watch it
        self._announced: set[str] = set()

    # --- writing ----------------------------------------------------------

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> list[int]:
        key = self.keyring.active()
        try:
            with self.db.write() as cur:
                cur.execute("SELECT seq, hash FROM ledger_events ORDER BY seq DESC LIMIT 1")
                head = cur.fetchone()
                seq, prev = (head[0], head[1]) if head else (0, crypto.ZERO_HASH)
                events = list(stored_events)
                if key.kid not in self._announced and not self._is_announced(cur, key.kid):
                    events.insert(0, self._announcement(key))
                linked = []
                for stored in events:
                    row, digest = self._link(seq + 1, prev, stored)
                    linked.append((row, digest))
                    seq, prev = row[0], digest.hex()
                signatures = key.sign_many([digest for _, digest in linked], self.signing_threads)
                rows = [
                    (*row, digest.hex(), key.kid, crypto.b64url(signature))
                    for (row, digest), signature in zip(linked, signatures, strict=True)
                ]
                cur.executemany(INSERT, rows)
        except UniqueViolation as exc:
            raise ConcurrencyConflict(str(exc)) from exc
        self._announced.add(key.kid)
        self.writes += 1
        return [row[0] for row in rows[len(rows) - len(stored_events) :]]

    def announce_active_key(self) -> int | None:
        """Log the active key's public JWK now, if not yet; return its seq (None if known)."""
        before = self.max_notification_id() or 0
        self.insert_events([])
        after = self.max_notification_id() or 0
        return after if after > before else None

    @staticmethod
    def _link(seq: int, prev: str, stored: StoredEvent) -> tuple[tuple, bytes]:
        """The row's hashed members at this place in the chain, and its SHA-256 digest."""
        assert isinstance(stored, LedgerStoredEvent), "events must go through LedgerMapper"
        stream = str(stored.originator_id)
        data_json = stored.state.decode("utf-8")
        row = (
            seq, stored.event_id, stream, stored.originator_version, stored.topic, stored.time,
            data_json, prev,
        )  # fmt: skip
        return row, crypto.sha256(envelope.hashed_bytes(*row))

    def _is_announced(self, cur: Any, kid: str) -> bool:
        cur.execute(
            "SELECT 1 FROM ledger_events WHERE stream = ? AND version = 1", (key_stream(kid),)
        )
        return cur.fetchone() is not None

    @staticmethod
    def _announcement(key: crypto.SigningKey) -> LedgerStoredEvent:
        """A key's first use is preceded by its public JWK, so the log alone yields the JWKS."""
        payload = {"kid": key.kid, "jwk": key.public_jwk()}
        return LedgerStoredEvent(
            originator_id=key_stream(key.kid),
            originator_version=1,
            topic=KEY_EVENT_TYPE,
            state=crypto.canonical_json(payload),
            time=clock.format_time(clock.now()),
            event_id=str(uuid.uuid4()),
        )

    # --- reading ----------------------------------------------------------

    def select_events(
        self,
        originator_id: UUID | str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> list[StoredEvent]:
        sql = "SELECT stream, version, type, data, time, id FROM ledger_events WHERE stream = ?"
        params: list[Any] = [str(originator_id)]
        if gt is not None:
            sql += " AND version > ?"
            params.append(gt)
        if lte is not None:
            sql += " AND version <= ?"
            params.append(lte)
        sql += " ORDER BY version DESC" if desc else " ORDER BY version ASC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        with self.db.read() as cur:
            cur.execute(sql, params)
            rows = cur.fetchall()
        return [
            LedgerStoredEvent(
                originator_id=UUID(r[0]),
                originator_version=r[1],
                topic=r[2],
                state=r[3].encode("utf-8"),
                time=r[4],
                event_id=r[5],
            )
            for r in rows
        ]

    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> list[Notification]:
        after = 0 if start is None else (start - 1 if inclusive_of_start else start)
        envelopes = self.envelopes(after=after, limit=limit, stop=stop, types=topics)
        return [
            Notification(
                id=e.seq,
                originator_id=e.stream,
                originator_version=e.version,
                topic=e.type,
                state=e.data_json.encode("utf-8"),
            )
            for e in envelopes
        ]

    def max_notification_id(self) -> int | None:
        with self.db.read() as cur:
            cur.execute("SELECT MAX(seq) FROM ledger_events")
            return cur.fetchone()[0]

    def subscribe(self, gt: int | None = None, topics: Sequence[str] = ()) -> Subscription:
        raise NotImplementedError("projections poll the log; see ledger.projections.runner")

    # --- envelopes --------------------------------------------------------

    def envelopes(
        self,
        after: int = 0,
        limit: int = 1000,
        stop: int | None = None,
        types: Sequence[str] = (),
    ) -> list[Envelope]:
        """Envelopes with seq > after (and <= stop), ascending."""
        sql = f"SELECT {COLUMNS} FROM ledger_events WHERE seq > ?"
        params: list[Any] = [after]
        if stop is not None:
            sql += " AND seq <= ?"
            params.append(stop)
        if types:
            sql += f" AND type IN ({', '.join('?' * len(types))})"
            params.extend(types)
        sql += " ORDER BY seq LIMIT ?"
        params.append(limit)
        with self.db.read() as cur:
            cur.execute(sql, params)
            return [row_to_envelope(r) for r in cur.fetchall()]

    def iter_envelopes(self, after: int = 0, page: int = 2000) -> Iterator[Envelope]:
        """Every envelope after `after`, paged so memory stays flat."""
        while True:
            batch = self.envelopes(after=after, limit=page)
            yield from batch
            if len(batch) < page:
                return
            after = batch[-1].seq

    def envelope(self, seq: int) -> Envelope | None:
        found = self.envelopes(after=seq - 1, limit=1, stop=seq)
        return found[0] if found else None

    def stream_envelopes(self, stream: str) -> list[Envelope]:
        """Every envelope of one stream, by version: an aggregate's history as signed."""
        with self.db.read() as cur:
            cur.execute(
                f"SELECT {COLUMNS} FROM ledger_events WHERE stream = ? ORDER BY version", (stream,)
            )
            return [row_to_envelope(r) for r in cur.fetchall()]

    def key_jwks(self) -> list[dict[str, Any]]:
        """Public JWKs of every key ever announced in the log, oldest first."""
        return [e.data["jwk"] for e in self.iter_envelopes_of_type(KEY_EVENT_TYPE)]

    def iter_envelopes_of_type(self, type_name: str) -> list[Envelope]:
        with self.db.read() as cur:
            cur.execute(
                f"SELECT {COLUMNS} FROM ledger_events WHERE type = ? ORDER BY seq", (type_name,)
            )
            return [row_to_envelope(r) for r in cur.fetchall()]
