"""Certificates: issued at publication, later cancelled or rescored, never edited.

A cancellation's or rescoring's `reason` is an operator's free text, which may
name the holder: it is sealed under the holder's subject (events written
before that rule hold it in clear).

A rescoring names its cause and the scoring-rules version of its new
result, so the history can say what changed and why. Rescorings written
before those fields existed were all late issue reports under the legacy
rules: that is how they are read.

The stream id derives from the verification code, so two certificates can
never share a code: the store's (stream, version) uniqueness refuses it.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import date

from eventsourcing.domain import event

from ledger.domain.base import Conflict, DomainError, LedgerAggregate
from ledger.domain.scoring import LEGACY_RULES, RULES

CODE_ALPHABET = "2346789BCDFGHJKMPQRTVWXY"
CANCELLATION_CATEGORIES = ("fraud", "invalid-session", "rescoring", "holder-request", "other")
"""Reason categories an operator signs with a cancellation; its free text stays private."""
PUBLIC_CATEGORIES = {
    "fraud": "issuer-decision",
    "invalid-session": "invalid-session",
    "rescoring": "rescoring",
    "holder-request": "holder-request",
    "other": "other",
}
"""What anybody but the holder and the operator reads for each signed category.

The page shows it next to the holder's name and birth date: "fraud" there would
accuse an identifiable person, so the public reads that the issuer decided.
"""
PUBLIC_CATEGORY_VALUES = tuple(dict.fromkeys(PUBLIC_CATEGORIES.values()))
CODE_LENGTH = 8
CODE_NAMESPACE = uuid.UUID("b1e7c4a2-5d0f-4c53-8f0e-6a2f4f1d9c30")
VALIDITY_YEARS = 3
ISSUED, CANCELLED = "issued", "cancelled"
LATE_ISSUE_REPORT, OPERATOR_NEUTRALIZATION, RULES_CHANGE = (
    "late-issue-report", "operator-neutralization", "rules-change",
)  # fmt: skip
CAUSES = (LATE_ISSUE_REPORT, OPERATOR_NEUTRALIZATION, RULES_CHANGE)


class InvalidRescoring(DomainError):
    code = "invalid-rescoring"


def new_code() -> str:
    """`P-` + 8 characters drawn with a cryptographic generator (24^8 ≈ 1.1e11 codes)."""
    return "P-" + "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def normalize_code(text: str) -> str | None:
    """Tolerant input: lower case, spaces, dashes, a missing `P-`. None if it cannot be a code."""
    cleaned = "".join(ch for ch in text.upper() if ch.isalnum())
    if cleaned.startswith("P") and len(cleaned) == CODE_LENGTH + 1:
        cleaned = cleaned[1:]
    if len(cleaned) != CODE_LENGTH or any(ch not in CODE_ALPHABET for ch in cleaned):
        return None
    return "P-" + cleaned


def public_category(category: str) -> str:
    """The neutral category the public reads for a signed one (unknown ones read "other")."""
    return PUBLIC_CATEGORIES.get(category, "other")


def certificate_id(code: str) -> uuid.UUID:
    return uuid.uuid5(CODE_NAMESPACE, code)


def valid_until(issued_on: date) -> date:
    """Issue date + 3 years (29 February becomes 28 February)."""
    try:
        return issued_on.replace(year=issued_on.year + VALIDITY_YEARS)
    except ValueError:
        return issued_on.replace(year=issued_on.year + VALIDITY_YEARS, day=28)


class Certificate(LedgerAggregate):
    TYPE = "certification.Certificate"

    @staticmethod
    def create_id(code: str) -> uuid.UUID:  # type: ignore[override]
        return certificate_id(code)

    class Issued(LedgerAggregate.Created):
        TYPE = "certification.CertificateIssued"
        code: str
        candidate: str
        subject: str
        holder: dict
        course: str
        session: str
        centre: dict
        passed_on: str
        issued_on: str
        valid_until: str
        competences: list
        pix_score: int
        max_level: int
        referential: str

    @event(Issued)
    def __init__(
        self, code: str, candidate: str, subject: str, holder: dict, course: str, session: str,
        centre: dict, passed_on: str, issued_on: str, valid_until: str, competences: list,
        pix_score: int, max_level: int, referential: str,
    ) -> None:  # fmt: skip
        self.code = code
        self.candidate = candidate
        self.subject = subject
        self.course = course
        self.status = ISSUED
        self.competences = competences
        self.pix_score = pix_score

    class Cancelled(LedgerAggregate.Event):
        TYPE = "certification.CertificateCancelled"
        reason: str | dict  # sealed under the holder's subject
        cancelled_on: str
        category: str  # one of CANCELLATION_CATEGORIES, shown publicly (absent from older events)

    def cancel(self, reason: str | dict, cancelled_on: str, category: str = "other") -> None:
        if self.status == CANCELLED:
            raise Conflict(f"certificate {self.code} is already cancelled")
        if category not in CANCELLATION_CATEGORIES:
            raise ValueError(f"category must be one of {', '.join(CANCELLATION_CATEGORIES)}")
        self._cancel(reason=reason, cancelled_on=cancelled_on, category=category)

    @event(Cancelled)
    def _cancel(self, reason: str | dict, cancelled_on: str, category: str = "other") -> None:
        self.status = CANCELLED

    class Rescored(LedgerAggregate.Event):
        TYPE = "certification.CertificateRescored"
        reason: str | dict  # sealed under the holder's subject
        rescored_on: str
        competences: list
        pix_score: int
        rules: str  # scoring-rules version of the new result (absent from older events)
        cause: str  # one of CAUSES (absent from older events)

    def rescore(
        self, reason: str | dict, rescored_on: str, competences: list, pix_score: int,
        *, rules: str, cause: str,
    ) -> None:  # fmt: skip
        if self.status == CANCELLED:
            raise Conflict(f"certificate {self.code} is cancelled; it cannot be rescored")
        if cause not in CAUSES:
            raise InvalidRescoring(f"cause must be one of {', '.join(CAUSES)}")
        if rules not in RULES:
            raise InvalidRescoring(f"unknown scoring rules version {rules!r}")
        self._rescore(
            reason=reason, rescored_on=rescored_on, competences=competences,
            pix_score=pix_score, rules=rules, cause=cause,
        )  # fmt: skip

    @event(Rescored)
    def _rescore(
        self, reason: str | dict, rescored_on: str, competences: list, pix_score: int,
        rules: str = LEGACY_RULES, cause: str = LATE_ISSUE_REPORT,
    ) -> None:  # fmt: skip
        self.competences = competences
        self.pix_score = pix_score
