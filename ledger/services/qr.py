"""QR tokens for certificates: issue one from the ledger, and check one against it.

A token is a signed snapshot (format section 7). Checking it answers two
questions: is the signature good (no forgery), and does the ledger still say
the same thing now (not cancelled, not rescored since)?
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ledger.qr_token import (
    CertificateClaims,
    TokenInvalid,
    decode_unverified,
    levels_string,
    qr_url,
    sign_token,
    verify_token,
)
from ledger.services.verification import trusted_jwks
from ledger.store.application import Ledger

CURRENT, OUTDATED, INVALID, OTHER = "current", "outdated", "invalid", "other"


def current_payload(view: dict[str, Any]) -> dict[str, Any]:
    """The claims a token issued now would carry, from a public certificate view."""
    holder = view["holder"] or {}
    competences = [c for d in view["domains"] for c in d["competences"]]
    return {
        "c": view["code"],
        "fn": holder.get("first_name", ""),
        "ln": holder.get("last_name", ""),
        "bd": holder.get("birth_date", ""),
        "l": levels_string(competences),
        "p": view["pix_score"],
        "m": view["max_level"],
        "iat": view["issued_on"],
        "exp": view["valid_until"],
        "h": view["proof"]["hash"],
    }


def issue_token(ledger: Ledger, view: dict[str, Any]) -> str:
    """Sign the certificate's current state with the chain's current key."""
    claims = CertificateClaims.from_payload(current_payload(view))
    return sign_token(claims, ledger.signing_key())


def token_url(ledger: Ledger, view: dict[str, Any]) -> str:
    return qr_url(ledger.config.public_url, view["code"], issue_token(ledger, view))


@dataclass
class TokenCheck:
    """How a scanned token relates to the ledger's current state."""

    state: str
    reason: str = ""
    kid: str = ""
    code: str = ""
    differences: list[str] = field(default_factory=list)


def check_token(ledger: Ledger, view: dict[str, Any], token: str) -> TokenCheck:
    try:
        claims = verify_token(token, trusted_jwks(ledger))
    except TokenInvalid as exc:
        return TokenCheck(INVALID, reason=exc.reason)
    header, _ = decode_unverified(token)
    payload = claims.to_payload()
    if payload["c"] != view["code"] or payload["h"] != view["proof"]["hash"]:
        return TokenCheck(OTHER, kid=header["kid"], code=payload["c"])
    now = current_payload(view)
    differences = []
    if view["status"] == "cancelled":
        differences.append("cancelled")
    if (payload["l"], payload["p"]) != (now["l"], now["p"]):
        differences.append("rescored")
    if view["holder"] and (payload["fn"], payload["ln"], payload["bd"]) != (
        now["fn"],
        now["ln"],
        now["bd"],
    ):
        differences.append("holder")
    return TokenCheck(
        OUTDATED if differences else CURRENT, kid=header["kid"], differences=differences
    )
