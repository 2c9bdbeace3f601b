"""The base aggregate: stable event type names and the injectable clock.

Every event class declares `TYPE`, the stable `type` written in the
envelope (e.g. `positioning.AnswerRecorded`), so code can move without
rewriting history. Event attributes are JSON-native (str, int, bool, list,
dict, None): what the domain emits is exactly what gets hashed and signed.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID, uuid4

from eventsourcing.domain import Aggregate

from ledger.domain import clock


class DomainError(Exception):
    """A rule of the domain refused a command; `code` is a stable slug for clients."""

    code = "domain-rule"
    status = 422

    def __init__(self, detail: str, **extra: object):
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class NotFound(DomainError):
    code = "not-found"
    status = 404


class Conflict(DomainError):
    code = "conflict"
    status = 409


class LedgerAggregate(Aggregate):
    """Aggregate whose events carry stable type names and read the domain clock.

    Subclasses set `TYPE` (e.g. `candidates.Candidate`) and so does each event class.
    """

    class Event(Aggregate.Event):
        @staticmethod
        def create_timestamp() -> datetime:
            return clock.now()

    class Created(Event, Aggregate.Created):
        pass

    @staticmethod
    def create_id(**_: object) -> UUID:
        return uuid4()
