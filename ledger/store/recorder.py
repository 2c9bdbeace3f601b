"""The eventsourcing application recorder that writes v1 envelopes.

An append holds the append lock only for what depends on the chain: read the
head, give each event the next `seq`, link `prev`, hash, sign, insert, commit.
Everything else (canonical payload, the envelope's JCS bytes around the link,
payload checks) is done before, by the writer's own thread. Concurrent writers
of one process share that transaction (group commit, ledger/store/group_commit.py);
across processes the database lock orders them.
The event and its chain link are one row, so neither can exist without the other.
A (stream, version) already taken means the writer worked on a stale aggregate:
ConcurrencyConflict, for that request only. The signing key is the one the key
endorsement chain (ledger/trust.py) says is current; the first write of a log
announces the trust anchor.
"""

from __future__ import annotations

import itertools
import json
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.persistence import (
    ApplicationRecorder,
    IntegrityError,
    Notification,
    StoredEvent,
    Subscription,
)

from ledger import crypto, trust
from ledger.domain import clock
from ledger.domain.payload import check_payload
from ledger.envelope import ENVELOPE_FIELDS, Envelope
from ledger.keys import KeyFileError, KeyRing
from ledger.lru import LRU
from ledger.store import observers
from ledger.store.db import COPY_MIN_ROWS, Database, UniqueViolation
from ledger.store.group_commit import GroupCommit, Request
from ledger.store.linking import Linked, Prepared, prepare
from ledger.store.mapper import LedgerStoredEvent
from ledger.trust import Anchor, KeyHistory, TrustError

KEY_STREAM_NAMESPACE = uuid.UUID("6d1c1f0e-43a5-4e8e-9a43-2b0b6c1f7a11")

TABLE = "ledger_events"
INSERTED = ENVELOPE_FIELDS
INSERT = f"INSERT INTO {TABLE} ({', '.join(INSERTED)}) VALUES ({', '.join('?' * len(INSERTED))})"
COLUMNS = ", ".join(INSERTED)
HEAD = "SELECT seq, hash FROM ledger_events ORDER BY seq DESC LIMIT 1"
RECENT_HASHES = 4096  # hashes of this process's latest appends, which writes answer with


class ConcurrencyConflict(IntegrityError):
    """A stream position was already written: the command ran on stale state."""


def key_stream(kid: str) -> str:
    return str(uuid.uuid5(KEY_STREAM_NAMESPACE, kid))


def row_to_envelope(row: Sequence[Any]) -> Envelope:
    return Envelope(*row)


KeyEventsBuilder = Callable[[KeyHistory], list[LedgerStoredEvent]]
"""Key events to write first, given the key history as of the chain head."""


def _no_key_events(history: KeyHistory) -> list[LedgerStoredEvent]:
    return []


@dataclass(frozen=True)
class _Append:
    """One writer's request: key events to build under the lock, then its prepared events."""

    events: list[Prepared]
    key_events: KeyEventsBuilder


def _key_event(kid: str, version: int, type_name: str, payload: dict) -> LedgerStoredEvent:
    """A key event in the key's own stream, so the store refuses a second introduction."""
    return LedgerStoredEvent(
        originator_id=key_stream(kid),
        originator_version=version,
        topic=type_name,
        state=crypto.canonical_json(payload),
        time=clock.format_time(clock.now()),
        event_id=str(uuid.uuid4()),
    )


class LedgerRecorder(ApplicationRecorder):
    """Stores events as signed, hash-chained envelopes in `ledger_events`."""

    def __init__(
        self,
        db: Database,
        keyring: KeyRing,
        signing_threads: int = 1,
        anchor: Callable[[], Anchor | None] = lambda: None,
    ):
        self.db = db
        self.keyring = keyring
        self.signing_threads = signing_threads
        self.anchor = anchor
        self.writes = 0  # appends by this process: readers' caches watch it
        self._keys_lock = threading.Lock()
        self._history: KeyHistory | None = None
        self._history_upto = 0
        self._group = GroupCommit(self._write_group)
        self._written: LRU[str] = LRU(RECENT_HASHES)  # seq -> hash of this process's commits

    # --- writing ----------------------------------------------------------

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> list[int]:
        events = [prepare(stored) for stored in stored_events]
        seqs = self._append(events, _no_key_events)
        return seqs[len(seqs) - len(events) :]

    def _append(self, events: list[Prepared], key_events: KeyEventsBuilder) -> list[int]:
        """Append `key_events(history)` then `events`, in a group with other threads' appends."""
        seqs = self._group.submit(_Append(events, key_events))
        self.writes += 1
        return seqs

    def _write_group(self, requests: list[Request]) -> None:
        """Every request in one transaction; after a conflict, each alone, so only stale ones fail."""
        try:
            self._write(requests)
        except UniqueViolation as exc:
            if len(requests) == 1:
                requests[0].fail(ConcurrencyConflict(str(exc)))
                return
            for request in requests:
                if not request.done:
                    self._write_group([request])

    def _write(self, requests: list[Request]) -> None:
        """Under the append lock: read the head, then link, hash and sign each request; insert all.

        The key history is caught up inside the write transaction, so the signer is
        the key the chain says is current at the new seqs, whichever node rotated it;
        each request sees the key events of those before it. Requests are answered
        only after the commit.
        """
        answers: list[tuple[Request, list[int], str]] = []
        events = sum(len(request.payload.events) for request in requests)
        with self.db.write(pipelined=events < COPY_MIN_ROWS) as cur:
            seq, prev, history = self._head(cur)
            rows: list[Iterator[tuple]] = []
            for request in requests:
                try:
                    linked, key_rows, history = self._link(request.payload, seq, prev, history)
                except (TrustError, KeyFileError) as exc:
                    request.fail(exc)
                    continue
                seq, prev = linked.head
                rows += [iter(key_rows), linked.rows(self.signing_threads, start=len(key_rows))]
                answers.append((request, linked.seqs, prev))
            if answers:
                self.db.insert_rows(cur, TABLE, INSERTED, itertools.chain(*rows))
                self.db.notify(cur, seq)  # delivered at commit: wakes the projection runner
        self._remember(history, seq)
        if answers:
            observers.appended(sum(len(seqs) for _, seqs, _ in answers))
        for request, seqs, head_hash in answers:
            if seqs:
                self._written[seqs[-1]] = head_hash
            request.succeed(seqs)

    def _link(
        self, append: _Append, seq: int, prev: str, history: KeyHistory
    ) -> tuple[Linked, list[tuple], KeyHistory]:
        """One request linked after (seq, prev); its key rows, signed now, checked against the
        key history, and the history after them."""
        key, genesis = self._signer(history)
        key_events = ([genesis] if genesis else []) + append.key_events(history)
        linked = Linked(key, seq, prev, [*map(prepare, key_events), *append.events])
        key_rows = list(linked.rows(stop=len(key_events)))
        return linked, key_rows, self._with_key_rows(history, key_rows)

    def _head(self, cur: Any) -> tuple[int, str, KeyHistory]:
        """The chain head and the key history as of it."""
        cur.execute(HEAD)
        head = cur.fetchone()
        seq, prev = (head[0], head[1]) if head else (0, crypto.ZERO_HASH)
        return seq, prev, self._caught_up(cur, seq)

    def _signer(self, history: KeyHistory) -> tuple[crypto.SigningKey, LedgerStoredEvent | None]:
        """The key that signs next, and the genesis event if the log has no key yet."""
        if not history.started:
            key = self.keyring.active()
            anchor = self.anchor()
            if anchor is not None and anchor.kid != key.kid:
                raise KeyFileError(f"the active key {key.kid} is not the trust anchor {anchor.kid}")
            return key, _key_event(key.kid, 1, trust.KEY_ACTIVATED, trust.activation(key))
        if history.current is None:
            why = history.rejected[0][1] if history.rejected else "the log's keys were retired"
            raise KeyFileError(f"no key may sign this log: {why}")
        return self.keyring.get(history.current), None

    @staticmethod
    def _with_key_rows(history: KeyHistory, rows: list[tuple]) -> KeyHistory:
        """The history after our own key events; refuses one the audit would reject."""
        if not rows:
            return history
        history = history.copy()
        for row in rows:
            problem = history.apply(json.loads(Envelope(*row).to_json_line()))
            if problem:
                raise TrustError(problem)
        return history

    def _caught_up(self, cur: Any, head: int) -> KeyHistory:
        """The key history as of `head`: the cached one plus key events written since."""
        history, upto = self._cached_history()
        if head <= upto:
            return history
        cur.execute(
            f"SELECT {COLUMNS} FROM ledger_events WHERE seq > ? AND seq <= ? AND type LIKE ?"
            " ORDER BY seq",
            (upto, head, trust.KEY_EVENT_PREFIX + "%"),
        )
        return self._advanced(history, [row_to_envelope(r) for r in cur.fetchall()], head)

    def _cached_history(self) -> tuple[KeyHistory, int]:
        """The key history this process last saw, and the seq it is as of."""
        with self._keys_lock:
            history, upto = self._history, self._history_upto
        if history is None or history.anchor != self.anchor():
            return KeyHistory(self.anchor()), 0
        return history, upto

    def _advanced(self, history: KeyHistory, fresh: list[Envelope], head: int) -> KeyHistory:
        """`history` plus the key events written since, remembered as of `head`."""
        if fresh:
            history = history.copy()
            for env in fresh:
                history.apply(env)
        self._remember(history, head)
        return history

    def _remember(self, history: KeyHistory, upto: int) -> None:
        with self._keys_lock:
            if upto >= self._history_upto:
                self._history, self._history_upto = history, upto

    def key_history(self) -> KeyHistory:
        """The endorsed keys as of the log's current head (re-read only when it moved)."""
        with self.db.read() as cur:
            cur.execute("SELECT MAX(seq) FROM ledger_events")
            head = cur.fetchone()[0] or 0
            return self._caught_up(cur, head)

    def announce_active_key(self) -> int | None:
        """Log the anchor key's public JWK now if the log has no key yet; return its seq."""
        before = self.max_notification_id() or 0
        self._append([], _no_key_events)
        after = self.max_notification_id() or 0
        return after if after > before else None

    def rotate(self, new_key: crypto.SigningKey) -> int:
        """Endorse `new_key` with a rotation signed by the key it replaces; return its seq."""

        def build(history: KeyHistory) -> list[LedgerStoredEvent]:
            current = history.current or self.keyring.active().kid
            payload = trust.rotation(new_key, replaces=current)
            return [_key_event(new_key.kid, 1, trust.KEY_ROTATED, payload)]

        return self._append([], build)[-1]

    def declare(self, type_name: str, payload: dict[str, Any]) -> int:
        """Append a retirement or compromise of `payload["kid"]`, signed by the current key."""
        kid = str(payload.get("kid"))
        version = self._next_version(key_stream(kid))
        event = _key_event(kid, version, type_name, payload)
        return self._append([], lambda history: [event])[-1]

    def record_fact(self, stream: str, type_name: str, payload: dict[str, Any]) -> int:
        """Append one event that belongs to no aggregate (e.g. a published CA) at version 1.

        The stream is derived from the fact itself, so a second writer of the same
        fact gets ConcurrencyConflict instead of a duplicate. The payload passes the
        same `check_payload` as every domain event.
        """
        check_payload(payload)
        event = LedgerStoredEvent(
            originator_id=stream,
            originator_version=1,
            topic=type_name,
            state=crypto.canonical_json(payload),
            time=clock.format_time(clock.now()),
            event_id=str(uuid.uuid4()),
        )
        return self._append([prepare(event)], _no_key_events)[-1]

    def _next_version(self, stream: str) -> int:
        with self.db.read() as cur:
            cur.execute("SELECT MAX(version) FROM ledger_events WHERE stream = ?", (stream,))
            return (cur.fetchone()[0] or 0) + 1

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
        rows = self.db.rows(sql, params)
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
        return self.db.scalar("SELECT MAX(seq) FROM ledger_events")

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
        return [row_to_envelope(r) for r in self.db.rows(sql, params)]

    def iter_envelopes(self, after: int = 0, page: int = 2000) -> Iterator[Envelope]:
        """Every envelope after `after`, paged so memory stays flat."""
        while True:
            batch = self.envelopes(after=after, limit=page)
            yield from batch
            if len(batch) < page:
                return
            after = batch[-1].seq

    def kinds_between(self, after: int, upto: int) -> list[tuple[str, str]]:
        """(type, stream) of the events after `after` up to `upto`: what changed, not how."""
        sql = "SELECT type, stream FROM ledger_events WHERE seq > ? AND seq <= ?"
        return [(row[0], row[1]) for row in self.db.rows(sql, (after, upto))]

    def hash_of(self, seq: int) -> str | None:
        """The hash of the event at `seq`: known without a read when this process appended it
        (what a write answers), else read from the log."""
        known = self._written.get(seq)
        if known is not None:
            return known
        row = self.db.row("SELECT hash FROM ledger_events WHERE seq = ?", (seq,))
        return row[0] if row else None

    def envelope(self, seq: int) -> Envelope | None:
        found = self.envelopes(after=seq - 1, limit=1, stop=seq)
        return found[0] if found else None

    def stream_envelopes(self, stream: str) -> list[Envelope]:
        """Every envelope of one stream, by version: an aggregate's history as signed."""
        sql = f"SELECT {COLUMNS} FROM ledger_events WHERE stream = ? ORDER BY version"
        return [row_to_envelope(r) for r in self.db.rows(sql, (stream,))]

    def first_envelope(self, stream: str) -> Envelope | None:
        """A stream's first envelope (its creation event) without reading the rest."""
        sql = f"SELECT {COLUMNS} FROM ledger_events WHERE stream = ? AND version = 1"
        row = self.db.row(sql, (stream,))
        return row_to_envelope(row) if row else None

    def signing_key(self) -> crypto.SigningKey:
        """The key that signs now (checkpoints, tokens): the chain's current key."""
        return self._signer(self.key_history())[0]

    def iter_envelopes_of_type(self, type_name: str) -> list[Envelope]:
        sql = f"SELECT {COLUMNS} FROM ledger_events WHERE type = ? ORDER BY seq"
        return [row_to_envelope(r) for r in self.db.rows(sql, (type_name,))]
