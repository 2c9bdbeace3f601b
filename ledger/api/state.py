"""What one API process holds: the ledger, services, projections and token store."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from ledger.config import Config
from ledger.domain.referential import Referential, load_referential
from ledger.projections import all_projections
from ledger.projections.runner import Projection, catch_up
from ledger.services.candidates import CandidateService
from ledger.services.certification import CertificationService
from ledger.store.application import Ledger
from ledger.store.tokens import TokenStore


@dataclass
class ApiState:
    config: Config
    ledger: Ledger
    referential: Referential
    projections: list[Projection]
    tokens: TokenStore
    candidates: CandidateService
    certification: CertificationService

    @classmethod
    def open(cls, config: Config) -> ApiState:
        ledger = Ledger(config)
        referential = load_referential()
        return cls(
            config=config,
            ledger=ledger,
            referential=referential,
            projections=all_projections(config, referential),
            tokens=TokenStore(ledger.db),
            candidates=CandidateService(ledger, referential),
            certification=CertificationService(ledger, referential, config),
        )

    def fresh(self) -> None:
        """Bring read models up to the log before answering a read."""
        catch_up(self.ledger.db, self.projections)


def state() -> ApiState:
    return current_app.extensions["ledger"]
