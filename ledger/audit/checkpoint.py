"""Signed checkpoints: a C2SP tlog-checkpoint inside a C2SP signed note, Ed25519.

Body: `<origin>\\n<tree size>\\n<base64 root hash>\\n`; a blank line; then one
line per signature: `— <origin> <base64(key hash (4 bytes) || signature)>`.
Key hash = first 4 bytes of SHA-256(origin || "\\n" || 0x01 || public key).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ledger.crypto import CryptoError, SigningKey, b64, b64_decode, sha256, verify

SIG_PREFIX = "\u2014 "  # em dash and a space
ED25519_ALG = b"\x01"


class CheckpointError(ValueError):
    """A checkpoint note that is malformed or not signed by a trusted key."""


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes

    def body(self) -> bytes:
        return f"{self.origin}\n{self.size}\n{b64(self.root)}\n".encode()


def note_key_hash(origin: str, public_raw: bytes) -> bytes:
    return sha256(origin.encode() + b"\n" + ED25519_ALG + public_raw)[:4]


def sign_checkpoint(cp: Checkpoint, key: SigningKey) -> str:
    """The whole signed note, ready to serve as text/plain."""
    body = cp.body()
    blob = note_key_hash(cp.origin, key.public_raw) + key.sign(body)
    return body.decode() + "\n" + f"{SIG_PREFIX}{cp.origin} {b64(blob)}\n"


def parse_checkpoint(note: str) -> tuple[Checkpoint, list[tuple[str, bytes, bytes]]]:
    """Split a note into its checkpoint and (name, key hash, signature) lines."""
    body, sep, signatures = note.partition("\n\n")
    if not sep:
        raise CheckpointError("a signed note needs a blank line between body and signatures")
    lines = body.split("\n")
    if len(lines) < 3 or not lines[0]:
        raise CheckpointError("checkpoint body needs origin, size and root lines")
    try:
        size = int(lines[1])
        root = b64_decode(lines[2])
    except (ValueError, CryptoError) as exc:
        raise CheckpointError("checkpoint size or root is malformed") from exc
    if size < 0 or str(size) != lines[1] or len(root) != 32:
        raise CheckpointError("checkpoint size or root is malformed")
    parsed = []
    for line in signatures.rstrip("\n").split("\n"):
        if not line.startswith(SIG_PREFIX):
            raise CheckpointError("signature lines start with an em dash and a space")
        name, _, blob_text = line[len(SIG_PREFIX) :].rpartition(" ")
        try:
            blob = b64_decode(blob_text)
        except CryptoError as exc:
            raise CheckpointError("signature is not base64") from exc
        if len(blob) < 5:
            raise CheckpointError("signature line too short")
        parsed.append((name, blob[:4], blob[4:]))
    if not note.endswith("\n"):
        raise CheckpointError("a signed note ends with a newline")
    return Checkpoint(lines[0], size, root), parsed


def verify_checkpoint(note: str, origin: str, public_keys: Iterable[bytes]) -> Checkpoint:
    """The checkpoint, if a trusted key signed it for `origin`; CheckpointError otherwise."""
    cp, signatures = parse_checkpoint(note)
    if cp.origin != origin:
        raise CheckpointError(f"checkpoint is for origin {cp.origin!r}, expected {origin!r}")
    keys = {note_key_hash(origin, k): k for k in public_keys}
    body = (note.partition("\n\n")[0] + "\n").encode()  # signed bytes, extension lines included
    for name, key_hash, signature in signatures:
        key = keys.get(key_hash)
        if name == origin and key is not None and verify(key, signature, body):
            return cp
    raise CheckpointError("no valid signature from a trusted key")
