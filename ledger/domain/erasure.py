"""The fact that a person's data was erased (GDPR), kept in the log as proof.

The log keeps the proof, not the person: this event names only the random
subject id and a reason chosen from a closed list (GDPR article 17(1)
grounds), never free text, which could itself name or describe the person.
"""

from __future__ import annotations

from eventsourcing.domain import event

from ledger.domain.base import DomainError, LedgerAggregate

REASONS: dict[str, dict[str, str]] = {
    "data-subject-request": {
        "fr": "Demande d'effacement de la personne concernée",
        "en": "Erasure requested by the data subject",
    },
    "consent-withdrawn": {"fr": "Retrait du consentement", "en": "Consent withdrawn"},
    "objection": {"fr": "Opposition au traitement", "en": "Objection to processing"},
    "no-longer-necessary": {
        "fr": "Données plus nécessaires (durée de conservation échue)",
        "en": "No longer necessary (retention period over)",
    },
    "unlawful-processing": {"fr": "Traitement illicite", "en": "Unlawful processing"},
    "legal-obligation": {"fr": "Obligation légale", "en": "Legal obligation"},
}
REASON_CODES = tuple(REASONS)
DEFAULT_REASON = "data-subject-request"


class UnknownErasureReason(DomainError):
    code = "unknown-erasure-reason"
    status = 422


def check_reason(reason: str) -> str:
    if reason not in REASONS:
        raise UnknownErasureReason(
            f"reason must be one of {', '.join(REASON_CODES)}", reasons=list(REASON_CODES)
        )
    return reason


class Erasure(LedgerAggregate):
    TYPE = "subjects.Erasure"

    class Erased(LedgerAggregate.Created):
        TYPE = "subjects.SubjectErased"
        subject: str
        reason: str

    @event(Erased)
    def __init__(self, subject: str, reason: str) -> None:
        self.subject = subject
        self.reason = reason

    @classmethod
    def record(cls, subject: str, reason: str) -> Erasure:
        """The erasure fact, with its reason checked against the closed list."""
        return cls(subject=subject, reason=check_reason(reason))
