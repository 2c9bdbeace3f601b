"""Strict parsing of a C2SP tlog-witness `add-checkpoint` request body.

    old <size>\n
    <base64 hash>\n      (0 to 63 consistency proof lines)
    \n
    <signed checkpoint note>

Anyone can post to a witness, so every deviation is refused with a 400 that
names it; nothing here is trusted or verified yet (see `rules`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ledger.audit.checkpoint import (
    MAX_TREE_SIZE,
    ROOT_BYTES,
    Checkpoint,
    CheckpointError,
    parse_note,
)
from ledger.crypto import CryptoError, b64, b64_decode

MAX_BODY_BYTES = 64 * 1024
MAX_PROOF_LINES = 63
_OLD_LINE = re.compile(r"old (0|[1-9][0-9]{0,19})")


class Refusal(Exception):
    """A request the witness does not cosign: HTTP status, one-line reason, and what to keep.

    `size` is set for the 409 whose body is the latest cosigned size; `evidence`
    marks a validly signed request that shows log misbehaviour (kept for ever).
    """

    def __init__(self, status: int, reason: str, size: int | None = None, evidence: bool = False):
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.size = size
        self.evidence = evidence


@dataclass(frozen=True)
class AddCheckpoint:
    """A parsed request: the client's old size, its proof, and the note to cosign."""

    old_size: int
    proof: tuple[bytes, ...]
    note: str
    checkpoint: Checkpoint
    body: bytes  # the note body the cosignature covers
    raw: bytes  # the whole request, kept as evidence when it proves misbehaviour


def parse_request(raw: bytes) -> AddCheckpoint:
    """The request in `raw`; Refusal(400) naming the first thing that is wrong."""
    if len(raw) > MAX_BODY_BYTES:
        raise Refusal(413, f"the request body is larger than {MAX_BODY_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Refusal(400, "the request body is not valid UTF-8") from None
    old_line, sep, rest = text.partition("\n")
    if not sep:
        raise Refusal(400, "the request body starts with a newline-terminated old size line")
    old_size = _old_size(old_line)
    proof, note = _proof_and_note(rest)
    try:
        checkpoint, _, body = parse_note(note)
    except CheckpointError as exc:
        raise Refusal(400, f"malformed checkpoint: {exc}") from None
    return AddCheckpoint(old_size, proof, note, checkpoint, body, raw)


def _old_size(line: str) -> int:
    match = _OLD_LINE.fullmatch(line)
    if match is None:
        raise Refusal(400, "the first line is 'old <tree size>' in decimal without leading zeros")
    size = int(match.group(1))
    if size > MAX_TREE_SIZE:
        raise Refusal(400, "the old size is beyond 2^64-1")
    return size


def _proof_and_note(rest: str) -> tuple[tuple[bytes, ...], str]:
    """Proof hashes up to the first empty line, then the note that follows it."""
    proof: list[bytes] = []
    while True:
        line, sep, rest = rest.partition("\n")
        if not sep:
            raise Refusal(400, "the proof lines end with an empty line before the checkpoint")
        if not line:
            return tuple(proof), rest
        if len(proof) == MAX_PROOF_LINES:
            raise Refusal(400, f"at most {MAX_PROOF_LINES} consistency proof lines")
        proof.append(_hash(line))


def _hash(line: str) -> bytes:
    try:
        raw = b64_decode(line)
    except CryptoError:
        raise Refusal(400, "a consistency proof line is not base64") from None
    if len(raw) != ROOT_BYTES or b64(raw) != line:
        raise Refusal(400, "a consistency proof line is not one 32-byte hash in canonical base64")
    return raw
