"""What a witness may cosign (C2SP tlog-witness `add-checkpoint`), as pure functions.

The order of the checks is the specification's: unknown origin 404, no valid
trusted signature 403, old size beyond the checkpoint 400, old size other than
the latest cosigned one 409 (with that size), same size but another root 409,
a consistency proof that does not verify 422. The last two are refused with a
valid log signature on the checkpoint: they prove the log forked or lied, so
they are marked as evidence to keep.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ledger.audit.checkpoint import CheckpointError, verify_checkpoint
from ledger.audit.merkle import EMPTY_ROOT, verify_consistency
from ledger.witness.request import AddCheckpoint, Refusal


@dataclass(frozen=True)
class Latest:
    """The latest checkpoint this witness cosigned for one origin."""

    size: int
    root: bytes


def check_signed(request: AddCheckpoint, log_keys: Mapping[str, Sequence[bytes]]) -> None:
    """Refusal(404) for an origin not configured, Refusal(403) without a valid trusted signature."""
    origin = request.checkpoint.origin
    keys = log_keys.get(origin)
    if not keys:
        raise Refusal(404, "unknown log origin")
    try:
        verify_checkpoint(request.note, origin, keys)
    except CheckpointError as exc:
        raise Refusal(403, f"checkpoint not signed by a trusted log key: {exc}") from None


def judge(request: AddCheckpoint, latest: Latest | None) -> None:
    """Refusal unless the (signed) checkpoint extends `latest` consistently; None to cosign."""
    new = request.checkpoint
    stored = latest or Latest(0, EMPTY_ROOT)
    if request.old_size > new.size:
        raise Refusal(400, "the old size is larger than the checkpoint's size")
    if request.old_size != stored.size:
        raise Refusal(409, "the old size is not the latest cosigned size", size=stored.size)
    if new.size == stored.size:
        _same_size(request, stored)
    elif stored.size == 0:
        if request.proof:
            raise Refusal(422, "the consistency proof from size 0 must be empty")
    elif not verify_consistency(stored.size, new.size, stored.root, new.root, request.proof):
        raise Refusal(422, "the consistency proof does not verify", evidence=True)


def _same_size(request: AddCheckpoint, stored: Latest) -> None:
    if request.checkpoint.root != stored.root:
        raise Refusal(
            409, "a checkpoint of the cosigned size with another root: a fork", evidence=True
        )
    if request.proof:
        raise Refusal(422, "the consistency proof between equal sizes must be empty")
