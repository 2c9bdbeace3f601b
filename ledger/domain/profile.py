"""The competence profile from positioning answers.

Knowledge: a correct answer validates its skill and the easier skills of its tube; any
other result invalidates its skill and the harder ones; the latest evidence per skill
wins. Pix: each level of a competence is worth 8 pix, shared equally among that
competence's skills of that difficulty, one skill being worth at most 4 pix
(`min(4, 8 / n)`). Shares are exact fractions, floored once per competence, so
recorded pix never depend on float rounding.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from ledger.domain.referential import (
    COMPETENCE_CODES,
    MAX_DIFFICULTY,
    MIN_DIFFICULTY,
    Referential,
)

CORRECT = "ok"
ANSWER_RESULTS = ("ok", "ko", "partially", "timedout", "focusedOut", "aband")
PIX_PER_LEVEL = 8
MAX_PIX_PER_SKILL = 4
ELIGIBILITY_MIN_COMPETENCES = 5
DEFAULT_MAX_LEVEL = 5


class UnknownResult(ValueError):
    """An answer result outside ANSWER_RESULTS: refusing beats guessing it was wrong."""


def check_max_level(max_level: int) -> None:
    """The certifiable maximum is configuration, but must stay within the referential's 1..8."""
    if type(max_level) is not int or not MIN_DIFFICULTY <= max_level <= MAX_DIFFICULTY:
        raise ValueError(f"max level {max_level!r} not in 1..8")


def is_correct(result: str) -> bool:
    if result not in ANSWER_RESULTS:
        raise UnknownResult(f"unknown answer result {result!r}")
    return result == CORRECT


def inferred_knowledge(ref: Referential, skill_id: str, result: str) -> dict[str, bool]:
    """Skill id -> validated, for every skill of the tube this one answer speaks about."""
    skill = ref.skill(skill_id)
    correct = is_correct(result)
    return {
        other.id: correct
        for other in ref.tube_skills(skill.tube)
        if (
            other.difficulty <= skill.difficulty
            if correct
            else other.difficulty >= skill.difficulty
        )
    }


class Knowledge(Mapping[str, tuple[bool, int]]):
    """Latest evidence per skill: skill id -> (validated, position of the answer).

    It also keeps, per skill, the latest answer to a challenge of that very skill:
    certification asks only skills the candidate validated directly, not by inference.
    """

    def __init__(self) -> None:
        self._status: dict[str, tuple[bool, int]] = {}
        self._direct: dict[str, tuple[bool, int]] = {}  # the skill's own latest answer
        self._invalidated: dict[str, int] = {}  # latest position that invalidated the skill
        self._competence: dict[str, str] = {}

    @classmethod
    def of(cls, ref: Referential, answers: Iterable[tuple[str, str]]) -> Knowledge:
        """The knowledge (skill, result) answers give, in the order they were recorded."""
        knowledge = cls()
        for position, (skill, result) in enumerate(answers, start=1):
            knowledge.apply(ref, skill, result, position)
        return knowledge

    def __getitem__(self, skill_id: str) -> tuple[bool, int]:
        return self._status[skill_id]

    def to_state(self) -> dict[str, dict[str, Any]]:
        """Everything `apply` keeps, JSON-native: bounded by the referential's skills."""
        return {
            "status": {s: list(v) for s, v in self._status.items()},
            "direct": {s: list(v) for s, v in self._direct.items()},
            "invalidated": dict(self._invalidated),
            "competence": dict(self._competence),
        }

    @classmethod
    def from_state(cls, state: dict[str, dict[str, Any]]) -> Knowledge:
        knowledge = cls()
        knowledge._status = {s: (bool(v[0]), int(v[1])) for s, v in state["status"].items()}
        knowledge._direct = {s: (bool(v[0]), int(v[1])) for s, v in state["direct"].items()}
        knowledge._invalidated = {s: int(p) for s, p in state["invalidated"].items()}
        knowledge._competence = {s: str(c) for s, c in state["competence"].items()}
        return knowledge

    def __iter__(self) -> Iterator[str]:
        return iter(self._status)

    def __len__(self) -> int:
        return len(self._status)

    def apply(self, ref: Referential, skill_id: str, result: str, position: int) -> None:
        """Record one answer; answers may arrive out of order, the highest position wins."""
        competence = ref.competence_of_skill(skill_id)
        for skill, validated in inferred_knowledge(ref, skill_id, result).items():
            known = self._status.get(skill)
            if known is None or known[1] <= position:
                self._status[skill] = (validated, position)
                self._competence[skill] = competence
            if not validated:
                self._invalidated[skill] = max(position, self._invalidated.get(skill, 0))
        own = self._direct.get(skill_id)
        if own is None or own[1] <= position:
            self._direct[skill_id] = (is_correct(result), position)

    def validated_skills(self, competence_code: str | None = None) -> set[str]:
        return {
            skill
            for skill, (validated, _) in self._status.items()
            if validated and competence_code in (None, self._competence[skill])
        }

    def is_direct(self, skill_id: str) -> bool:
        """Validated now, and the latest answer to this very skill was correct, not undone since.

        An agreeing inference from a harder skill does not erase that the candidate
        answered this one; a later invalidation does, even if a later inference
        validates the skill again (that is then inferred knowledge, not direct).
        """
        status, own = self._status.get(skill_id), self._direct.get(skill_id)
        if not (status and status[0] and own and own[0]):
            return False
        return self._invalidated.get(skill_id, 0) <= own[1]

    def directly_validated_skills(self, competence_code: str | None = None) -> set[str]:
        """Skills the candidate validated by a correct answer of their own, not by inference."""
        return {s for s in self.validated_skills(competence_code) if self.is_direct(s)}


def competence_pix(
    ref: Referential, competence_code: str, validated_skill_ids: Iterable[str], max_level: int
) -> int:
    """Floor of the pix of the validated skills, capped at 8 x max level.

    Ids outside the competence are ignored, so callers may pass every validated skill.
    """
    check_max_level(max_level)
    skills = ref.skills_of(competence_code)
    per_difficulty: dict[int, int] = {}
    for skill in skills:
        per_difficulty[skill.difficulty] = per_difficulty.get(skill.difficulty, 0) + 1
    difficulty_of = {skill.id: skill.difficulty for skill in skills}
    validated = set(validated_skill_ids) & difficulty_of.keys()
    total = sum((skill_pix(per_difficulty[difficulty_of[s]]) for s in validated), Fraction(0))
    return min(total.numerator // total.denominator, PIX_PER_LEVEL * max_level)


def skill_pix(skills_at_difficulty: int) -> Fraction:
    """One skill's share of its level's 8 pix, never above 4 (a lone skill is not worth 8)."""
    return min(Fraction(PIX_PER_LEVEL, skills_at_difficulty), Fraction(MAX_PIX_PER_SKILL))


def level_from_pix(pix: int, max_level: int) -> int:
    check_max_level(max_level)
    return min(pix // PIX_PER_LEVEL, max_level)


def is_eligible(levels: Iterable[int]) -> bool:
    """Certification needs level 1 or more on at least 5 of the 16 competences."""
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


def profile_of(
    ref: Referential, knowledge: Knowledge, max_level: int = DEFAULT_MAX_LEVEL
) -> Profile:
    """Pix and level on all 16 competences (0 without evidence), total pix, eligibility."""
    validated = knowledge.validated_skills()
    scores = []
    for code in COMPETENCE_CODES:
        pix = competence_pix(ref, code, validated, max_level)
        scores.append(CompetenceScore(code, pix, level_from_pix(pix, max_level)))
    return Profile(tuple(scores), sum(s.pix for s in scores), is_eligible(s.level for s in scores))
