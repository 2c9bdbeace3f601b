"""The competence profile from positioning answers (DOMAIN.md, "Positioning").

Knowledge: a correct answer validates its skill and the easier skills of its
tube; a wrong one invalidates its skill and the harder ones; the latest
evidence per skill wins. Pix: each level of a competence is worth 8 pix,
shared equally among that competence's skills of that difficulty.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction

from ledger.domain.referential import COMPETENCE_CODES, Referential

CORRECT = "ok"
ANSWER_RESULTS = ("ok", "ko", "partially", "timedout", "focusedOut", "aband")
PIX_PER_LEVEL = 8
ELIGIBILITY_MIN_COMPETENCES = 5


def inferred_knowledge(ref: Referential, skill_id: str, result: str) -> dict[str, bool]:
    """Skill -> validated, for every skill this one answer speaks about."""
    skill = ref.skill(skill_id)
    correct = result == CORRECT
    return {
        other.id: correct
        for other in ref.tube_skills(skill.tube)
        if (
            other.difficulty <= skill.difficulty
            if correct
            else other.difficulty >= skill.difficulty
        )
    }


class Knowledge:
    """Latest evidence per skill: skill -> (validated, position)."""

    def __init__(self) -> None:
        self._skills: dict[str, tuple[bool, int]] = {}

    def apply(self, ref: Referential, skill_id: str, result: str, position: int) -> None:
        for skill, validated in inferred_knowledge(ref, skill_id, result).items():
            known = self._skills.get(skill)
            if known is None or known[1] <= position:
                self._skills[skill] = (validated, position)

    def validated_skills(
        self, ref: Referential | None = None, competence_code: str | None = None
    ) -> set[str]:
        validated = {s for s, (ok, _) in self._skills.items() if ok}
        if competence_code is None or ref is None:
            return validated
        return {s for s in validated if ref.competence_of_skill(s) == competence_code}


def competence_pix(
    ref: Referential, competence_code: str, validated_skill_ids: Iterable[str], max_level: int
) -> int:
    """Floor of the pix of the validated skills, capped at 8 x max level."""
    skills = ref.skills_of(competence_code)
    per_difficulty: dict[int, int] = {}
    for skill in skills:
        per_difficulty[skill.difficulty] = per_difficulty.get(skill.difficulty, 0) + 1
    own = {s.id: s for s in skills}
    total = sum(
        (
            Fraction(PIX_PER_LEVEL, per_difficulty[own[s].difficulty])
            for s in set(validated_skill_ids)
            if s in own
        ),
        Fraction(0),
    )
    return min(math.floor(total), PIX_PER_LEVEL * max_level)


def level_from_pix(pix: int, max_level: int) -> int:
    return min(pix // PIX_PER_LEVEL, max_level)


def is_eligible(levels: Iterable[int]) -> bool:
    """Level 1 or more on at least 5 of the 16 competences."""
    return sum(1 for level in levels if level >= 1) >= ELIGIBILITY_MIN_COMPETENCES


@dataclass(frozen=True)
class CompetenceScore:
    code: str
    pix: int
    level: int


@dataclass(frozen=True)
class Profile:
    competences: tuple[CompetenceScore, ...]
    total_pix: int
    eligible: bool

    def level_of(self, code: str) -> int:
        return next(c.level for c in self.competences if c.code == code)

    @property
    def competences_at_level_1(self) -> int:
        return sum(1 for c in self.competences if c.level >= 1)

    def to_list(self) -> list[dict[str, int | str]]:
        return [{"code": c.code, "pix": c.pix, "level": c.level} for c in self.competences]


def profile_of(ref: Referential, knowledge: Knowledge, max_level: int = 5) -> Profile:
    validated = knowledge.validated_skills()
    scores = []
    for code in COMPETENCE_CODES:
        pix = competence_pix(ref, code, validated, max_level)
        scores.append(CompetenceScore(code, pix, level_from_pix(pix, max_level)))
    return Profile(tuple(scores), sum(s.pix for s in scores), is_eligible(s.level for s in scores))
