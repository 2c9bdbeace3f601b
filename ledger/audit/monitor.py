"""A monitor: follow a log from outside and raise an alarm when it contradicts itself.

Each run fetches the log's latest checkpoint, every checkpoint the log lists as
signed since the last run, and every event since then, and checks, in order: the
tree did not shrink (rollback); the last event seen before is unchanged and the
first new one links to it (rewrite); every new event passes the auditor's own
checks (hash, signature by a key the endorsement chain rooted in the trust anchor
accepts, chain link); each checkpoint is signed by such a key and its root is the
root of the events served at its size (split view otherwise: a checkpoint shown
to someone once and superseded since is still checked); the log's consistency
proof from the last checkpoint seen verifies; no configured witness's
cosignature is forged. With a witness quorum the run follows the newest listed
checkpoint that has it: a log whose witnesses lag is waited for, not an alarm
(the last event seen is still checked for a rewrite meanwhile).
Only a run with no alarm moves the state forward.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ledger.audit.checkpoint import (
    Checkpoint,
    CheckpointError,
    parse_checkpoint,
    verify_checkpoint,
)
from ledger.audit.cosignature import VerifierKey, verified_cosigners
from ledger.audit.log_client import PAGE, LogInconsistent
from ledger.audit.merkle import verify_consistency
from ledger.audit.monitor_state import MonitorState
from ledger.audit.parallel import SignatureChecker
from ledger.audit.quorum import quorum_problem
from ledger.audit.verify import BAD_SIGNATURE, check_key, check_record

Say = Callable[[str], None]


class Log(Protocol):
    def checkpoint(self) -> str: ...
    def checkpoints(self, after: int) -> Iterable[dict[str, Any]]: ...
    def consistency(self, old: int, new: int) -> list[bytes]: ...
    def events(self, after: int, limit: int = PAGE) -> list[Any]: ...


class Alarm(Exception):
    """The log contradicted itself or what it showed before; `kind` names how.

    `notes` are the signed notes that prove it, kept as evidence.
    """

    def __init__(self, kind: str, message: str, notes: Sequence[str] = ()) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.notes = list(notes)


@dataclass(frozen=True)
class Outcome:
    old_size: int
    size: int
    root: bytes
    cosigners: dict[str, int]
    waiting: int = 0  # size of a newer checkpoint not cosigned by the quorum yet (0: none)


def follow(
    log: Log,
    state: MonitorState,
    witnesses: Sequence[VerifierKey] = (),
    quorum: int = 0,
    say: Say | None = None,
    workers: int = 1,
) -> Outcome:
    """Check the log's latest checkpoint against `state` and advance it in place; Alarm if not."""
    try:
        return _follow(log, state, witnesses, quorum, say, workers)
    except LogInconsistent as exc:
        raise Alarm(
            "rewrite", f"the log reports its stored tree contradicts its events: {exc}"
        ) from exc


def _follow(
    log: Log,
    state: MonitorState,
    witnesses: Sequence[VerifierKey],
    quorum: int,
    say: Say | None,
    workers: int,
) -> Outcome:
    latest = log.checkpoint()
    latest_cp = _parsed(latest, state)
    _cosigners(latest, witnesses)
    listed = _listed(log, state, latest_cp.size, witnesses)
    note = _target(latest, listed, quorum, witnesses)
    if note is None:  # witnesses lag; the history seen must still stand meanwhile
        if state.size:
            _unchanged(log, state)
        return Outcome(state.size, state.size, state.root, {}, waiting=latest_cp.size)
    cp = _parsed(note, state)
    old_size, old_root = state.size, state.root
    _read_events(log, state, cp.size, say or (lambda _: None), workers, listed)
    _same_root(note, state)  # the listed copy of its size, if any, was checked on the way
    if 0 < old_size < cp.size and not verify_consistency(
        old_size, cp.size, old_root, cp.root, log.consistency(old_size, cp.size)
    ):
        raise Alarm(
            "split view",
            f"the checkpoint of size {cp.size} is not consistent with the checkpoint of size "
            f"{old_size} seen before (the log's consistency proof fails)",
            [note, state.note],
        )
    cosigners = _cosigners(note, witnesses)
    state.size, state.root, state.note = cp.size, cp.root, note
    waiting = latest_cp.size if latest_cp.size > cp.size else 0
    return Outcome(old_size, cp.size, cp.root, cosigners, waiting)


def _listed(
    log: Log, state: MonitorState, upto: int, witnesses: Sequence[VerifierKey]
) -> dict[int, str]:
    """Size -> note of every listed checkpoint after the state's, up to `upto`, free of forged
    cosignatures; their signatures and roots are checked as the events stream to their size
    (the keys that may sign one are known only from the events before it)."""
    found: dict[int, str] = {}
    for entry in log.checkpoints(state.size):
        note = entry["note"]
        cp = _parsed(note, state)
        if cp.size != entry["size"]:
            raise Alarm(
                "bad checkpoint",
                f"the listed checkpoint {entry['size']} is of size {cp.size}",
                [note],
            )
        if cp.size > upto:
            break
        _cosigners(note, witnesses)
        found[cp.size] = note
    return found


def _target(
    latest: str, listed: dict[int, str], quorum: int, witnesses: Sequence[VerifierKey]
) -> str | None:
    """The checkpoint to follow: the latest; with a quorum, the newest that has it (or None)."""
    if quorum == 0:
        return latest
    for note in [latest, *(listed[size] for size in sorted(listed, reverse=True))]:
        if not quorum_problem(note, witnesses, quorum):
            return note
    return None


def _parsed(note: str, state: MonitorState) -> Checkpoint:
    try:
        cp = parse_checkpoint(note)[0]
    except CheckpointError as exc:
        raise Alarm("bad checkpoint", str(exc), [note]) from exc
    if cp.origin != state.anchor.origin:
        raise Alarm(
            "bad checkpoint", f"origin {cp.origin!r} is not {state.anchor.origin!r}", [note]
        )
    if cp.size < state.size:
        _signed(note, cp.size, state)  # a rollback the log signed: evidence, not noise
        raise Alarm(
            "rollback",
            f"the log's checkpoint has {cp.size} events, fewer than the {state.size} "
            "it showed before",
            [note, state.note],
        )
    return cp


def _signed(note: str, size: int, state: MonitorState) -> None:
    """The note is signed by a key the endorsement chain accepts at `size`; Alarm if not."""
    keys = state.keys.checkpoint_keys(size) if size else [state.anchor.public_key]
    try:
        verify_checkpoint(note, state.anchor.origin, keys)
    except CheckpointError as exc:
        raise Alarm("bad checkpoint", str(exc), [note]) from exc


def _read_events(
    log: Log, state: MonitorState, size: int, say: Say, workers: int, notes: dict[int, str]
) -> None:
    """Check the last event seen is unchanged, then fetch and check the new ones up to `size`.

    Signatures are verified on `workers` processes; the first bad event, in seq order,
    is the one named, whichever check finds it.
    """
    if state.size:
        _unchanged(log, state)
    with SignatureChecker(workers) as checker:
        try:
            _read_new(log, state, size, say, checker, notes)
        except Alarm:
            _signature_alarm(checker, state.tree.size + 1)
            raise
        _signature_alarm(checker, size)


def _read_new(
    log: Log,
    state: MonitorState,
    size: int,
    say: Say,
    checker: SignatureChecker,
    notes: dict[int, str],
) -> None:
    while state.tree.size < size:
        after = state.tree.size
        page = log.events(after, min(PAGE, size - after))
        if not page:
            raise Alarm(
                "split view",
                f"the checkpoint covers {size} events but the log serves only {after}",
            )
        for record in page[: size - after]:
            _check_event(record, state, checker)
            if state.tree.size in notes:
                _same_root(notes[state.tree.size], state)
        say(f"checked events up to seq {state.tree.size}")


def _same_root(note: str, state: MonitorState) -> None:
    """The checkpoint, signed by a key accepted at its size, has the accumulator's root;
    a split view alarm if not."""
    cp = parse_checkpoint(note)[0]
    _signed(note, cp.size, state)
    if state.tree.root() != cp.root:
        raise Alarm(
            "split view",
            f"the checkpoint's root for size {cp.size} is not the root of the events the log serves",
            [note, state.note],
        )


def _signature_alarm(checker: SignatureChecker, upto: int) -> None:
    """Alarm on the first event up to seq `upto` whose signature does not verify."""
    bad = checker.first_failure()
    if bad is not None and bad <= upto:
        raise Alarm("bad event", f"seq {bad}: {BAD_SIGNATURE}")


def _unchanged(log: Log, state: MonitorState) -> None:
    """The last event seen is still served, with the same hash: the history up to it stands."""
    page = log.events(state.size - 1, 1)
    record = page[0] if page else None
    if not isinstance(record, dict) or record.get("seq") != state.size:
        raise Alarm("rewrite", f"the log no longer serves event {state.size}, seen before")
    if record.get("hash") != state.prev:
        raise Alarm(
            "rewrite",
            f"event {state.size} changed since it was seen (hash {str(record.get('hash'))[:16]}…, "
            f"was {state.prev[:16]}…): the history up to it was rewritten",
        )


def _check_event(record: Any, state: MonitorState, checker: SignatureChecker) -> None:
    expected = state.tree.size + 1
    if not isinstance(record, dict):
        raise Alarm("bad event", f"seq {expected}: the log served something that is not JSON")
    problem = check_record(record, expected, state.prev)
    if problem:
        raise Alarm("bad event", f"seq {expected}: {problem}")
    bad_seq, problem = check_key(record, state.keys, state.signed, checker)
    if problem:
        raise Alarm("bad event", f"seq {bad_seq}: {problem}")
    state.prev = record["hash"]
    state.tree.append(bytes.fromhex(state.prev))


def _cosigners(note: str, witnesses: Sequence[VerifierKey]) -> dict[str, int]:
    """The configured witnesses that cosigned `note`; a forged cosignature by one is an alarm."""
    try:
        return verified_cosigners(note, witnesses) if witnesses else {}
    except CheckpointError as exc:
        raise Alarm("witness cosignature", str(exc), [note]) from exc
