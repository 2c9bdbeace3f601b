"""API bearer tokens: random secrets shown once, stored only as SHA-256 hashes.

A token is `lt_<id>_<secret>`; the id finds the row, the hash of the whole
token must match. Scopes are a fixed vocabulary plus `centre:<id>` scopes (a
centre's staff) and `candidate:<id>` scopes (a holder downloading their own
attestation, created by the platform).

A serving process remembers a checked token for `cache_s` seconds (keyed by the
token's hash, never the token), so a busy client costs no database read per
request; a revocation is seen at once by the process that made it, and by every
other process within `cache_s` (LEDGER_TOKEN_CACHE_S; 0 reads every time).
"""

from __future__ import annotations

import hmac
import re
import time
from dataclasses import dataclass

from ledger import crypto
from ledger.domain import clock
from ledger.lru import LRU
from ledger.store.db import Database

SCOPES = ("events:append", "audit:read", "admin", "admission-platform", "metrics")
CENTRE_SCOPE = re.compile(r"^centre:[0-9a-f-]{36}$")
CANDIDATE_SCOPE = re.compile(r"^candidate:[0-9a-f-]{36}$")
INSTITUTION_SCOPE = re.compile(r"^institution:[0-9]{7}[A-Z]\Z")  # a school by its UAI
TOKEN_FORMAT = re.compile(r"^lt_([A-Za-z0-9]{12})_([A-Za-z0-9_-]{43})$")


class TokenError(ValueError):
    """Unknown scope, or a token that does not exist / was revoked."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: a token id and what it may do."""

    token_id: str
    label: str
    scopes: frozenset[str]

    def has(self, scope: str) -> bool:
        """`centre:*` / `candidate:*` match any such scope; admin holds every scope."""
        if "admin" in self.scopes or scope in self.scopes:
            return True
        if scope == "candidate:*":
            return any(s.startswith("candidate:") for s in self.scopes)
        if scope == "institution:*":
            return any(s.startswith("institution:") for s in self.scopes)
        return scope == "centre:*" and bool(self.centres())

    @property
    def is_admin(self) -> bool:
        return "admin" in self.scopes

    def centres(self) -> set[str]:
        return {s.split(":", 1)[1] for s in self.scopes if s.startswith("centre:")}


def check_scopes(scopes: list[str]) -> list[str]:
    unknown = [
        s
        for s in scopes
        if s not in SCOPES
        and not CENTRE_SCOPE.match(s)
        and not CANDIDATE_SCOPE.match(s)
        and not INSTITUTION_SCOPE.match(s)
    ]
    if unknown or not scopes:
        raise TokenError(
            f"unknown scope(s): {', '.join(unknown)}" if unknown else "at least one scope needed"
        )
    return sorted(set(scopes))


def _hash(token: str) -> str:
    return crypto.sha256_hex(token.encode())


CACHED_TOKENS = 4096  # tokens a process remembers: bounded whatever clients send


class TokenStore:
    def __init__(self, db: Database, cache_s: float = 0):
        self.db = db
        self.cache_s = cache_s
        self._checked: LRU[tuple[Principal, float]] = LRU(CACHED_TOKENS)

    def create(self, scopes: list[str], label: str = "") -> tuple[str, str]:
        """Return (token id, token). The token is shown once and never stored."""
        scopes = check_scopes(scopes)
        token_id = crypto.random_token(9).replace("-", "x").replace("_", "y")[:12]
        token = f"lt_{token_id}_{crypto.random_token(32)}"
        with self.db.write(lock=None) as cur:
            cur.execute(
                "INSERT INTO api_tokens (id, token_hash, scopes, label, created) VALUES (?,?,?,?,?)",
                (token_id, _hash(token), " ".join(scopes), label, clock.format_time(clock.now())),
            )
        return token_id, token

    def authenticate(self, token: str) -> Principal | None:
        """The token's principal, or None; a valid token checked less than `cache_s` ago
        is not read again."""
        match = TOKEN_FORMAT.match(token or "")
        if not match:
            return None
        digest = _hash(token)
        cached = self._checked.get(digest)
        if cached is not None and time.monotonic() < cached[1]:
            return cached[0]
        principal = self._read(match.group(1), digest)
        if principal is not None and self.cache_s > 0:
            self._checked[digest] = (principal, time.monotonic() + self.cache_s)
        return principal

    def _read(self, token_id: str, digest: str) -> Principal | None:
        row = self.db.row(
            "SELECT token_hash, scopes, label, revoked FROM api_tokens WHERE id = ?", (token_id,)
        )
        if row is None or row[3] is not None or not hmac.compare_digest(row[0], digest):
            return None
        return Principal(token_id, row[2], frozenset(row[1].split()))

    def revoke(self, token_id: str) -> bool:
        """Revoke in the database; this process forgets every checked token at once."""
        self._checked.clear()
        with self.db.write(lock=None) as cur:
            cur.execute(
                "UPDATE api_tokens SET revoked = ? WHERE id = ? AND revoked IS NULL",
                (clock.format_time(clock.now()), token_id),
            )
            cur.execute("SELECT revoked FROM api_tokens WHERE id = ?", (token_id,))
            row = cur.fetchone()
        return row is not None and row[0] is not None

    def list(self) -> list[dict[str, str | None]]:
        with self.db.read() as cur:
            cur.execute(
                "SELECT id, scopes, label, created, revoked FROM api_tokens ORDER BY created"
            )
            rows = cur.fetchall()
        keys = ("id", "scopes", "label", "created", "revoked")
        return [dict(zip(keys, row, strict=True)) for row in rows]
