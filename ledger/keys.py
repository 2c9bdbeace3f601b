"""Signing-key files: creation, rotation, the active key, and the master key.

Layout of the keys directory (never committed, never in the database):
    <kid>.pem      one Ed25519 private key per file (PKCS#8, mode 0600)
    active         the kid of the key in use (a rotation updates it)
    master.key     base64url 32-byte key wrapping per-person data keys
    anchor.json    the trust anchor (public): the first key and the log origin
    attestation/   ECDSA P-256 CA and document-signing certificate for attestation
                   PDFs (ledger/attestation/ca.py); a subdirectory, so `*.pem` here
                   stays the Ed25519 keys only
Public keys reach the JWKS through key events in the log, each endorsed by
the key it replaces (ledger/trust.py): the chain, not `active`, decides
which key signs once the log has its first key.
"""

from __future__ import annotations

import os
from pathlib import Path

from ledger.crypto import (
    CryptoError,
    SigningKey,
    b64url,
    b64url_decode,
    derive_key,
    hmac_sha256_hex,
    new_data_key,
)

ACTIVE_FILE = "active"
MASTER_FILE = "master.key"


class KeyFileError(Exception):
    """A key file is missing or unusable; the message says which and why."""


def write_secret(path: Path, content: bytes) -> None:
    """Write a secret atomically, readable by the owner only."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _read_when_changed(path: Path, cached: tuple[int, str] | None, missing: str) -> tuple[int, str]:
    """(mtime, text) of a small key file, read again only when its mtime changed."""
    try:
        stamp = path.stat().st_mtime_ns
    except FileNotFoundError:
        raise KeyFileError(missing) from None
    if cached is None or cached[0] != stamp:
        cached = (stamp, path.read_text().strip())
    return cached


class KeyRing:
    """The private keys this node holds, and which one is active."""

    def __init__(self, directory: Path, master_key: str = ""):
        self.directory = directory
        self._master_override = master_key
        self._master: tuple[int, str] | None = None  # (file mtime, text) of the master key
        self._derived: dict[bytes, tuple[bytes, bytes]] = {}  # info -> (master key, derived key)
        self._cache: dict[str, SigningKey] = {}
        self._active: tuple[int, str] | None = None

    def exists(self) -> bool:
        return (self.directory / ACTIVE_FILE).is_file()

    def create(self) -> SigningKey:
        """Generate a key, store it and make it the active one."""
        key = self.generate()
        self.activate(key.kid)
        return key

    def generate(self) -> SigningKey:
        """Generate and store a key without making it active (a rotation endorses it first)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        key = SigningKey.generate()
        write_secret(self.directory / f"{key.kid}.pem", key.to_pem())
        self._cache[key.kid] = key
        return key

    def activate(self, kid: str) -> None:
        write_secret(self.directory / ACTIVE_FILE, kid.encode())
        self._active = None

    def ensure_master_key(self) -> None:
        if self._master_override or (self.directory / MASTER_FILE).is_file():
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        write_secret(self.directory / MASTER_FILE, b64url(new_data_key()).encode())

    def active(self) -> SigningKey:
        """The key that signs now; the `active` file is re-read only when it changes."""
        missing = f"no active signing key in {self.directory}: run `ledger keys init`"
        self._active = _read_when_changed(self.directory / ACTIVE_FILE, self._active, missing)
        return self.get(self._active[1])

    def get(self, kid: str) -> SigningKey:
        if kid not in self._cache:
            path = self.directory / f"{kid}.pem"
            if not path.is_file():
                raise KeyFileError(f"signing key {kid} is not in {self.directory}")
            try:
                self._cache[kid] = SigningKey.from_pem(path.read_bytes())
            except CryptoError as exc:
                raise KeyFileError(f"{path.name}: {exc}") from exc
        return self._cache[kid]

    def all(self) -> list[SigningKey]:
        """Every private key held here, oldest file first."""
        files = sorted(self.directory.glob("*.pem"), key=lambda p: p.stat().st_mtime)
        return [self.get(p.stem) for p in files]

    def master_key(self) -> bytes:
        raw = self._master_override or self._master_file()
        try:
            key = b64url_decode(raw)
        except CryptoError as exc:
            raise KeyFileError("master key is not base64url") from exc
        if len(key) != 32:
            raise KeyFileError("master key must be 32 bytes")
        return key

    def _master_file(self) -> str:
        """The master key file's text, re-read only when the file changes (every MAC needs it)."""
        missing = f"no master key in {self.directory}: run `ledger keys init`"
        self._master = _read_when_changed(self.directory / MASTER_FILE, self._master, missing)
        return self._master[1]

    def master_mac(self, info: bytes, *parts: str) -> str:
        """HMAC-SHA256 of `parts` (NUL-joined) under a key derived from the master key for `info`.

        What the database keeps beside the log (indexes, folds) is trusted again only
        through this: the database never holds the master key.
        """
        master = self.master_key()
        cached = self._derived.get(info)
        if cached is None or cached[0] != master:  # the file may be replaced: derive again
            cached = (master, derive_key(master, info))
            self._derived[info] = cached
        return hmac_sha256_hex(cached[1], "\0".join(parts).encode())
