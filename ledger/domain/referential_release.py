"""The referential as events: each version a test can use is published in the log.

Its content travels in the event, so an auditor can re-derive any course's
challenge selection from the log alone.
"""

from __future__ import annotations

import uuid

from eventsourcing.domain import event

from ledger.domain.base import LedgerAggregate
from ledger.domain.referential import Referential

RELEASE_NAMESPACE = uuid.UUID("0c8f2f5e-7c43-4d7a-9a36-7d3b8f1e2a55")


def release_id(version: str) -> uuid.UUID:
    return uuid.uuid5(RELEASE_NAMESPACE, version)


class ReferentialRelease(LedgerAggregate):
    TYPE = "referential.Release"

    @staticmethod
    def create_id(version: str) -> uuid.UUID:  # type: ignore[override]
        return release_id(version)

    class Published(LedgerAggregate.Created):
        TYPE = "referential.ReferentialPublished"
        version: str
        content: dict

    @event(Published)
    def __init__(self, version: str, content: dict) -> None:
        self.version = version


def release(ref: Referential) -> ReferentialRelease:
    return ReferentialRelease(version=ref.version, content=ref.to_dict())
