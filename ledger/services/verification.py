"""The public view of a certificate, with its signature checked, not just read from a row.

Used by the public API and the verify site alike: only what the certificate
page shows (holder's names and birth date, centre, dates, status, levels,
pix), plus a proof panel computed from the issuing envelope itself.
"""

from __future__ import annotations

import time
from typing import Any

from ledger import crypto
from ledger.domain import clock
from ledger.domain.referential import Referential
from ledger.projections.certificates import by_code, public_status
from ledger.services.certification import CENTRE_TZ
from ledger.store.application import Ledger


def check_envelope(ledger: Ledger, seq: int) -> dict[str, Any]:
    """Hash, signature and chain link of one stored event, its key endorsed from the anchor."""
    env = ledger.recorder.envelope(seq)
    if env is None:
        return {
            "seq": seq,
            "hash": None,
            "kid": None,
            "signature_valid": False,
            "chain_link_valid": False,
        }
    valid = ledger.key_history().verify_one(env)  # the key only through the anchor's chain
    previous = ledger.recorder.envelope(seq - 1) if seq > 1 else None
    link = env.prev == (previous.hash if previous else crypto.ZERO_HASH)
    return {
        "seq": seq,
        "hash": env.hash,
        "kid": env.kid,
        "signature_valid": valid,
        "chain_link_valid": link,
    }


def grouped_levels(ref: Referential, competences: list[dict[str, Any]]) -> list[dict[str, Any]]:
    levels = {c["code"]: c["level"] for c in competences}
    return [
        {
            "code": domain.code,
            "title": domain.title,
            "competences": [
                {"code": c.code, "title": c.title, "level": levels.get(c.code, 0)}
                for c in ref.competences_of(domain.code)
            ],
        }
        for domain in ref.domains
    ]


def holder_of(ledger: Ledger, sealed: dict[str, Any]) -> dict[str, str] | None:
    identity = ledger.vault.open_or_none(sealed)
    if identity is None:
        return None
    return {k: identity[k] for k in ("first_name", "last_name", "birth_date")}


def public_certificate(ledger: Ledger, ref: Referential, code: str) -> dict[str, Any] | None:
    with ledger.db.read() as cur:
        cert = by_code(cur, code)
    if cert is None:
        return None
    status = public_status(cert, clock.now().astimezone(CENTRE_TZ).date())
    proof = check_envelope(ledger, cert["issued_seq"])
    proof["latest_seq"] = cert["latest_seq"]
    return {
        "code": cert["code"],
        "holder": holder_of(ledger, cert["holder"]),
        "centre": cert["centre_name"],
        "passed_on": cert["passed_on"],
        "issued_on": cert["issued_on"],
        "valid_until": cert["valid_until"],
        "status": status["status"],
        "status_since": status["since"],
        "status_reason": status["reason"],
        "max_level": cert["max_level"],
        "pix_score": cert["pix_score"],
        "domains": grouped_levels(ref, cert["competences"]),
        "history": cert["history"],
        "proof": proof,
    }


class PublicViews:
    """Public certificate views, cached until the log moves or the day changes.

    Every answer is still computed from the log and re-checked signatures; the
    cache only avoids redoing that work for a state that has not changed. The
    log's head is read at most every FRESHNESS_S seconds under load, and at once
    after this process wrote: another node's cancellation shows within 50 ms,
    this node's immediately.
    """

    MAX_ENTRIES = 20_000
    FRESHNESS_S = 0.05

    def __init__(self, api_state: Any):
        self._state = api_state
        self._key: tuple[int, str] | None = None
        self._views: dict[str, dict[str, Any] | None] = {}
        self.pages: dict[tuple, str] = {}
        self._checked_at = 0.0
        self._seen_writes = -1

    def _head(self) -> int:
        recorder = self._state.ledger.recorder
        now = time.monotonic()
        if (
            self._key is None
            or now - self._checked_at > self.FRESHNESS_S
            or recorder.writes != self._seen_writes
        ):
            self._seen_writes = recorder.writes
            self._checked_at = now
            return self._state.fresh()
        return self._key[0]

    def _sync(self) -> None:
        key = (self._head(), clock.now().astimezone(CENTRE_TZ).date().isoformat())
        if (
            key != self._key
            or len(self._views) > self.MAX_ENTRIES
            or len(self.pages) > self.MAX_ENTRIES
        ):
            self._key = key
            self._views.clear()
            self.pages.clear()

    def get(self, code: str) -> dict[str, Any] | None:
        self._sync()
        if code in self._views:
            return self._views.get(code)
        view = public_certificate(self._state.ledger, self._state.referential, code)
        self._views[code] = view
        return view
