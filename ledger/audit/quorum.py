"""A witness quorum: how many independent witnesses must have cosigned a checkpoint.

A log's own signature proves only that its operator said so; cosignatures by
witnesses who refuse to sign a fork prove that everyone was shown the same log.
The auditor and the monitor name the witnesses they trust (C2SP verifier keys of
type 0x04) and how many of them a checkpoint must carry.
"""

from __future__ import annotations

from collections.abc import Sequence

from ledger.audit.checkpoint import CheckpointError
from ledger.audit.cosignature import COSIGNATURE_ALG, VerifierKey, parse_vkey, verified_cosigners


def parse_witnesses(texts: Sequence[str], quorum: int | None) -> tuple[list[VerifierKey], int]:
    """The trusted witnesses and the quorum (default: all of them); CheckpointError if unsound."""
    witnesses = []
    for text in texts:
        vkey = parse_vkey(text)
        if vkey.alg != COSIGNATURE_ALG:
            raise CheckpointError(f"witness key {vkey.name} is not a cosignature key (type 0x04)")
        witnesses.append(vkey)
    if len({w.name for w in witnesses}) != len(witnesses):
        raise CheckpointError("two witness keys share a name")
    needed = len(witnesses) if quorum is None else quorum
    if not 0 <= needed <= len(witnesses):
        raise CheckpointError(
            f"a quorum of {needed} is not between 0 and {len(witnesses)} witnesses"
        )
    return witnesses, needed


def quorum_problem(note: str, witnesses: Sequence[VerifierKey], quorum: int) -> str:
    """'' when at least `quorum` trusted witnesses validly cosigned `note`, else what is missing."""
    if quorum == 0:
        return ""
    try:
        found = verified_cosigners(note, witnesses)
    except CheckpointError as exc:
        return f"witness cosignature: {exc}"
    if len(found) >= quorum:
        return ""
    missing = [w.name for w in witnesses if w.name not in found]
    return (
        f"the checkpoint carries {len(found)} of the {quorum} required witness cosignatures "
        f"(cosigned by: {', '.join(sorted(found)) or 'none'}; missing: {', '.join(missing)})"
    )
