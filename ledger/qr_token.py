"""The certificate QR token (format section 7): a compact JWS, EdDSA over Ed25519.

A printed certificate carries `<public URL>/v/<code>?t=<token>`. The token is a
signed snapshot of what the ledger said at issue time, so anyone holding the
JWKS can check a paper certificate offline. Short claim names keep the whole
URL under 700 bytes: a QR code of moderate version that phones read from paper.

Only the ledger issues tokens, so verification is strict: every part must be
the exact bytes the issuer produces (unpadded base64url of JCS), which leaves
one valid encoding per claims set and key.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import unquote, urlsplit

from ledger import crypto
from ledger.domain.certificate import CODE_ALPHABET, CODE_LENGTH
from ledger.domain.referential import COMPETENCE_CODES, MAX_DIFFICULTY

ALG = "EdDSA"
TYP = "cert+jws"
HEADER_MEMBERS = frozenset({"alg", "kid", "typ"})
CLAIM_NAMES = ("c", "fn", "ln", "bd", "l", "p", "m", "iat", "exp", "h")
MAX_TOKEN_CHARS = 4096
SIGNATURE_BYTES = 64
MALFORMED, UNKNOWN_KEY, BAD_SIGNATURE, BAD_CLAIMS, FOREIGN = (
    "malformed", "unknown-key", "bad-signature", "bad-claims", "foreign",
)  # fmt: skip

CODE = re.compile(f"P-[{CODE_ALPHABET}]{{{CODE_LENGTH}}}")
ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
HEX64 = re.compile(r"[0-9a-f]{64}")
LEVELS = re.compile(f"[0-{MAX_DIFFICULTY}]{{{len(COMPETENCE_CODES)}}}")
B64URL = re.compile(r"[A-Za-z0-9_-]+")
DEFAULT_PORTS = {"http": 80, "https": 443}


class TokenInvalid(ValueError):
    """A token or link that cannot be trusted; `reason` is a stable slug for callers."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


# --- claims ----------------------------------------------------------------


def levels_string(competences: list[dict[str, Any]]) -> str:
    """16 digits, one per competence in referential order; 0 for a competence not certified."""
    levels = {c["code"]: c["level"] for c in competences}
    return "".join(str(levels.get(code, 0)) for code in COMPETENCE_CODES)


@dataclass(frozen=True)
class CertificateClaims:
    """What a token asserts. Always well formed: construction checks every field."""

    code: str
    first_name: str
    last_name: str
    birth_date: str  # "" once the holder's identity has been erased
    levels: str
    pix_score: int
    max_level: int
    issued_on: str
    valid_until: str
    event_hash: str

    def __post_init__(self) -> None:
        problem = _claims_problem(self)
        if problem:
            raise TokenInvalid(f"the token's claims are not valid: {problem}", BAD_CLAIMS)

    @classmethod
    def from_certificate(
        cls, cert: dict[str, Any], holder: dict[str, Any] | None, event_hash: str
    ) -> CertificateClaims:
        """Claims for a certificate row, its opened holder (None if erased) and issuing hash."""
        holder = holder or {}
        return cls(
            code=cert["code"],
            first_name=holder.get("first_name", ""),
            last_name=holder.get("last_name", ""),
            birth_date=holder.get("birth_date", ""),
            levels=levels_string(cert["competences"]),
            pix_score=cert["pix_score"],
            max_level=cert["max_level"],
            issued_on=cert["issued_on"],
            valid_until=cert["valid_until"],
            event_hash=event_hash,
        )

    def competence_levels(self) -> dict[str, int]:
        return {code: int(level) for code, level in zip(COMPETENCE_CODES, self.levels, strict=True)}

    def to_payload(self) -> dict[str, Any]:
        return {
            "c": self.code, "fn": self.first_name, "ln": self.last_name, "bd": self.birth_date,
            "l": self.levels, "p": self.pix_score, "m": self.max_level, "iat": self.issued_on,
            "exp": self.valid_until, "h": self.event_hash,
        }  # fmt: skip

    @classmethod
    def from_payload(cls, payload: Any) -> CertificateClaims:
        """Exactly the ten claims, nothing missing and nothing extra."""
        if not isinstance(payload, dict) or set(payload) != set(CLAIM_NAMES):
            raise TokenInvalid("the token does not carry the certificate claims", BAD_CLAIMS)
        return cls(*(payload[name] for name in CLAIM_NAMES))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_date(value: Any) -> bool:
    if not isinstance(value, str) or not ISO_DATE.fullmatch(value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _is_name(value: Any) -> bool:
    """Any text that JSON can carry as UTF-8 (lone surrogates cannot be signed)."""
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _claims_problem(claims: CertificateClaims) -> str:
    """The first thing wrong with `claims`, or "" when they are well formed."""
    checks = (
        (isinstance(claims.code, str) and CODE.fullmatch(claims.code), "code"),
        (_is_name(claims.first_name) and _is_name(claims.last_name), "names"),
        (claims.birth_date == "" or _is_date(claims.birth_date), "birth date"),
        (_is_int(claims.max_level) and 1 <= claims.max_level <= MAX_DIFFICULTY, "max level"),
        (isinstance(claims.levels, str) and LEVELS.fullmatch(claims.levels), "levels"),
        (_is_int(claims.pix_score) and 0 <= claims.pix_score <= crypto.MAX_SAFE_INT, "pix score"),
        (_is_date(claims.issued_on) and _is_date(claims.valid_until), "dates"),
        (isinstance(claims.event_hash, str) and HEX64.fullmatch(claims.event_hash), "hash"),
    )
    for ok, what in checks:
        if not ok:
            return what
    if max(int(level) for level in claims.levels) > claims.max_level:
        return "a level above the max level"
    if claims.valid_until < claims.issued_on:
        return "valid until before issued on"
    return ""


# --- compact JWS -----------------------------------------------------------


def _encode(value: dict[str, Any]) -> str:
    return crypto.b64url(crypto.canonical_json(value))


def sign_token(claims: CertificateClaims, key: crypto.SigningKey) -> str:
    """Compact JWS of `claims`, signed by `key` (deterministic: Ed25519 has no nonce)."""
    header = {"alg": ALG, "kid": key.kid, "typ": TYP}
    signing_input = f"{_encode(header)}.{_encode(claims.to_payload())}"
    signature = key.sign(signing_input.encode("ascii"))
    return f"{signing_input}.{crypto.b64url(signature)}"


def _malformed(message: str) -> TokenInvalid:
    return TokenInvalid(message, MALFORMED)


def _raw(part: str) -> bytes:
    """Bytes of one part, refusing non-canonical base64url (extra bits, stray characters)."""
    if not B64URL.fullmatch(part):
        raise _malformed("the token is not base64url")
    raw = crypto.b64url_decode(part)
    if crypto.b64url(raw) != part:
        raise _malformed("the token is not canonical base64url")
    return raw


def _json_object(part: str) -> dict[str, Any]:
    """A JSON object whose bytes are exactly its JCS form, as the issuer writes them."""
    raw = _raw(part)
    try:
        value = json.loads(raw)
        canonical = isinstance(value, dict) and crypto.canonical_json(value) == raw
    except (ValueError, TypeError, RecursionError, crypto.CryptoError):
        canonical = False
    if not canonical:
        raise _malformed("the token's header or payload is not canonical JSON")
    return value


def _split(token: Any) -> list[str]:
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
        raise _malformed("the token is missing or too long")
    parts = token.split(".")
    if len(parts) != 3:
        raise _malformed("the token is not a compact JWS (three dot-separated parts)")
    return parts


def _header(part: str) -> dict[str, Any]:
    header = _json_object(part)
    if set(header) != HEADER_MEMBERS or not isinstance(header["kid"], str):
        raise _malformed("the token header is not alg, kid and typ")
    if header["alg"] != ALG or header["typ"] != TYP:
        raise _malformed("this is not a certificate token (alg EdDSA, typ cert+jws)")
    return header


def decode_unverified(token: str) -> tuple[dict[str, Any], CertificateClaims]:
    """Header and claims WITHOUT checking the signature: for display and key lookup only."""
    head, body, _ = _split(token)
    return _header(head), CertificateClaims.from_payload(_json_object(body))


def _public_key(jwks: Any, kid: str) -> bytes:
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    for jwk in keys if isinstance(keys, list) else []:
        if isinstance(jwk, dict) and jwk.get("kid") == kid and jwk.get("alg", ALG) == ALG:
            try:
                return crypto.public_key_from_jwk(jwk)
            except crypto.CryptoError:
                break
    raise TokenInvalid("the token was signed with a key this ledger does not publish", UNKNOWN_KEY)


def verify_token(token: str, jwks: dict[str, Any]) -> CertificateClaims:
    """Claims of a token whose signature checks against `jwks` ({"keys": [...]})."""
    head, body, signature = _split(token)
    header, payload, sig = _header(head), _json_object(body), _raw(signature)
    public = _public_key(jwks, header["kid"])
    if len(sig) != SIGNATURE_BYTES or not crypto.verify(public, sig, f"{head}.{body}".encode()):
        raise TokenInvalid("the token's signature does not match its content", BAD_SIGNATURE)
    return CertificateClaims.from_payload(payload)


# --- the URL printed as a QR code ------------------------------------------


def qr_url(public_url: str, code: str, token: str) -> str:
    return f"{public_url.rstrip('/')}/v/{code}?t={token}"


def _foreign(message: str = "this is not a certificate verification link") -> TokenInvalid:
    return TokenInvalid(message, FOREIGN)


def _origin(scheme: str, host: str | None, port: int | None) -> tuple[str, str, int | None]:
    scheme = scheme.lower()
    return scheme, (host or "").lower(), port or DEFAULT_PORTS.get(scheme)


def parse_qr_url(text: str, public_url: str | None = None) -> tuple[str, str]:
    """(code, token) from `<public_url>/v/<code>?t=<token>`; TokenInvalid("foreign") otherwise.

    A QR code for another site, or no link at all, must be told apart from a
    forged token, so this looks only at the link's shape, never inside the token.
    """
    try:
        link = urlsplit(text.strip())
        origin = _origin(link.scheme, link.hostname, link.port)
        site = urlsplit(public_url) if public_url is not None else link
        expected = _origin(site.scheme, site.hostname, site.port)
    except (AttributeError, TypeError, ValueError) as exc:
        raise _foreign() from exc
    prefix = re.escape(site.path.rstrip("/")) if public_url is not None else "(?:/.*)?"
    found = re.fullmatch(f"{prefix}/v/({CODE.pattern})", link.path)
    query = re.fullmatch(r"t=([^&]+)", link.query)
    if origin[0] not in DEFAULT_PORTS or link.username is not None or not found or not query:
        raise _foreign()
    if origin != expected:
        raise _foreign("this link points to another site")
    return found.group(1), unquote(query.group(1))
