"""A monitor: follow a log from outside and raise an alarm when it contradicts itself.

Each run fetches the log's latest checkpoint and every event since the last run,
and checks, in order: the tree did not shrink (rollback); the last event seen
before is unchanged and the first new one links to it (rewrite); every new event
passes the auditor's own checks (hash, signature by a key the endorsement chain
rooted in the trust anchor accepts, chain link); the checkpoint is signed by such
a key; its root is the root of the events served (split view otherwise); the
log's consistency proof from the last checkpoint seen verifies; and, if asked,
enough witnesses cosigned it. Only a run with no alarm moves the state forward.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
    def consistency(self, old: int, new: int) -> list[bytes]: ...
    def events(self, after: int, limit: int = PAGE) -> list[Any]: ...


class Alarm(Exception):
    """The log contradicted itself or what it showed before; `kind` names how."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind


@dataclass(frozen=True)
class Outcome:
    old_size: int
    size: int
    root: bytes
    cosigners: dict[str, int]


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
    note = log.checkpoint()
    cp = _parsed(note, state)
    old_size, old_root = state.size, state.root
    _read_events(log, state, cp.size, say or (lambda _: None), workers)
    _signed(note, cp.size, state)
    if state.tree.root() != cp.root:
        raise Alarm(
            "split view",
            f"the checkpoint's root for size {cp.size} is not the root of the events the log serves",
        )
    if 0 < old_size < cp.size and not verify_consistency(
        old_size, cp.size, old_root, cp.root, log.consistency(old_size, cp.size)
    ):
        raise Alarm(
            "split view",
            f"the checkpoint of size {cp.size} is not consistent with the checkpoint of size "
            f"{old_size} seen before (the log's consistency proof fails)",
        )
    cosigners = _witnessed(note, witnesses, quorum)
    state.size, state.root, state.note = cp.size, cp.root, note
    return Outcome(old_size, cp.size, cp.root, cosigners)


def _parsed(note: str, state: MonitorState) -> Checkpoint:
    try:
        cp = parse_checkpoint(note)[0]
    except CheckpointError as exc:
        raise Alarm("bad checkpoint", str(exc)) from exc
    if cp.origin != state.anchor.origin:
        raise Alarm("bad checkpoint", f"origin {cp.origin!r} is not {state.anchor.origin!r}")
    if cp.size < state.size:
        _signed(note, cp.size, state)  # a rollback the log signed: evidence, not noise
        raise Alarm(
            "rollback",
            f"the log's checkpoint has {cp.size} events, fewer than the {state.size} "
            "it showed before",
        )
    return cp


def _signed(note: str, size: int, state: MonitorState) -> None:
    """The note is signed by a key the endorsement chain accepts at `size`; Alarm if not."""
    keys = state.keys.checkpoint_keys(size) if size else [state.anchor.public_key]
    try:
        verify_checkpoint(note, state.anchor.origin, keys)
    except CheckpointError as exc:
        raise Alarm("bad checkpoint", str(exc)) from exc


def _read_events(log: Log, state: MonitorState, size: int, say: Say, workers: int) -> None:
    """Check the last event seen is unchanged, then fetch and check the new ones up to `size`.

    Signatures are verified on `workers` processes; the first bad event, in seq order,
    is the one named, whichever check finds it.
    """
    if state.size:
        _unchanged(log, state)
    with SignatureChecker(workers) as checker:
        try:
            _read_new(log, state, size, say, checker)
        except Alarm:
            _signature_alarm(checker, state.tree.size + 1)
            raise
        _signature_alarm(checker, size)


def _read_new(
    log: Log, state: MonitorState, size: int, say: Say, checker: SignatureChecker
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
        say(f"checked events up to seq {state.tree.size}")


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


def _witnessed(note: str, witnesses: Sequence[VerifierKey], quorum: int) -> dict[str, int]:
    problem = quorum_problem(note, witnesses, quorum)
    if problem:
        raise Alarm("witness quorum", problem)
    return verified_cosigners(note, witnesses) if witnesses else {}
