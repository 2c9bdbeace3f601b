"""Certificates by code and by candidate, with their history and issuing proof.

Status is stored as issued / cancelled; "valid" or "expired" depends on the
day it is read, so `public_status` computes it with the domain clock.

A reason is kept as the event holds it: sealed under the holder's subject
(`status_reason` holds its JSON, `history` the object), or clear text from
events written before reasons were sealed. Rows read back hold the sealed
object, to be opened for display (`ledger.services.verification.opened_reason`).

A rescoring's history entry says what changed and why: the pix score before
and after, the scoring-rules version and the cause (`rescored_entry`, shared
with `ledger.services.signed_certificate` so the two can never drift apart).
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from ledger.domain.certificate import LATE_ISSUE_REPORT
from ledger.domain.scoring import LEGACY_RULES
from ledger.envelope import Envelope

SCHEMA = """
-- history entries of rescorings hold cause, rules and previous_pix_score: a read
-- model built before them is replayed (the runner compares this text's fingerprint)
CREATE TABLE IF NOT EXISTS proj_certificates (
    code TEXT PRIMARY KEY,
    certificate TEXT NOT NULL,
    candidate TEXT NOT NULL,
    subject TEXT NOT NULL,
    holder TEXT NOT NULL,
    course TEXT NOT NULL,
    session TEXT NOT NULL,
    centre_id TEXT NOT NULL,
    centre_name TEXT NOT NULL,
    centre_city TEXT NOT NULL,
    passed_on TEXT NOT NULL,
    issued_on TEXT NOT NULL,
    valid_until TEXT NOT NULL,
    competences TEXT NOT NULL,
    pix_score INTEGER NOT NULL,
    max_level INTEGER NOT NULL,
    status TEXT NOT NULL,
    status_reason TEXT,
    status_on TEXT,
    issued_seq BIGINT NOT NULL,
    latest_seq BIGINT NOT NULL,
    history TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS proj_certificates_by_candidate ON proj_certificates (candidate)
"""
COLUMNS = (
    "code", "certificate", "candidate", "subject", "holder", "course", "session", "centre_id",
    "centre_name", "centre_city", "passed_on", "issued_on", "valid_until", "competences",
    "pix_score", "max_level", "status", "status_reason", "status_on", "issued_seq", "latest_seq",
    "history",
)  # fmt: skip
JSON_COLUMNS = ("holder", "competences", "history")
SEALED_PREFIX = '{"sealed":'


def category_of(data: dict[str, Any]) -> dict[str, str]:
    """A cancellation's public category, kept only when its event has one (older ones lack it)."""
    return {"category": data["category"]} if "category" in data else {}


def reason_column(reason: str | dict[str, str] | None) -> str | None:
    """`status_reason` as stored: a sealed reason as JSON, clear text (older events) as is."""
    if isinstance(reason, dict):
        return json.dumps(reason, sort_keys=True, separators=(",", ":"))
    return reason


def reason_value(text: str | None) -> str | dict[str, str] | None:
    """Back from `reason_column`: the sealed object, or the clear text of an older event."""
    if text is None or not text.startswith(SEALED_PREFIX):
        return text
    try:
        found = json.loads(text)
    except ValueError:
        return text
    if isinstance(found, dict) and set(found) == {"sealed", "subject"}:
        return found
    return text


def rescored_entry(seq: int, data: dict[str, Any], previous_pix_score: int) -> dict[str, Any]:
    """A rescoring's history entry; older events lack rules and cause (late reports, rules 1)."""
    return {
        "event": "rescored",
        "seq": seq,
        "on": data["rescored_on"],
        "reason": data["reason"],
        "cause": data.get("cause", LATE_ISSUE_REPORT),
        "rules": data.get("rules", LEGACY_RULES),
        "previous_pix_score": previous_pix_score,
        "pix_score": data["pix_score"],
    }


class CertificatesProjection:
    name = "certificates"
    types = frozenset(
        {
            "certification.CertificateIssued",
            "certification.CertificateCancelled",
            "certification.CertificateRescored",
        }
    )
    schema = SCHEMA
    tables = ("proj_certificates",)

    def apply(self, cur: Any, env: Envelope) -> None:
        data = env.data
        if env.type == "certification.CertificateIssued":
            self._issue(cur, env, data)
            return
        cur.execute(
            "SELECT history, pix_score FROM proj_certificates WHERE certificate = ?", (env.stream,)
        )
        stored_history, previous_pix_score = cur.fetchone()
        history = json.loads(stored_history)
        if env.type == "certification.CertificateCancelled":
            history.append(
                {
                    "event": "cancelled",
                    "seq": env.seq,
                    "on": data["cancelled_on"],
                    "reason": data["reason"],
                    **category_of(data),
                }
            )
            cur.execute(
                "UPDATE proj_certificates SET status = 'cancelled', status_reason = ?, status_on = ?,"
                " latest_seq = ?, history = ? WHERE certificate = ?",
                (reason_column(data["reason"]), data["cancelled_on"], env.seq,
                 json.dumps(history), env.stream),
            )  # fmt: skip
        else:
            history.append(rescored_entry(env.seq, data, previous_pix_score))
            cur.execute(
                "UPDATE proj_certificates SET competences = ?, pix_score = ?, status_reason = ?,"
                " status_on = ?, latest_seq = ?, history = ? WHERE certificate = ?",
                (json.dumps(data["competences"]), data["pix_score"], reason_column(data["reason"]),
                 data["rescored_on"], env.seq, json.dumps(history), env.stream),
            )  # fmt: skip

    @staticmethod
    def _issue(cur: Any, env: Envelope, data: dict[str, Any]) -> None:
        history = [{"event": "issued", "seq": env.seq, "on": data["issued_on"]}]
        centre = data["centre"]
        cur.execute(
            f"INSERT INTO proj_certificates ({', '.join(COLUMNS)})"
            f" VALUES ({', '.join('?' * len(COLUMNS))})",
            (data["code"], env.stream, data["candidate"], data["subject"], json.dumps(data["holder"]),
             data["course"], data["session"], centre["id"], centre["name"], centre["city"],
             data["passed_on"], data["issued_on"], data["valid_until"], json.dumps(data["competences"]),
             data["pix_score"], data["max_level"], "issued", None, None, env.seq, env.seq,
             json.dumps(history)),
        )  # fmt: skip


def _row(row: Any) -> dict[str, Any]:
    found = dict(zip(COLUMNS, row, strict=True))
    for column in JSON_COLUMNS:
        found[column] = json.loads(found[column])
    found["status_reason"] = reason_value(found["status_reason"])
    return found


def by_code(cur: Any, code: str) -> dict[str, Any] | None:
    cur.execute(f"SELECT {', '.join(COLUMNS)} FROM proj_certificates WHERE code = ?", (code,))
    row = cur.fetchone()
    return _row(row) if row else None


def by_candidate(cur: Any, candidate: str) -> list[dict[str, Any]]:
    cur.execute(
        f"SELECT {', '.join(COLUMNS)} FROM proj_certificates WHERE candidate = ? ORDER BY issued_seq",
        (candidate,),
    )
    return [_row(r) for r in cur.fetchall()]


def public_status(cert: dict[str, Any], today: date) -> dict[str, Any]:
    """valid / expired (since) / cancelled (on, why), as of `today`."""
    if cert["status"] == "cancelled":
        return {"status": "cancelled", "since": cert["status_on"], "reason": cert["status_reason"]}
    if today > date.fromisoformat(cert["valid_until"]):
        return {"status": "expired", "since": cert["valid_until"], "reason": None}
    return {"status": "valid", "since": cert["issued_on"], "reason": None}
