"""Certification centres: schools, universities and approved organisations."""

from __future__ import annotations

from eventsourcing.domain import event

from ledger.domain.base import DomainError, LedgerAggregate

CENTRE_KINDS = ("school", "university", "organisation")


class InvalidCentre(DomainError):
    code = "invalid-centre"


class Centre(LedgerAggregate):
    TYPE = "certification.Centre"

    class Created(LedgerAggregate.Created):
        TYPE = "certification.CentreCreated"
        name: str
        kind: str
        city: str

    @event(Created)
    def __init__(self, name: str, kind: str, city: str) -> None:
        self.name = name
        self.kind = kind
        self.city = city


def create_centre(name: str, kind: str, city: str) -> Centre:
    if kind not in CENTRE_KINDS:
        raise InvalidCentre(f"kind must be one of {', '.join(CENTRE_KINDS)}")
    if not name.strip():
        raise InvalidCentre("a centre needs a name")
    return Centre(name=name.strip(), kind=kind, city=city.strip())
