"""Signed checkpoints: a C2SP tlog-checkpoint inside a C2SP signed note, Ed25519 (format 5).

    <origin>\\n<tree size>\\n<base64 root hash>\\n
    \\n
    — <origin> <base64(key hash (4 bytes) || Ed25519 signature of the three lines)>\\n

Key hash = first 4 bytes of SHA-256(origin || "\\n" || 0x01 || 32-byte public key).
Parsing is strict, since anyone may hand an auditor a note: the body is exactly the
three lines above in canonical form, and every deviation is a `CheckpointError`
naming what is wrong. Signatures from unknown keys are ignored, as C2SP requires,
so witness cosignatures or a rotated key's line do not break verification.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from ledger.crypto import CryptoError, SigningKey, b64, b64_decode, sha256, verify

SIG_PREFIX = "\u2014 "  # em dash and a space
ED25519_ALG = b"\x01"  # C2SP signed-note signature type for Ed25519
KEY_HASH_BYTES = 4
PUBLIC_KEY_BYTES = 32
ROOT_BYTES = 32
MAX_TREE_SIZE = 2**64 - 1
MAX_SIGNATURES = 100  # C2SP: verifiers limit it, and must accept at least 16
_TREE_SIZE = re.compile(r"0|[1-9][0-9]*")

NoteSignature = tuple[str, bytes, bytes]
"""One signature line: (key name, 4-byte key hash, signature)."""


class CheckpointError(ValueError):
    """A checkpoint note that is malformed or not signed by a trusted key."""


@dataclass(frozen=True)
class Checkpoint:
    """The log `origin` had `size` leaves whose RFC 9162 tree head is `root`."""

    origin: str
    size: int
    root: bytes

    def __post_init__(self) -> None:
        check_key_name(self.origin, "origin")
        if isinstance(self.size, bool) or not isinstance(self.size, int):
            raise CheckpointError(f"tree size must be an integer, not {self.size!r}")
        if not 0 <= self.size <= MAX_TREE_SIZE:
            raise CheckpointError(f"tree size {self.size} is outside 0..2^64-1")
        if not isinstance(self.root, bytes) or len(self.root) != ROOT_BYTES:
            raise CheckpointError("root hash must be 32 bytes")

    def body(self) -> bytes:
        """The note text: exactly the bytes the signature covers."""
        return f"{self.origin}\n{self.size}\n{b64(self.root)}\n".encode()


def note_key_hash(origin: str, public_raw: bytes) -> bytes:
    """C2SP key ID: names the key on a signature line, binding name, algorithm and key."""
    if len(public_raw) != PUBLIC_KEY_BYTES:
        raise CheckpointError("an Ed25519 public key is 32 bytes")
    return sha256(origin.encode() + b"\n" + ED25519_ALG + public_raw)[:KEY_HASH_BYTES]


def sign_checkpoint(cp: Checkpoint, key: SigningKey) -> str:
    """The whole signed note, ready to serve as text/plain."""
    body = cp.body()
    blob = note_key_hash(cp.origin, key.public_raw) + key.sign(body)
    return f"{body.decode()}\n{SIG_PREFIX}{cp.origin} {b64(blob)}\n"


def parse_checkpoint(note_text: str) -> tuple[Checkpoint, list[NoteSignature]]:
    """The checkpoint and every signature line, checked for form only (nothing verified)."""
    cp, signatures, _ = parse_note(note_text)
    return cp, signatures


def verify_checkpoint(note_text: str, origin: str, public_keys: Iterable[bytes]) -> Checkpoint:
    """The checkpoint, if one of `public_keys` signed it for `origin`; CheckpointError otherwise.

    A signature line naming `origin` whose key hash matches a trusted key must
    verify (C2SP: a failing known signature rejects the note); other lines are ignored.
    """
    cp, signatures, text = parse_note(note_text)
    if cp.origin != origin:
        raise CheckpointError(f"checkpoint origin is {cp.origin!r}, expected {origin!r}")
    trusted: dict[bytes, list[bytes]] = {}
    for public_raw in public_keys:
        trusted.setdefault(note_key_hash(origin, public_raw), []).append(public_raw)
    verified = False
    for name, key_hash, signature in signatures:
        candidates = trusted.get(key_hash, []) if name == origin else []
        if not candidates:
            continue
        if not any(verify(public_raw, signature, text) for public_raw in candidates):
            raise CheckpointError("a signature by a trusted key does not verify")
        verified = True
    if not verified:
        raise CheckpointError(f"no signature by a trusted key for {origin!r}")
    return cp


# --- parsing ---------------------------------------------------------------


def parse_note(note_text: str) -> tuple[Checkpoint, list[NoteSignature], bytes]:
    """(checkpoint, signature lines, signed text bytes) of a well-formed note."""
    text, signature_lines = _split_note(note_text)
    cp = _parse_body(text)
    return cp, [_parse_signature(line) for line in signature_lines], text.encode()


def _split_note(note_text: str) -> tuple[str, list[str]]:
    """The note text (with its final newline) and the signature lines (without)."""
    if not isinstance(note_text, str):
        raise CheckpointError("a signed note is text")
    if not note_text:
        raise CheckpointError("the note is empty")
    _check_text(note_text, "the note")
    if not note_text.endswith("\n"):
        raise CheckpointError("a signed note ends with a newline")
    split = note_text.rfind("\n\n")  # C2SP: the last blank line separates the signatures
    if split < 0:
        raise CheckpointError("a signed note needs a blank line before its signatures")
    text, signatures = note_text[: split + 1], note_text[split + 2 :]
    if not signatures:
        raise CheckpointError("a signed note needs at least one signature line")
    lines = signatures[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise CheckpointError(f"a note may carry at most {MAX_SIGNATURES} signatures")
    return text, lines


def _parse_body(text: str) -> Checkpoint:
    lines = text[:-1].split("\n")
    if len(lines) != 3:
        raise CheckpointError(
            f"checkpoint has {len(lines)} body lines, expected 3 (origin, tree size, root hash)"
        )
    origin, size_text, root_text = lines
    if not _TREE_SIZE.fullmatch(size_text):
        raise CheckpointError(f"tree size {size_text[:30]!r} is not a plain decimal number")
    try:
        root = b64_decode(root_text)
    except CryptoError as exc:
        raise CheckpointError("root hash is not base64") from exc
    if b64(root) != root_text:
        raise CheckpointError("root hash is not in canonical base64")
    return Checkpoint(origin, int(size_text), root)


def _parse_signature(line: str) -> NoteSignature:
    if not line.startswith(SIG_PREFIX):
        raise CheckpointError("a signature line starts with an em dash and a space")
    name, sep, blob_text = line[len(SIG_PREFIX) :].partition(" ")
    if not sep:
        raise CheckpointError("a signature line is '— <key name> <base64 signature>'")
    check_key_name(name, "signature key name")
    try:
        blob = b64_decode(blob_text)
    except CryptoError as exc:
        raise CheckpointError("signature is not base64") from exc
    if len(blob) <= KEY_HASH_BYTES:
        raise CheckpointError("signature is too short to hold a key hash and a signature")
    return name, blob[:KEY_HASH_BYTES], blob[KEY_HASH_BYTES:]


def _check_text(text: str, what: str) -> None:
    """C2SP: valid UTF-8 and no ASCII control character but newline."""
    try:
        text.encode()
    except UnicodeEncodeError as exc:
        raise CheckpointError(f"{what} is not valid UTF-8") from exc
    if any(ch < " " and ch != "\n" for ch in text):
        raise CheckpointError(f"{what} contains a control character")


def check_key_name(name: str, what: str) -> None:
    """C2SP key names (and so our origins): non-empty, no Unicode space, no '+'."""
    if not isinstance(name, str) or not name:
        raise CheckpointError(f"{what} must be a non-empty string")
    _check_text(name, what)
    if any(ch.isspace() or ch == "+" for ch in name):
        raise CheckpointError(f"{what} {name[:60]!r} contains a space or '+'")
