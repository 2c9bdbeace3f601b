"""The witness's key: DIR/witness.key (Ed25519 PKCS#8, mode 0600) and DIR/witness.vkey.

The vkey (`<name>+<key ID>+base64(0x04 || key)`, C2SP tlog-cosignature) is public:
the witness's operator hands it to log operators and auditors, who verify its
cosignatures with it. It also records the witness's name, which the key ID binds.
"""

from __future__ import annotations

import os
from pathlib import Path

from ledger.audit.checkpoint import CheckpointError
from ledger.audit.cosignature import VerifierKey, parse_vkey, witness_vkey
from ledger.crypto import CryptoError, SigningKey
from ledger.keys import KeyFileError, write_secret
from ledger.witness.state import WitnessState

KEY_FILE = "witness.key"
VKEY_FILE = "witness.vkey"
STATE_FILE = "witness.sqlite"


def init(directory: Path, name: str) -> VerifierKey:
    """Create the key, the vkey and an empty state; refuse to replace an existing key."""
    key_path = directory / KEY_FILE
    if key_path.exists():
        raise KeyFileError(f"{key_path} exists: a witness key is never overwritten")
    key = SigningKey.generate()
    try:
        vkey = witness_vkey(name, key)
        parse_vkey(str(vkey))  # the name must be a valid C2SP key name
    except CheckpointError as exc:
        raise KeyFileError(f"witness name: {exc}") from None
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_secret(key_path, key.to_pem())
    (directory / VKEY_FILE).write_text(f"{vkey}\n", encoding="utf-8")
    WitnessState(directory / STATE_FILE).create()
    return vkey


def load(directory: Path) -> tuple[VerifierKey, SigningKey]:
    """The witness's vkey and private key, checked to belong together."""
    try:
        pem = (directory / KEY_FILE).read_bytes()
        vkey_text = (directory / VKEY_FILE).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        raise KeyFileError(f"no witness key in {directory}: run `ledger witness init`") from None
    if os.stat(directory / KEY_FILE).st_mode & 0o077:
        raise KeyFileError(f"{directory / KEY_FILE} is readable by others: chmod 600 it")
    try:
        key = SigningKey.from_pem(pem)
        vkey = parse_vkey(vkey_text)
    except (CryptoError, CheckpointError) as exc:
        raise KeyFileError(f"witness key files in {directory}: {exc}") from None
    if vkey != witness_vkey(vkey.name, key):
        raise KeyFileError(f"{VKEY_FILE} is not the public key of {KEY_FILE}")
    return vkey, key


def state(directory: Path) -> WitnessState:
    return WitnessState(directory / STATE_FILE)
