"""Read models rebuilt from the log only; `all_projections` lists them for the runner."""

from __future__ import annotations

from ledger.config import Config
from ledger.domain.referential import Referential
from ledger.projections.certificates import CertificatesProjection
from ledger.projections.courses import CoursesProjection
from ledger.projections.profiles import ProfilesProjection
from ledger.projections.runner import Projection
from ledger.projections.sessions import SessionsProjection


def all_projections(config: Config, referential: Referential) -> list[Projection]:
    return [
        ProfilesProjection(config.max_level, referential),
        SessionsProjection(),
        CoursesProjection(),
        CertificatesProjection(),
    ]
