"""Checkpoints on a schedule, kept for ever, pushed to witnesses (format section 5.3).

`Checkpointer.tick` is the one step: integrate the tree, sign a checkpoint when
one is due and provably extends the last one, store it, and ask each configured
witness that has not cosigned the latest checkpoint yet to do so. Pushing runs
outside the signing lock, as one round at a time on its own thread, and in one
process at a time (the others skip): signing never waits for a witness, and a
witness that was not reached is pushed again by a later round. Serving
processes tick it in the background (`CheckpointLoop`, not waiting for the
round); `ledger checkpoint` ticks it once and waits, for cron. A tree that does
not extend the last checkpoint is an integrity alarm: nothing is signed again
until an operator looks.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime

from ledger.audit.checkpoint import Checkpoint, CheckpointError, sign_checkpoint
from ledger.audit.checkpoints import (
    InconsistentLog,
    Schedule,
    Witnessed,
    check_extends,
    quorum,
    witness_keys,
    witnesses,
)
from ledger.audit.cosignature import VerifierKey, verified_cosigners, with_cosignatures
from ledger.audit.log_tree import LogTree
from ledger.audit.merkle import MerkleError
from ledger.crypto import SigningKey
from ledger.domain import clock
from ledger.services.background import Every
from ledger.services.witness_client import PushOutcome, push
from ledger.store.application import Ledger
from ledger.store.checkpoints import CheckpointStore, Cosignature, StoredCheckpoint
from ledger.store.db import StoreError

log = logging.getLogger(__name__)
Alarm = Callable[[dict[str, object]], None]
MAX_BACKOFF_S = 60.0
WITNESSED_CANDIDATES = 20  # older checkpoints looked at for a witnessed one


class Checkpointer:
    """Signs, stores and gets cosigned the checkpoints of one ledger."""

    def __init__(self, ledger: Ledger, tree: LogTree | None = None, alarm: Alarm | None = None):
        self.ledger = ledger
        self.tree = tree or LogTree(ledger)
        self.store = CheckpointStore(ledger.db)
        self.schedule = Schedule.of(ledger.config)
        self.witnesses = witnesses(ledger.config)
        self.quorum = quorum(ledger.config)  # checked now: a quorum above the witnesses fails
        self.problem = ""  # set once the log failed a consistency check
        self._alarm = alarm
        self._lock = threading.Lock()  # signing, and any use of the tree
        self._round: Future[None] | None = None  # the push round in flight
        self._round_lock = threading.Lock()
        self._rounds = ThreadPoolExecutor(1, "witness-round")
        self._retry_at: dict[str, float] = {}
        self._failures: dict[str, int] = {}
        self._held: dict[str, int] = {}  # sizes witnesses said they hold (409)
        # Long-lived push threads: a proof computed there reuses its thread's connection.
        self._pool = ThreadPoolExecutor(max(1, len(self.witnesses)), "witness-push")

    def tick(self, force: bool = False, wait: bool = True) -> int | None:
        """One step; the size of the checkpoint signed now, or None when none was due.

        `force` signs any larger tree at once, whatever the schedule (an export that
        must cover every event it holds). The push round starts after signing,
        unless one is still in flight; `wait` waits for it (bounded by the pushes'
        deadlines), the background loop does not.
        """
        with self._lock:
            signed = self._sign_if_due(force)
        if self.witnesses:
            round_ = self._start_round()
            if wait:
                round_.result()
        return signed

    def _start_round(self) -> Future[None]:
        """The push round in flight, or a new one."""
        with self._round_lock:
            if self._round is None or self._round.done():
                self._round = self._rounds.submit(self._push_round)
                self._round.add_done_callback(_log_failure)  # the loop does not wait for it
            return self._round

    def _push_round(self) -> None:
        """Push the latest checkpoint, if no other process is pushing now."""
        with self.store.push_turn() as mine:
            if mine:
                self._push_latest()
            else:
                log.debug("checkpoint: another process is pushing to the witnesses")

    # --- signing ---------------------------------------------------------------

    def _sign_if_due(self, force: bool) -> int | None:
        if self.problem:
            return None
        latest = self.store.latest()
        now = clock.now()
        try:
            size = self.tree.refresh()  # integrates; tiles that contradict the log raise
            if latest is not None and size <= latest.size:
                self._check(latest, size)  # a truncated or rewritten log, even without appends
            grown = latest is None or size > latest.size
            if not (force and grown) and not self.schedule.due(_last(latest), size, now):
                return None
            root = self._check(latest, size)
        except (InconsistentLog, MerkleError) as exc:  # a rewritten or truncated log
            self._raise(str(exc))
            return None
        key = self.ledger.signing_key()  # read before the lock: SQLite cannot nest transactions
        stored = self.store.store_next(
            latest.size if latest else None, lambda: self._signed(size, root, now, key)
        )
        if stored is not None:
            log.info("checkpoint: signed tree size %d", stored.size)
        return stored.size if stored else None

    def _check(self, latest: StoredCheckpoint | None, size: int) -> bytes:
        """The root of the tree of `size` leaves, once shown to extend `latest`."""
        if latest is not None and size < latest.size:
            raise InconsistentLog(
                f"the log has {size} events, fewer than the {latest.size} already checkpointed"
            )
        root = self.tree.root(size)
        if latest is not None and latest.size > 0:
            same = latest.size == size  # the empty proof: no need to build it every tick
            proof = [] if same else self.tree.consistency(latest.size, size)
            check_extends((latest.size, latest.root), (size, root), proof)
        return root

    def _signed(self, size: int, root: bytes, now: datetime, key: SigningKey) -> StoredCheckpoint:
        cp = Checkpoint(origin=self.ledger.config.log_origin, size=size, root=root)
        note = sign_checkpoint(cp, key)
        return StoredCheckpoint(size, root, note, clock.format_time(now))

    def _raise(self, problem: str) -> None:
        self.problem = problem
        log.error("checkpoint: refusing to sign: %s", problem)
        if self._alarm:
            self._alarm({"source": "checkpoint", "problems": [problem]})

    # --- witnesses ---------------------------------------------------------------

    def _push_latest(self) -> None:
        latest = self.store.latest() if self.witnesses else None
        if latest is None:
            return
        stale = time.time() - self.ledger.config.checkpoint_max_age_s / 2
        fresh = {c.witness for c in self.store.cosignatures(latest.size) if c.timestamp >= stale}
        now = time.monotonic()
        due = [  # an idle log asks again: verifiers warn when the newest cosignature is old
            w
            for w in self.witnesses
            if w.name not in fresh and now >= self._retry_at.get(w.name, 0.0)
        ]
        if not due:
            return
        olds = {w.name: self.store.last_cosigned(w.name) for w in due}
        proofs = _ProofCache(self.tree, latest.size, self._lock)
        proofs.warm([*olds.values(), *(self._held.get(w.name, 0) for w in due)])
        outcomes = list(
            self._pool.map(lambda w: push(w, latest.note, latest.size, olds[w.name], proofs), due)
        )
        self._record(latest, outcomes)

    def close(self) -> None:
        self._rounds.shutdown(wait=False, cancel_futures=True)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _record(self, latest: StoredCheckpoint, outcomes: list[PushOutcome]) -> None:
        cosignatures = []
        for outcome in outcomes:
            if outcome.witness_size is not None:
                self._held[outcome.witness] = outcome.witness_size
            if outcome.cosignature is not None:
                cosignatures.append(outcome.cosignature)
                self._failures.pop(outcome.witness, None)
                self._retry_at.pop(outcome.witness, None)
                continue
            if outcome.ahead and self._signed_size(outcome.witness_size):
                # Another process pushed a later checkpoint of ours first: a race, not a fork.
                log.info("checkpoint %d: %s, which we signed", latest.size, outcome.error)
                continue
            self._backoff(outcome.witness)
            if outcome.ahead:
                outcome.error += ", a tree we never signed"
            log.warning("checkpoint %d: %s", latest.size, outcome.error)
            if outcome.alarm or outcome.ahead:
                message = f"checkpoint {latest.size}: {outcome.error}"
                if self._alarm:
                    self._alarm({"source": "witness", "problems": [message]})
        if cosignatures:
            self.store.add_cosignatures(latest.size, cosignatures)

    def _signed_size(self, held: int | None) -> bool:
        """True when `held` is the size of a checkpoint we stored (read now, not at push)."""
        return held is not None and self.store.get(held) is not None

    def _backoff(self, witness: str) -> None:
        failures = self._failures.get(witness, 0) + 1
        self._failures[witness] = failures
        delay = min(MAX_BACKOFF_S, 2.0 ** (failures - 1))
        self._retry_at[witness] = time.monotonic() + delay


class _ProofCache:
    """Consistency proofs to one size, computed on the round's thread (push threads only read).

    The tree is used under the signing lock: signing refreshes it on another thread.
    """

    def __init__(self, tree: LogTree, size: int, lock: threading.Lock):
        self.tree, self.size, self._lock = tree, size, lock
        self._proofs: dict[int, list[bytes]] = {}

    def warm(self, olds: list[int]) -> None:
        for old in olds:
            if 0 < old <= self.size:
                self._proofs[old] = self._proof(old)

    def __call__(self, old: int) -> list[bytes]:
        if old not in self._proofs:  # a size only learnt from a 409: computed off-thread
            self._proofs[old] = self._proof(old)
        return self._proofs[old]

    def _proof(self, old: int) -> list[bytes]:
        with self._lock:
            return self.tree.consistency(old, self.size)


def _log_failure(round_: Future[None]) -> None:
    """Say why a push round failed; it is tried again on the next tick."""
    exc = None if round_.cancelled() else round_.exception()
    if isinstance(exc, StoreError):  # the database is down
        log.warning("checkpoint: push round: %s", str(exc).splitlines()[0] if str(exc) else exc)
    elif exc is not None:
        log.error("checkpoint: push round failed", exc_info=exc)


def _last(latest: StoredCheckpoint | None) -> tuple[int, datetime] | None:
    if latest is None:
        return None
    try:
        return latest.size, clock.parse_time(latest.created_at)
    except ValueError as exc:
        raise StoreError(f"stored checkpoint {latest.size}: bad created_at") from exc


# --- what others read ------------------------------------------------------------


def valid_cosignatures(
    note: str, stored: list[Cosignature], keys: list[VerifierKey]
) -> list[Cosignature]:
    """The stored cosignature lines that verify on `note` by a configured witness key."""
    valid = []
    for c in stored:
        try:
            found = verified_cosigners(with_cosignatures(note, [c.line]), keys)
        except CheckpointError:
            log.error("checkpoint: stored cosignature of %s does not verify", c.witness)
            continue
        if c.witness in found:
            valid.append(Cosignature(c.witness, c.line, found[c.witness]))
    return valid


def cosigned_note(ledger: Ledger, cp: StoredCheckpoint) -> tuple[str, dict[str, int]]:
    """The note with its valid cosignature lines, and witness name -> timestamp."""
    store = CheckpointStore(ledger.db)
    valid = valid_cosignatures(cp.note, store.cosignatures(cp.size), witness_keys(ledger.config))
    note = with_cosignatures(cp.note, [c.line for c in valid])
    return note, {c.witness: c.timestamp for c in valid}


def sign_now(ledger: Ledger) -> None:
    """Sign (and push) a checkpoint of the whole log now, if it grew since the latest."""
    signer = Checkpointer(ledger)
    try:
        signer.tick(force=True)
    finally:
        signer.close()


def latest_note(ledger: Ledger) -> str:
    """The latest stored checkpoint with its cosignatures; signs the first one if none is."""
    latest = CheckpointStore(ledger.db).latest()
    if latest is None:
        sign_now(ledger)
        latest = CheckpointStore(ledger.db).latest()
    if latest is None:
        raise StoreError("no checkpoint could be signed")
    return cosigned_note(ledger, latest)[0]


def witnessed(ledger: Ledger) -> Witnessed | None:
    """The latest stored checkpoint with at least the quorum of valid witness cosignatures.

    A quorum of 0 still needs one cosigner, and no witness configured means nothing is
    witnessed: "witnessed" with zero cosignatures would vouch for what no one checked.
    """
    if not witness_keys(ledger.config):
        return None
    needed = max(quorum(ledger.config), 1)
    store = CheckpointStore(ledger.db)
    for size in store.sizes_cosigned(needed, WITNESSED_CANDIDATES):
        cp = store.get(size)
        if cp is None:
            continue
        note, cosigners = cosigned_note(ledger, cp)
        if len(cosigners) >= needed:
            return Witnessed(note=note, size=cp.size, root=cp.root, cosigners=cosigners)
    return None


def checkpoint_status(ledger: Ledger, head_seq: int, now: datetime) -> dict[str, object]:
    """For /ready: the latest checkpoint's size, age and cosigners vs the quorum, and what is
    wrong (events left unsigned longer than LEDGER_CHECKPOINT_MAX_AGE_SECONDS, or too few
    cosignatures once that long has passed)."""
    latest = CheckpointStore(ledger.db).latest()
    if latest is None:
        return {"ok": False, "problems": ["no checkpoint was signed yet"]}
    last = _last(latest)
    age = (now - last[1]).total_seconds() if last else 0.0
    _, cosigners = cosigned_note(ledger, latest)
    needed = quorum(ledger.config)
    max_age = ledger.config.checkpoint_max_age_s
    problems = []
    if head_seq > latest.size and age > max_age:
        problems.append(f"{head_seq - latest.size} events are unsigned for over {max_age} s")
    if len(cosigners) < needed and age > max_age:
        problems.append(f"{len(cosigners)} of {needed} witness cosignatures after {max_age} s")
    return {
        "ok": not problems,
        "size": latest.size,
        "age_s": round(age, 3),
        "cosigners": sorted(cosigners),
        "quorum": needed,
        "problems": problems,
    }


# --- background loop ---------------------------------------------------------------


class CheckpointLoop(Every):
    """Ticks a Checkpointer every `interval` seconds until stopped, then closes it."""

    def __init__(self, checkpointer: Checkpointer, interval: float = 1.0):
        super().__init__("checkpoint", lambda: checkpointer.tick(wait=False), interval)
        self.checkpointer = checkpointer

    def stop(self, timeout: float | None = None) -> None:
        super().stop(timeout)
        self.checkpointer.close()
