"""Certification scoring (DOMAIN.md, "Scoring"): pure, deterministic, integers only.

Order of the rules: operator cancellation -> cancelled; confirmed fraud ->
rejected; fewer than 66% (rounded up) of the challenges left after
neutralization -> cancelled; reproducibility below 50% -> rejected; otherwise
validated, each competence validated / downgraded / uncertified from the
table below. Inconsistent evidence (counts that cannot happen) -> error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

VALIDATED, REJECTED, CANCELLED, ERROR = "validated", "rejected", "cancelled", "error"
OK, DOWN, NONE = "validated", "downgraded", "uncertified"
PIX_PER_LEVEL = 8
MIN_RATE_PERMILLE = 500
MIN_REMAINING_PERCENT = 66

# (asked, correct, neutralized) -> outcome in the >= 80%, 70-80%, < 70% bands.
# Rows with no correct answer are uncertified whatever is neutralized (handled below).
TABLE: dict[tuple[int, int, int], tuple[str, str, str]] = {
    (3, 3, 0): (OK, OK, OK),
    (3, 2, 0): (OK, DOWN, DOWN),
    (3, 2, 1): (OK, OK, OK),
    (3, 1, 0): (NONE, NONE, NONE),
    (3, 1, 1): (OK, DOWN, NONE),
    (3, 1, 2): (OK, OK, DOWN),
    (2, 2, 0): (OK, OK, OK),
    (2, 1, 0): (OK, DOWN, NONE),
    (2, 1, 1): (OK, OK, DOWN),
    (1, 1, 0): (OK, OK, DOWN),
}


class InconsistentEvidence(ValueError):
    """Counts that no course can produce."""


@dataclass(frozen=True)
class CompetenceEvidence:
    code: str
    profile_level: int
    profile_pix: int
    asked: int
    correct: int
    neutralized: int

    def check(self) -> None:
        if not (1 <= self.asked <= 3 and self.correct >= 0 and self.neutralized >= 0):
            raise InconsistentEvidence(f"{self.code}: impossible counts")
        if (
            self.correct + self.neutralized > self.asked
            or self.profile_level < 0
            or self.profile_pix < 0
        ):
            raise InconsistentEvidence(f"{self.code}: more answers than challenges")


@dataclass(frozen=True)
class CompetenceResult:
    code: str
    outcome: str
    level: int
    pix: int


@dataclass(frozen=True)
class ScoringResult:
    status: str
    reproducibility_permille: int
    competences: tuple[CompetenceResult, ...]
    pix_score: int
    reasons: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "reproducibility_permille": self.reproducibility_permille,
            "competences": [
                {"code": c.code, "outcome": c.outcome, "level": c.level, "pix": c.pix}
                for c in self.competences
            ],
            "pix_score": self.pix_score,
            "reasons": list(self.reasons),
        }


def band(rate_permille: int) -> int:
    """0 for >= 80%, 1 for 70-80%, 2 for < 70%."""
    return 0 if rate_permille >= 800 else 1 if rate_permille >= 700 else 2


def outcome(ev: CompetenceEvidence, rate_permille: int) -> str:
    if ev.correct == 0:
        return NONE
    return TABLE[(ev.asked, ev.correct, ev.neutralized)][band(rate_permille)]


def certify(ev: CompetenceEvidence, result: str, max_level: int) -> CompetenceResult:
    cap = PIX_PER_LEVEL * max_level
    level = min(ev.profile_level, max_level)
    if result == OK:
        return CompetenceResult(ev.code, OK, level, min(ev.profile_pix, cap))
    if result == DOWN:
        return CompetenceResult(
            ev.code, DOWN, max(level - 1, 0), min(max(ev.profile_pix - 8, 0), cap)
        )
    return CompetenceResult(ev.code, NONE, 0, 0)


def _uncertified_all(evidence: Sequence[CompetenceEvidence]) -> tuple[CompetenceResult, ...]:
    return tuple(CompetenceResult(ev.code, NONE, 0, 0) for ev in evidence)


def score(
    evidence: Sequence[CompetenceEvidence],
    *,
    fraud_confirmed: bool = False,
    cancelled_by_operator: bool = False,
    max_level: int = 5,
) -> ScoringResult:
    try:
        for ev in evidence:
            ev.check()
    except InconsistentEvidence as exc:
        return ScoringResult(ERROR, 0, _uncertified_all(evidence), 0, (str(exc),))
    asked = sum(ev.asked for ev in evidence)
    remaining = asked - sum(ev.neutralized for ev in evidence)
    correct = sum(ev.correct for ev in evidence)
    rate = correct * 1000 // remaining if remaining else 0

    def fail(status: str, reason: str) -> ScoringResult:
        return ScoringResult(status, rate, _uncertified_all(evidence), 0, (reason,))

    if cancelled_by_operator:
        return fail(CANCELLED, "cancelled by the operator")
    if fraud_confirmed:
        return fail(REJECTED, "fraud confirmed by the operator")
    if asked == 0 or remaining * 100 < MIN_REMAINING_PERCENT * asked:
        # remaining < ceil(66% of asked)  <=>  100 * remaining < 66 * asked, for integers
        return fail(CANCELLED, "too few challenges left after neutralization to be trusted")
    if rate < MIN_RATE_PERMILLE:
        return fail(REJECTED, "reproducibility rate below 50%")
    results = tuple(certify(ev, outcome(ev, rate), max_level) for ev in evidence)
    return ScoringResult(VALIDATED, rate, results, sum(r.pix for r in results), ())
