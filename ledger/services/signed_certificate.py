"""A certificate as its signed events say it is, read from the log rather than the read model.

The stream id derives from the verification code, so the events are found
without trusting any pointer stored in a read model. `fold` replays them the
way the certificates projection does, giving the row the read model should
hold; any difference between the two is a sign of tampering. A reason stays
as the event holds it (sealed, or clear text in older events), as the read
model's rows give it back: sealed values are compared sealed, never opened.
"""

from __future__ import annotations

from typing import Any

from ledger.domain.certificate import certificate_id
from ledger.envelope import Envelope
from ledger.projections.certificates import (
    COLUMNS,
    CertificatesProjection,
    category_of,
    rescored_entry,
)

ISSUED = "certification.CertificateIssued"
CANCELLED = "certification.CertificateCancelled"
RESCORED = "certification.CertificateRescored"
TYPES = CertificatesProjection.types


class EventsUnsound(Exception):
    """The certificate's events do not form one well-formed history; says why."""

    def __init__(self, message: str, seq: int | None = None):
        super().__init__(message)
        self.seq = seq


def certificate_events(recorder: Any, code: str) -> list[Envelope]:
    """Every stored event of the certificate with this code, by version."""
    return recorder.stream_envelopes(str(certificate_id(code)))


def fold(code: str, events: list[Envelope]) -> dict[str, Any]:
    """The read-model row these events produce (same columns as the projection)."""
    if not events:
        raise EventsUnsound("the log holds no event of this certificate")
    for version, env in enumerate(events, 1):
        if (
            env.version != version
            or env.type not in TYPES
            or (version == 1) != (env.type == ISSUED)
        ):
            raise EventsUnsound("the certificate's events are out of order or unknown", env.seq)
    row: dict[str, Any] = {}
    for env in events:
        try:
            _apply(row, env)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise EventsUnsound("an event of this certificate is unreadable", env.seq) from exc
    if row["code"] != code:
        raise EventsUnsound("the issuing event is for another code", events[0].seq)
    return row


def differences(stored: dict[str, Any], folded: dict[str, Any]) -> list[str]:
    """Columns on which the read model disagrees with the signed events."""
    return [column for column in COLUMNS if stored.get(column) != folded.get(column)]


def _apply(row: dict[str, Any], env: Envelope) -> None:
    """One event, as `CertificatesProjection.apply` writes it."""
    data = env.data
    if env.type == ISSUED:
        centre = data["centre"]
        row.update(
            code=data["code"], certificate=env.stream, candidate=data["candidate"],
            subject=data["subject"], holder=data["holder"], course=data["course"],
            session=data["session"], centre_id=centre["id"], centre_name=centre["name"],
            centre_city=centre["city"], passed_on=data["passed_on"], issued_on=data["issued_on"],
            valid_until=data["valid_until"], competences=data["competences"],
            pix_score=data["pix_score"], max_level=data["max_level"], status="issued",
            status_reason=None, status_on=None, issued_seq=env.seq, latest_seq=env.seq,
            history=[{"event": "issued", "seq": env.seq, "on": data["issued_on"]}],
        )  # fmt: skip
    elif env.type == CANCELLED:
        row["history"].append(
            {"event": "cancelled", "seq": env.seq, "on": data["cancelled_on"], "reason": data["reason"],
             **category_of(data)}
        )  # fmt: skip
        row.update(status="cancelled", status_reason=data["reason"],
                   status_on=data["cancelled_on"], latest_seq=env.seq)  # fmt: skip
    else:
        row["history"].append(rescored_entry(env.seq, data, row["pix_score"]))
        row.update(competences=data["competences"], pix_score=data["pix_score"],
                   status_reason=data["reason"], status_on=data["rescored_on"], latest_seq=env.seq)  # fmt: skip
