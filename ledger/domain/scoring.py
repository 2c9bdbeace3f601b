"""Certification scoring: pure, deterministic, integers only (docs/scoring.md).

Rules, first match wins:

1. operator cancellation -> cancelled; confirmed fraud -> rejected. These are the
   operator's decisions and need no counts, so they apply even to unusable evidence;
2. evidence no course can produce -> error (no competence, a competence twice, more
   than 3 or fewer than 1 challenge asked, correct + neutralized above asked, negative
   or out-of-range numbers). Such a result cannot be published;
3. fewer challenges left after neutralization than 66% of those asked, rounded up
   -> cancelled (not trustable). This covers "every challenge neutralized", so the
   reproducibility rate never divides by zero on the way to a decision;
4. reproducibility rate (correct / non-neutralized, an integer percentage rounded
   half up) below 50 -> rejected, or cancelled when the test was aborted for a
   technical reason (lack of answers is then not the candidate's doing);
5. each competence validated / downgraded / uncertified by TABLE from its own counts
   and the rate band (>= 80, 70..79, < 70), from the uncapped profile: downgrade
   first, cap at the maximum level last;
6. a total of 0 certified pix is never a validated certificate: rejected at exactly
   50%, a scoring error above (for the operator to look at).

TABLE is the published table row by row. Rows "correct 0, any neutralized" are spelled
out for 0..3 neutralized; with the consistency checks of rule 2 the table then covers
every possible (asked, correct, neutralized), so no outcome is extrapolated.

RULES_VERSION names these rules in every `CourseScored` event. Results written
before rules were versioned are rules "1" (a per-mille rate, floored).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

VALIDATED, REJECTED, CANCELLED, ERROR = "validated", "rejected", "cancelled", "error"
STATUSES = (VALIDATED, REJECTED, CANCELLED, ERROR)
OK, DOWN, NONE = "validated", "downgraded", "uncertified"
OUTCOMES = (OK, DOWN, NONE)
PIX_PER_LEVEL = 8
MAX_ASKED = 3
MAX_LEVEL_LIMIT = 8
MIN_RATE_PERCENT = 50
MIN_REMAINING_PERCENT = 66
BANDS_PERCENT = (80, 70)  # >= 80, then >= 70, then below
BAND_NAMES = ("80-100", "70-79", "0-69")
TECHNICAL, CANDIDATE = "technical", "candidate"
ABORT_REASONS = (CANDIDATE, TECHNICAL)

RULES_VERSION = "2"
LEGACY_RULES = "1"
# What each version computes, in words a certificate's history can show (docs/scoring.md).
RULES: dict[str, str] = {
    LEGACY_RULES: (
        "reproducibility rate in per mille, floored; profile capped before the downgrade;"
        " a 0-pix total could be validated; unanswered challenges counted wrong whatever"
        " the abort reason; an issue report could neutralize a correct answer"
    ),
    RULES_VERSION: (
        "national arithmetic: integer rate rounded half up; uncapped profile, downgrade then"
        " cap; no validated 0-pix result (rejected at 50%, an error above); a technical abort"
        " neutralizes unanswered challenges and cancels below 50%; an issue report"
        " neutralizes only a wrong or skipped answer"
    ),
}

# (asked, correct, neutralized) -> outcome in the >= 80%, 70-80% and < 70% bands.
TABLE: dict[tuple[int, int, int], tuple[str, str, str]] = {
    (3, 3, 0): (OK, OK, OK),
    (3, 2, 0): (OK, DOWN, DOWN),
    (3, 2, 1): (OK, OK, OK),
    (3, 1, 0): (NONE, NONE, NONE),
    (3, 1, 1): (OK, DOWN, NONE),
    (3, 1, 2): (OK, OK, DOWN),
    **{(3, 0, n): (NONE, NONE, NONE) for n in range(4)},
    (2, 2, 0): (OK, OK, OK),
    (2, 1, 0): (OK, DOWN, NONE),
    (2, 1, 1): (OK, OK, DOWN),
    **{(2, 0, n): (NONE, NONE, NONE) for n in range(3)},
    (1, 1, 0): (OK, OK, DOWN),
    **{(1, 0, n): (NONE, NONE, NONE) for n in range(2)},
}


@dataclass(frozen=True)
class CompetenceEvidence:
    """What the course says about one tested competence; the profile is uncapped."""

    code: str
    profile_level: int
    profile_pix: int
    asked: int
    correct: int
    neutralized: int

    def problem(self) -> str | None:
        """Why no course could produce these counts, or None when it could."""
        numbers = (self.profile_level, self.profile_pix, self.asked, self.correct, self.neutralized)
        if any(type(n) is not int or n < 0 for n in numbers):
            return f"{self.code}: counts must be non-negative integers"
        if not 1 <= self.asked <= MAX_ASKED:
            return f"{self.code}: {self.asked} challenges asked, expected 1 to {MAX_ASKED}"
        if self.correct + self.neutralized > self.asked:
            return f"{self.code}: more correct and neutralized answers than challenges"
        if self.profile_level > MAX_LEVEL_LIMIT:
            return f"{self.code}: profile level {self.profile_level} above {MAX_LEVEL_LIMIT}"
        if self.profile_pix > PIX_PER_LEVEL * MAX_LEVEL_LIMIT:
            return f"{self.code}: profile pix {self.profile_pix} above {PIX_PER_LEVEL * MAX_LEVEL_LIMIT}"
        return None


@dataclass(frozen=True)
class CompetenceResult:
    """One competence's outcome, with the counts it was read from (shown to centres)."""

    code: str
    outcome: str
    level: int
    pix: int
    asked: int = 0
    correct: int = 0
    neutralized: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "outcome": self.outcome,
            "level": self.level,
            "pix": self.pix,
            "asked": self.asked,
            "correct": self.correct,
            "neutralized": self.neutralized,
        }


@dataclass(frozen=True)
class ScoringResult:
    status: str
    reproducibility_rate: int  # integer percentage
    competences: tuple[CompetenceResult, ...]
    pix_score: int
    reasons: tuple[str, ...]
    band: str | None = None  # BAND_NAMES entry; None when no rate was read
    rules: str = RULES_VERSION

    def to_dict(self) -> dict[str, Any]:
        """Plain str/int/list/dict, ready to be an event payload."""
        return {
            "rules": self.rules,
            "status": self.status,
            "reproducibility_rate": self.reproducibility_rate,
            "band": self.band,
            "competences": [c.to_dict() for c in self.competences],
            "pix_score": self.pix_score,
            "reasons": list(self.reasons),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScoringResult:
        return cls(
            status=data["status"],
            reproducibility_rate=rate_of(data),
            competences=tuple(CompetenceResult(**c) for c in data["competences"]),
            pix_score=data["pix_score"],
            reasons=tuple(data["reasons"]),
            band=data.get("band"),
            rules=rules_of(data),
        )


def rules_of(result: dict[str, Any]) -> str:
    """The rules version a recorded result was computed with (legacy results name none)."""
    return str(result.get("rules", LEGACY_RULES))


def rate_of(result: dict[str, Any]) -> int:
    """A recorded result's rate in percent; a legacy per-mille rate is read as it was floored."""
    if "reproducibility_rate" in result:
        return int(result["reproducibility_rate"])
    return int(result.get("reproducibility_permille", 0)) // 10


def reproducibility_rate(correct: int, remaining: int) -> int:
    """Correct among non-neutralized challenges, integer percent rounded half up; 0 if none remain."""
    return (200 * correct + remaining) // (2 * remaining) if remaining > 0 else 0


def minimum_remaining(asked: int) -> int:
    """66% of the challenges asked, rounded up: the fewest that keep a test trustable."""
    return -(-MIN_REMAINING_PERCENT * asked // 100)


def band(rate_percent: int) -> int:
    """Column of TABLE: 0 for >= 80%, 1 for 70-79%, 2 for < 70%."""
    return sum(1 for threshold in BANDS_PERCENT if rate_percent < threshold)


def outcome(evidence: CompetenceEvidence, rate_percent: int) -> str:
    return TABLE[(evidence.asked, evidence.correct, evidence.neutralized)][band(rate_percent)]


def certify(evidence: CompetenceEvidence, result: str, max_level: int) -> CompetenceResult:
    """Level and pix for one outcome from the uncapped profile; the maximum level caps both, last."""
    if result == OK:
        level, pix = evidence.profile_level, evidence.profile_pix
    elif result == DOWN:
        level = max(evidence.profile_level - 1, 0)
        pix = max(evidence.profile_pix - PIX_PER_LEVEL, 0)
    else:
        level, pix = 0, 0
    return CompetenceResult(
        evidence.code, result, min(level, max_level), min(pix, PIX_PER_LEVEL * max_level),
        evidence.asked, evidence.correct, evidence.neutralized,
    )  # fmt: skip


def _evidence_problem(evidence: Sequence[CompetenceEvidence], max_level: int) -> str | None:
    if type(max_level) is not int or not 1 <= max_level <= MAX_LEVEL_LIMIT:
        return f"max level {max_level!r} not in 1..{MAX_LEVEL_LIMIT}"
    if not evidence:
        return "no competence was tested"
    codes = [ev.code for ev in evidence]
    if len(set(codes)) != len(codes):
        return "a competence appears twice"
    return next((p for p in (ev.problem() for ev in evidence) if p), None)


def score(
    evidence: Sequence[CompetenceEvidence],
    *,
    fraud_confirmed: bool = False,
    cancelled_by_operator: bool = False,
    technical_abort: bool = False,
    max_level: int = 5,
) -> ScoringResult:
    """Score one certification test; the same inputs always give the same result.

    `technical_abort`: the test was left unfinished for a technical reason; the
    caller has already neutralized its unanswered challenges.
    """
    problem = _evidence_problem(evidence, max_level)
    sound = problem is None
    asked = sum(ev.asked for ev in evidence) if sound else 0
    remaining = asked - sum(ev.neutralized for ev in evidence) if sound else 0
    correct = sum(ev.correct for ev in evidence) if sound else 0
    rate = reproducibility_rate(correct, remaining)
    rate_band = BAND_NAMES[band(rate)] if sound and remaining > 0 else None

    def fail(status: str, reason: str) -> ScoringResult:
        none = tuple(
            CompetenceResult(
                ev.code, NONE, 0, 0, *((ev.asked, ev.correct, ev.neutralized) if sound else ())
            )
            for ev in evidence
        )
        return ScoringResult(status, rate, none, 0, (reason,), rate_band)

    if cancelled_by_operator:
        return fail(CANCELLED, "cancelled by the operator")
    if fraud_confirmed:
        return fail(REJECTED, "fraud confirmed by the operator")
    if problem is not None:
        return fail(ERROR, f"inconsistent evidence: {problem}")
    if remaining < minimum_remaining(asked):
        return fail(
            CANCELLED,
            f"only {remaining} of {asked} challenges left after neutralization,"
            f" {minimum_remaining(asked)} needed",
        )
    if rate < MIN_RATE_PERCENT:
        if technical_abort:
            return fail(
                CANCELLED,
                f"reproducibility rate {rate}% below {MIN_RATE_PERCENT}% after a technical abort:"
                " lack of answers for a technical reason",
            )
        return fail(REJECTED, f"reproducibility rate {rate}%, below {MIN_RATE_PERCENT}%")
    results = tuple(certify(ev, outcome(ev, rate), max_level) for ev in evidence)
    total = sum(r.pix for r in results)
    if total == 0 and rate == MIN_RATE_PERCENT:
        return fail(REJECTED, f"no pix certified at a reproducibility rate of {rate}%")
    if total == 0:
        return fail(ERROR, f"no pix certified at a reproducibility rate of {rate}%: to be reviewed")
    return ScoringResult(VALIDATED, rate, results, total, (), rate_band)
