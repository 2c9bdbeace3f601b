"""The fact that a person's data was erased (GDPR), kept in the log as proof.

The log keeps the proof, not the person: this event names only the random
subject id, never who it was.
"""

from __future__ import annotations

from eventsourcing.domain import event

from ledger.domain.base import LedgerAggregate


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
