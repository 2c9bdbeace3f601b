"""Knowledge inference, pix and levels, eligibility, on the shipped referential."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.domain.profile import (
    ANSWER_RESULTS,
    CORRECT,
    ELIGIBILITY_MIN_COMPETENCES,
    Knowledge,
    UnknownResult,
    competence_pix,
    inferred_knowledge,
    is_eligible,
    level_from_pix,
    profile_of,
    skill_pix,
)
from ledger.domain.referential import COMPETENCE_CODES, UnknownSkill, load_referential

REF = load_referential()
WRONG = tuple(r for r in ANSWER_RESULTS if r != CORRECT)
ALL_SKILLS = sorted(s.id for code in COMPETENCE_CODES for s in REF.skills_of(code))


def test_only_ok_is_correct() -> None:
    assert CORRECT == "ok"
    assert ANSWER_RESULTS == ("ok", "ko", "partially", "timedout", "focusedOut", "aband")


def test_correct_answer_validates_its_skill_and_the_easier_ones() -> None:
    assert inferred_knowledge(REF, "@recherche3", "ok") == {
        "@recherche1": True,
        "@recherche2": True,
        "@recherche3": True,
    }


@pytest.mark.parametrize("result", WRONG)
def test_wrong_answer_invalidates_its_skill_and_the_harder_ones(result: str) -> None:
    assert inferred_knowledge(REF, "@recherche6", result) == {
        "@recherche6": False,
        "@recherche7": False,
        "@recherche8": False,
    }


def test_inference_stays_in_the_tube_and_follows_its_gaps() -> None:
    # @moteur has no level 1; @veille stops at 7.
    assert inferred_knowledge(REF, "@moteur3", "ok") == {"@moteur2": True, "@moteur3": True}
    assert inferred_knowledge(REF, "@veille6", "ko") == {"@veille6": False, "@veille7": False}


def test_unknown_result_or_skill_is_refused() -> None:
    with pytest.raises(UnknownResult):
        inferred_knowledge(REF, "@recherche3", "OK")
    with pytest.raises(UnknownSkill):
        inferred_knowledge(REF, "@recherche9", "ok")


def test_latest_evidence_wins() -> None:
    knowledge = Knowledge()
    knowledge.apply(REF, "@recherche5", "ok", 1)
    knowledge.apply(REF, "@recherche3", "ko", 2)
    assert knowledge.validated_skills() == {"@recherche1", "@recherche2"}
    assert knowledge["@recherche5"] == (False, 2)
    knowledge.apply(REF, "@recherche4", "ok", 3)
    assert knowledge.validated_skills("1.1") == {f"@recherche{d}" for d in range(1, 5)}
    assert knowledge["@recherche5"] == (False, 2)


def test_an_older_position_never_overrides_a_newer_one() -> None:
    knowledge = Knowledge()
    knowledge.apply(REF, "@tableur2", "ko", 7)
    knowledge.apply(REF, "@tableur4", "ok", 3)  # arrives late, but was answered earlier
    assert knowledge["@tableur2"] == (False, 7)
    assert knowledge["@tableur4"] == (False, 7)
    assert knowledge["@tableur1"] == (True, 3)
    assert knowledge.validated_skills() == {"@tableur1"}


def test_validated_skills_by_competence() -> None:
    knowledge = Knowledge()
    knowledge.apply(REF, "@recherche2", "ok", 1)
    knowledge.apply(REF, "@tableur1", "ok", 2)
    knowledge.apply(REF, "@messagerie1", "aband", 3)
    assert knowledge.validated_skills("1.1") == {"@recherche1", "@recherche2"}
    assert knowledge.validated_skills("1.3") == {"@tableur1"}
    assert knowledge.validated_skills("2.1") == set()
    assert len(knowledge) == 2 + 1 + 8


# One skill's share of its level's 8 pix: min(4, 8 / n) for n skills at that difficulty.
SKILL_PIX = [
    (1, Fraction(4)),  # a lone skill is worth 4, not 8
    (2, Fraction(4)),
    (3, Fraction(8, 3)),
    (4, Fraction(2)),
    (5, Fraction(8, 5)),
    (8, Fraction(1)),
]


@pytest.mark.parametrize(("skills_at_difficulty", "pix"), SKILL_PIX)
def test_one_skill_is_worth_at_most_4_pix(skills_at_difficulty: int, pix: Fraction) -> None:
    assert skill_pix(skills_at_difficulty) == pix


# (competence, validated skills, max level, pix). 1.1 has three skills at difficulty 1,
# four at 2..6, two at 7 and one at 8; 1.3 two per difficulty up to 6, then one at 7 and 8.
COMPETENCE_PIX = [
    ("1.1", ["@recherche8"], 8, 4),  # lone skill at its difficulty: 4, not 8
    ("1.3", ["@tableur7"], 8, 4),
    ("1.3", ["@tableur7", "@tableur8"], 8, 8),
    ("1.3", ["@tableur1"], 5, 4),  # two skills at difficulty 1: 4 each
    ("1.3", ["@tableur1", "@graphique1"], 5, 8),
    ("1.1", ["@recherche7"], 8, 4),
    ("1.1", ["@recherche7", "@veille7"], 8, 8),
    ("1.1", ["@recherche1"], 5, 2),  # three skills: 8/3 each, floored once
    ("1.1", ["@recherche1", "@veille1"], 5, 5),  # 16/3
    ("1.1", ["@recherche1", "@veille1", "@sourcesInfo1"], 5, 8),
    ("1.1", ["@recherche1", "@veille1", "@recherche2"], 5, 7),  # 8/3 + 8/3 + 2 = 22/3, not 6
    ("1.3", ["@recherche1", "@recherche2"], 5, 0),  # skills of another competence are ignored
    ("1.3", ["@tableur1", "@tableur1"], 5, 4),  # and duplicates counted once
]


@pytest.mark.parametrize(("code", "skills", "max_level", "pix"), COMPETENCE_PIX)
def test_competence_pix(code: str, skills: list[str], max_level: int, pix: int) -> None:
    assert competence_pix(REF, code, skills, max_level) == pix


def every_skill(code: str) -> list[str]:
    return [s.id for s in REF.skills_of(code)]


# Every skill of a competence: 8 pix per level, except 4 for a level with a lone skill;
# then capped at 8 x max level.
CAPPED = [
    ("1.3", 8, 56),  # 6 x 8 + 4 + 4
    ("1.1", 8, 60),  # 7 x 8 + 4
    ("2.4", 8, 64),
    ("1.3", 7, 56),
    ("1.3", 6, 48),
    ("1.3", 5, 40),
    ("1.3", 3, 24),
    ("2.4", 1, 8),
]


@pytest.mark.parametrize(("code", "max_level", "pix"), CAPPED)
def test_pix_are_capped_at_eight_times_the_max_level(code: str, max_level: int, pix: int) -> None:
    assert competence_pix(REF, code, every_skill(code), max_level) == pix


@pytest.mark.parametrize("code", COMPETENCE_CODES)
@pytest.mark.parametrize("difficulty", range(1, 9))
def test_a_level_shares_at_most_8_pix(code: str, difficulty: int) -> None:
    count = sum(1 for s in REF.skills_of(code) if s.difficulty == difficulty)
    assert skill_pix(count) * count == min(8, 4 * count)


@pytest.mark.parametrize(
    ("pix", "max_level", "level"),
    [(0, 5, 0), (7, 5, 0), (8, 5, 1), (39, 5, 4), (40, 5, 5), (64, 5, 5), (64, 8, 8)],
)
def test_level_from_pix(pix: int, max_level: int, level: int) -> None:
    assert level_from_pix(pix, max_level) == level


@pytest.mark.parametrize("max_level", [0, 9, -1])
def test_max_level_must_be_within_the_referential(max_level: int) -> None:
    with pytest.raises(ValueError, match="max level"):
        level_from_pix(8, max_level)


def test_empty_profile_covers_all_sixteen_competences() -> None:
    profile = profile_of(REF, Knowledge())
    assert tuple(c.code for c in profile.competences) == COMPETENCE_CODES
    assert all(c.pix == 0 and c.level == 0 for c in profile.competences)
    assert (profile.total_pix, profile.eligible) == (0, False)


def level_one_everywhere(codes: tuple[str, ...]) -> Knowledge:
    """Validate every difficulty-1 skill of these competences: exactly 8 pix each."""
    knowledge = Knowledge()
    for position, tube in enumerate(t for t in REF.tubes if t.competence in codes):
        easiest = REF.tube_skills(tube.name)[0]
        if easiest.difficulty == 1:
            knowledge.apply(REF, easiest.id, "ok", position)
    return knowledge


@pytest.mark.parametrize(("count", "eligible"), [(4, False), (5, True), (16, True)])
def test_eligibility_boundary(count: int, eligible: bool) -> None:
    profile = profile_of(REF, level_one_everywhere(COMPETENCE_CODES[:count]))
    assert [c.level for c in profile.competences] == [1] * count + [0] * (16 - count)
    assert profile.total_pix == 8 * count
    assert profile.eligible is eligible
    assert profile.competences_at_level_1 == count


def test_is_eligible() -> None:
    assert ELIGIBILITY_MIN_COMPETENCES == 5
    assert not is_eligible([1, 1, 1, 1, 0, 0])
    assert is_eligible([1, 1, 1, 1, 5])
    assert not is_eligible([])


def hardest_everywhere() -> Knowledge:
    """The hardest skill of every tube answered correctly: every skill validated."""
    knowledge = Knowledge()
    for position, tube in enumerate(REF.tubes):
        knowledge.apply(REF, REF.tube_skills(tube.name)[-1].id, "ok", position)
    return knowledge


# (competence, uncapped (pix, level) with max level 8, (pix, level) capped at 5)
UNCAPPED = [
    ("1.1", (60, 7), (40, 5)),
    ("1.3", (56, 7), (40, 5)),
    ("2.4", (64, 8), (40, 5)),
    ("5.2", (56, 7), (40, 5)),
]


@pytest.mark.parametrize(("code", "uncapped", "capped"), UNCAPPED)
def test_uncapped_profile_keeps_levels_above_the_certifiable_maximum(
    code: str, uncapped: tuple[int, int], capped: tuple[int, int]
) -> None:
    knowledge = hardest_everywhere()
    eight, five = profile_of(REF, knowledge, max_level=8), profile_of(REF, knowledge, 5)
    assert next((c.pix, c.level) for c in eight.competences if c.code == code) == uncapped
    assert next((c.pix, c.level) for c in five.competences if c.code == code) == capped


def test_profile_is_capped_at_max_level() -> None:
    knowledge = hardest_everywhere()
    five, eight = profile_of(REF, knowledge, 5), profile_of(REF, knowledge, 8)
    assert {(c.pix, c.level) for c in five.competences} == {(40, 5)}
    expected = {code: competence_pix(REF, code, every_skill(code), 8) for code in COMPETENCE_CODES}
    assert {c.code: c.pix for c in eight.competences} == expected
    assert all(c.level == c.pix // 8 for c in eight.competences)
    assert (five.total_pix, eight.total_pix) == (640, sum(expected.values()))


@pytest.mark.parametrize("code", COMPETENCE_CODES)
@pytest.mark.parametrize("difficulty", range(1, 7))
def test_validating_every_skill_up_to_a_difficulty_gives_its_level(
    code: str, difficulty: int
) -> None:
    skills = [s.id for s in REF.skills_of(code) if s.difficulty <= difficulty]
    pix = competence_pix(REF, code, skills, 8)
    assert pix == 8 * difficulty
    assert level_from_pix(pix, 5) == min(difficulty, 5)


answers = st.lists(
    st.tuples(st.sampled_from(ALL_SKILLS), st.sampled_from(ANSWER_RESULTS)), max_size=40
)


@settings(max_examples=150, deadline=None)
@given(answers, st.integers(min_value=1, max_value=8))
def test_profile_is_bounded_and_consistent(seq: list[tuple[str, str]], max_level: int) -> None:
    knowledge = Knowledge()
    for position, (skill, result) in enumerate(seq):
        knowledge.apply(REF, skill, result, position)
    profile = profile_of(REF, knowledge, max_level)
    for score in profile.competences:
        assert 0 <= score.pix <= 8 * max_level
        assert score.level == min(score.pix // 8, max_level)
    assert profile.total_pix == sum(c.pix for c in profile.competences)
    assert profile.eligible == (sum(c.level >= 1 for c in profile.competences) >= 5)


@settings(max_examples=150, deadline=None)
@given(st.sets(st.sampled_from(ALL_SKILLS)), st.sampled_from(ALL_SKILLS))
def test_validating_one_more_skill_never_lowers_pix(validated: set[str], extra: str) -> None:
    code = REF.competence_of_skill(extra)
    assert competence_pix(REF, code, validated | {extra}, 8) >= competence_pix(
        REF, code, validated, 8
    )


@settings(max_examples=100, deadline=None)
@given(answers, st.sampled_from(ALL_SKILLS), st.sampled_from(ANSWER_RESULTS))
def test_the_last_answer_always_decides_its_own_skill(
    seq: list[tuple[str, str]], skill: str, result: str
) -> None:
    knowledge = Knowledge()
    for position, (earlier_skill, earlier_result) in enumerate(seq):
        knowledge.apply(REF, earlier_skill, earlier_result, position)
    knowledge.apply(REF, skill, result, len(seq))
    assert knowledge[skill] == (result == CORRECT, len(seq))
