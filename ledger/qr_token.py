"""The certificate QR token (format section 7): a compact JWS, EdDSA over Ed25519.

Header `{"alg":"EdDSA","kid":…,"typ":"cert+jws"}`; payload with short claim
names so the whole URL stays well under 700 bytes and prints as a QR code
phones read from paper. Anyone holding the JWKS can check it offline.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ledger import crypto

TYP = "cert+jws"
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
HEX64 = re.compile(r"^[0-9a-f]{64}$")
CODE = re.compile(r"^P-[2346789BCDFGHJKMPQRTVWXY]{8}$")


class TokenInvalid(ValueError):
    """A token that is malformed, signed by an unknown key, forged, or not ours."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class CertificateClaims:
    code: str
    first_name: str
    last_name: str
    birth_date: str
    levels: str
    pix_score: int
    max_level: int
    issued_on: str
    valid_until: str
    event_hash: str

    def to_payload(self) -> dict[str, Any]:
        return {
            "c": self.code, "fn": self.first_name, "ln": self.last_name, "bd": self.birth_date,
            "l": self.levels, "p": self.pix_score, "m": self.max_level, "iat": self.issued_on,
            "exp": self.valid_until, "h": self.event_hash,
        }  # fmt: skip

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> CertificateClaims:
        try:
            claims = cls(
                payload["c"], payload["fn"], payload["ln"], payload["bd"], payload["l"],
                payload["p"], payload["m"], payload["iat"], payload["exp"], payload["h"],
            )  # fmt: skip
        except (KeyError, TypeError) as exc:
            raise TokenInvalid("the token's claims are incomplete", "bad-claims") from exc
        claims.check()
        return claims

    def check(self) -> None:
        texts = (self.code, self.first_name, self.last_name, self.birth_date, self.levels,
                 self.issued_on, self.valid_until, self.event_hash)  # fmt: skip
        ints = (self.pix_score, self.max_level)
        if not all(isinstance(v, str) for v in texts) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in ints
        ):
            raise TokenInvalid("the token's claims have the wrong types", "bad-claims")
        well_formed = (
            CODE.match(self.code) and DATE.match(self.issued_on) and DATE.match(self.valid_until)
            and (self.birth_date == "" or DATE.match(self.birth_date)) and HEX64.match(self.event_hash)
            and len(self.levels) == 16 and self.levels.isdigit() and 1 <= self.max_level <= 8
        )  # fmt: skip
        if not well_formed:
            raise TokenInvalid("the token's claims are malformed", "bad-claims")


def _part(value: dict[str, Any]) -> str:
    return crypto.b64url(crypto.canonical_json(value))


def sign_token(claims: CertificateClaims, key: crypto.SigningKey) -> str:
    header = {"alg": "EdDSA", "kid": key.kid, "typ": TYP}
    signing_input = f"{_part(header)}.{_part(claims.to_payload())}"
    return f"{signing_input}.{crypto.b64url(key.sign(signing_input.encode('ascii')))}"


def _json_part(text: str) -> dict[str, Any]:
    try:
        value = json.loads(crypto.b64url_decode(text))
    except (crypto.CryptoError, ValueError) as exc:
        raise TokenInvalid("the token is not a compact JWS", "malformed") from exc
    if not isinstance(value, dict):
        raise TokenInvalid("the token is not a compact JWS", "malformed")
    return value


def decode_unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and payload, without checking anything: for display and key lookup only."""
    parts = token.split(".") if isinstance(token, str) else []
    if len(parts) != 3:
        raise TokenInvalid("the token is not a compact JWS", "malformed")
    return _json_part(parts[0]), _json_part(parts[1])


def verify_token(token: str, jwks: dict[str, Any]) -> CertificateClaims:
    header, payload = decode_unverified(token)
    if header.get("alg") != "EdDSA" or header.get("typ") != TYP:
        raise TokenInvalid("the token is not a certificate token", "malformed")
    keys = {k.get("kid"): k for k in jwks.get("keys", []) if isinstance(k, dict)}
    jwk = keys.get(header.get("kid"))
    if jwk is None:
        raise TokenInvalid(
            "the token was signed with a key this ledger never published", "unknown-key"
        )
    head, body, signature = token.split(".")
    try:
        public = crypto.public_key_from_jwk(jwk)
        sig = crypto.b64url_decode(signature)
    except crypto.CryptoError as exc:
        raise TokenInvalid("the token's signature is malformed", "bad-signature") from exc
    if not crypto.verify(public, sig, f"{head}.{body}".encode("ascii")):
        raise TokenInvalid("the token's signature does not verify", "bad-signature")
    return CertificateClaims.from_payload(payload)


def qr_url(public_url: str, code: str, token: str) -> str:
    return f"{public_url.rstrip('/')}/v/{code}?t={token}"


def parse_qr_url(text: str, public_url: str | None = None) -> tuple[str, str]:
    """(code, token) from a verify URL; TokenInvalid('foreign') for anything else."""
    parts = urlsplit(text.strip())
    match = re.fullmatch(r"/v/([^/]+)", parts.path or "")
    tokens = parse_qs(parts.query).get("t", [])
    if parts.scheme not in ("http", "https") or not match or len(tokens) != 1:
        raise TokenInvalid("this is not a certificate verification link", "foreign")
    if public_url is not None:
        ours = urlsplit(public_url)
        if (parts.scheme, parts.netloc) != (ours.scheme, ours.netloc):
            raise TokenInvalid("this link points to another site", "foreign")
    return match.group(1), tokens[0]
