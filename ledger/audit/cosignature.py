"""Witness cosignatures (C2SP tlog-cosignature, Ed25519 `cosignature/v1`) and verifier keys.

A cosignature is a signed-note signature line on a checkpoint:

    — <witness name> base64(key ID (4) || timestamp (u64, big-endian) || Ed25519 signature)

key ID = SHA-256(<name> || "\\n" || 0x04 || public key)[:4]; the signature covers
"cosignature/v1\\ntime <timestamp>\\n" followed by the checkpoint's note body. A
verifier key (C2SP signed-note "vkey") is `<name>+<hex key ID>+<base64(type || key)>`.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from ledger.audit.checkpoint import (
    KEY_HASH_BYTES,
    PUBLIC_KEY_BYTES,
    SIG_PREFIX,
    CheckpointError,
    check_key_name,
    parse_note,
)
from ledger.crypto import CryptoError, SigningKey, b64, b64_decode, sha256, verify

COSIGNATURE_ALG = 0x04
ED25519_ALG = 0x01
SIGNATURE_BYTES = 64
MAX_TIMESTAMP = 2**63 - 1
_KEY_ID = re.compile(r"[0-9a-f]{8}")


@dataclass(frozen=True)
class VerifierKey:
    """A named Ed25519 public key of one signature type (0x01 note signer, 0x04 cosigner)."""

    name: str
    alg: int
    public_raw: bytes

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.alg, self.public_raw)

    def __str__(self) -> str:
        return f"{self.name}+{self.key_id.hex()}+{b64(bytes([self.alg]) + self.public_raw)}"


def key_id(name: str, alg: int, public_raw: bytes) -> bytes:
    if len(public_raw) != PUBLIC_KEY_BYTES:
        raise CheckpointError("an Ed25519 public key is 32 bytes")
    return sha256(name.encode() + b"\n" + bytes([alg]) + public_raw)[:KEY_HASH_BYTES]


def parse_vkey(text: str) -> VerifierKey:
    """A C2SP verifier key; CheckpointError naming what is wrong."""
    parts = text.strip().split("+", 2) if isinstance(text, str) else []
    if len(parts) != 3:
        raise CheckpointError("a verifier key is <name>+<hex key ID>+<base64 key>")
    name, hex_id, blob_text = parts
    check_key_name(name, "verifier key name")
    if not _KEY_ID.fullmatch(hex_id):
        raise CheckpointError("a verifier key's ID is 8 lowercase hex digits")
    try:
        blob = b64_decode(blob_text)
    except CryptoError as exc:
        raise CheckpointError("a verifier key's key is not base64") from exc
    if len(blob) != 1 + PUBLIC_KEY_BYTES or blob[0] not in (ED25519_ALG, COSIGNATURE_ALG):
        raise CheckpointError("a verifier key holds type 0x01 or 0x04 and a 32-byte Ed25519 key")
    vkey = VerifierKey(name, blob[0], blob[1:])
    if vkey.key_id.hex() != hex_id:
        raise CheckpointError("a verifier key's ID does not match its name and key")
    return vkey


def witness_vkey(name: str, key: SigningKey) -> VerifierKey:
    return VerifierKey(name, COSIGNATURE_ALG, key.public_raw)


def signed_message(body: bytes, timestamp: int) -> bytes:
    """What a v1 cosignature signs: header, time line, then the checkpoint's note body."""
    return b"cosignature/v1\ntime %d\n" % timestamp + body


def cosign(body: bytes, name: str, key: SigningKey, timestamp: int) -> str:
    """One cosignature line (with its newline) on the checkpoint note body `body`."""
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise CheckpointError("a cosignature timestamp is within 0..2^63-1")
    blob = (
        key_id(name, COSIGNATURE_ALG, key.public_raw)
        + struct.pack(">Q", timestamp)
        + key.sign(signed_message(body, timestamp))
    )
    return f"{SIG_PREFIX}{name} {b64(blob)}\n"


def verified_cosigners(note_text: str, witnesses: Iterable[VerifierKey]) -> dict[str, int]:
    """Witness name -> timestamp for every valid cosignature of a trusted witness on the note.

    Lines from unknown keys are ignored (C2SP); a line that names a trusted key but
    does not verify raises CheckpointError, as a forged cosignature is an alarm.
    """
    _, signatures, body = parse_note(note_text)
    trusted = {(w.name, w.key_id): w for w in witnesses if w.alg == COSIGNATURE_ALG}
    found: dict[str, int] = {}
    for name, line_id, blob in signatures:
        witness = trusted.get((name, line_id))
        if witness is None:
            continue
        if len(blob) != 8 + SIGNATURE_BYTES:
            raise CheckpointError(
                f"cosignature of {name} is not a timestamp and an Ed25519 signature"
            )
        (timestamp,) = struct.unpack(">Q", blob[:8])
        if timestamp > MAX_TIMESTAMP or not verify(
            witness.public_raw, blob[8:], signed_message(body, timestamp)
        ):
            raise CheckpointError(f"cosignature of {name} does not verify")
        found[name] = timestamp
    return found


def with_cosignatures(note_text: str, lines: Iterable[str]) -> str:
    """The note with cosignature lines appended (each ends with a newline), duplicates dropped."""
    present = set(note_text.splitlines())
    extra = [line for line in lines if line.rstrip("\n") not in present]
    return note_text + "".join(line if line.endswith("\n") else line + "\n" for line in extra)
