"""The log's side of C2SP tlog-witness: push a checkpoint, get a cosignature back.

One `push` is at most two bounded requests: the old size we last saw the witness
cosign, and on a 409 one retry from the size the witness says it holds. A witness
that holds a larger tree than ours, or rejects our own consistency proof, has been
shown another tree: that is an alarm, not a network hiccup.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field

from ledger.audit.checkpoint import CheckpointError
from ledger.audit.checkpoints import (
    MAX_RESPONSE_BYTES,
    Witness,
    WitnessProtocolError,
    add_checkpoint_body,
    parse_cosignature_lines,
    parse_tlog_size,
)
from ledger.audit.cosignature import verified_cosigners, with_cosignatures
from ledger.store.checkpoints import Cosignature

TIMEOUT_S = 2.0
SIZE_TYPE = "text/x.tlog.size"

ProofFrom = Callable[[int], list[bytes]]
"""The consistency proof from an old size to the pushed checkpoint's size."""


@dataclass
class PushOutcome:
    """`cosignature` when the witness cosigned; `alarm` when it saw another tree."""

    witness: str
    cosignature: Cosignature | None = None
    error: str = ""
    alarm: bool = False
    witness_size: int | None = field(default=None)


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: bytes


def post(url: str, body: bytes, timeout: float = TIMEOUT_S) -> Answer:
    """POST and read a bounded answer; OSError when the witness cannot be reached."""
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "text/plain; charset=utf-8"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Answer(response.status, response.headers.get_content_type(), _read(response))
    except urllib.error.HTTPError as exc:
        with exc:
            return Answer(exc.code, exc.headers.get_content_type(), _read(exc))


def _read(response: object) -> bytes:
    data = response.read(MAX_RESPONSE_BYTES + 1)  # type: ignore[attr-defined]
    if len(data) > MAX_RESPONSE_BYTES:
        raise WitnessProtocolError("the witness answer is too large")
    return data


def push(witness: Witness, note: str, size: int, old: int, proof_from: ProofFrom) -> PushOutcome:
    """Ask `witness` to cosign `note` (tree `size`), from the `old` size it last cosigned."""
    outcome = PushOutcome(witness.name)
    try:
        answer = _add(witness, note, old, proof_from)
        if answer.status == 409:
            held = _conflict_size(answer)
            outcome.witness_size = held
            if held > size:
                return _alarm(outcome, f"holds a tree of {held} events, larger than ours ({size})")
            if held == old:  # same size as we sent, so a different root: a fork
                return _alarm(outcome, f"holds another tree of {held} events than ours")
            answer = _add(witness, note, held, proof_from)
            if answer.status == 409 and _forked(held, _conflict_size(answer), size):
                return _alarm(outcome, "holds another tree than ours")
        return _finish(outcome, witness, note, answer)
    except (OSError, WitnessProtocolError, CheckpointError) as exc:
        outcome.error = str(exc) or type(exc).__name__
        return outcome


def _add(witness: Witness, note: str, old: int, proof_from: ProofFrom) -> Answer:
    proof = proof_from(old) if old else []
    return post(f"{witness.url}/add-checkpoint", add_checkpoint_body(old, proof, note))


def _forked(sent: int, held: int, size: int) -> bool:
    """A 409 after our retry from `sent`: the witness's tree is not ours (not a mere race)."""
    return held == sent or held > size


def _conflict_size(answer: Answer) -> int:
    if answer.content_type != SIZE_TYPE:
        raise WitnessProtocolError(f"a 409 answer is {SIZE_TYPE}, not {answer.content_type}")
    return parse_tlog_size(answer.body)


def _finish(outcome: PushOutcome, witness: Witness, note: str, answer: Answer) -> PushOutcome:
    if answer.status == 422:
        return _alarm(outcome, "rejected our consistency proof: it holds another tree")
    if answer.status != 200:
        outcome.error = f"answered HTTP {answer.status}"
        return outcome
    for line in parse_cosignature_lines(answer.body):
        found = verified_cosigners(with_cosignatures(note, [line]), [witness.vkey])
        if witness.name in found:
            outcome.cosignature = Cosignature(witness.name, line, found[witness.name])
            return outcome
    outcome.error = "answered without a cosignature by its key"
    return outcome


def _alarm(outcome: PushOutcome, what: str) -> PushOutcome:
    outcome.alarm = True
    outcome.error = f"witness {outcome.witness} {what}"
    return outcome
