"""Challenge selection as the national platform does it, cases written as data.

A small referential makes every rule visible: competence 1.1 has tubes @a (1-5),
@b (1-4), @c (1-3) and @d (1-3), competence 1.2 the tube @e (1-3); each skill has
challenges `<skill>-x` and `<skill>-y`, and a few are not accessible.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import crypto
from ledger.domain.course import PER_COMPETENCE, select_challenges
from ledger.domain.profile import ANSWER_RESULTS, Knowledge, profile_of
from ledger.domain.referential import (
    COMPETENCE_CODES,
    Referential,
    ReferentialError,
    load_referential,
)
from tests.domain.test_referential import shipped_json

TUBES = {"@a": ("1.1", 5), "@b": ("1.1", 4), "@c": ("1.1", 3), "@d": ("1.1", 3), "@e": ("1.2", 3)}
NOT_ACCESSIBLE = {"@a5-x", "@a5-y", "@a4-x"}
SEEDS = [f"seed-{n}" for n in range(40)]


def small_referential() -> Referential:
    skills = [
        {"id": f"{tube}{d}", "tube": tube, "difficulty": d}
        for tube, (_, top) in TUBES.items()
        for d in range(1, top + 1)
    ]
    challenges = [
        {"id": f"{s['id']}-{v}", "skill": s["id"]}
        | ({"accessible": False} if f"{s['id']}-{v}" in NOT_ACCESSIBLE else {})
        for s in skills
        for v in "xy"
    ]
    return Referential.from_dict(
        {
            "version": "test-1",
            "domains": [{"code": "1", "title": "Information"}],
            "competences": [
                {"code": "1.1", "domain": "1", "title": "Recherche"},
                {"code": "1.2", "domain": "1", "title": "Données"},
            ],
            "tubes": [{"name": t, "competence": c} for t, (c, _) in TUBES.items()],
            "skills": skills,
            "challenges": challenges,
        }
    )


SMALL = small_referential()


class SmallProfile:
    """Levels of the small referential's two competences (profile_of needs all 16)."""

    def __init__(self, levels: dict[str, int]):
        self.competences = [_Score(code, level) for code, level in levels.items()]


class _Score:
    def __init__(self, code: str, level: int):
        self.code, self.level = code, level


def knowledge_of(answers: list[tuple[str, str]], ref: Referential = SMALL) -> Knowledge:
    knowledge = Knowledge()
    for position, (skill, result) in enumerate(answers, start=1):
        knowledge.apply(ref, skill, result, position)
    return knowledge


def select(
    answers: list[tuple[str, str]],
    levels: dict[str, int] | None = None,
    seen: set[str] | frozenset[str] = frozenset(),
    seed: str = "seed",
    accessibility: bool = False,
) -> list[dict[str, Any]]:
    profile: Any = SmallProfile(levels or {"1.1": 3, "1.2": 0})
    return select_challenges(
        SMALL, profile, knowledge_of(answers), set(seen), seed, accessibility=accessibility
    )


def ok(*skills: str) -> list[tuple[str, str]]:
    return [(s, "ok") for s in skills]


# (rule, answers in order, skills expected in order whatever the seed)
SKILL_CASES = [
    ("hardest first, at most 3", ok("@a2", "@a3", "@a4", "@a5"), ["@a5", "@a4", "@a3"]),
    ("another tube first at equal difficulty", ok("@a3", "@a4", "@b3"), ["@a4", "@b3", "@a3"]),
    ("difficulty beats a new tube", ok("@a4", "@a5", "@b3"), ["@a5", "@a4", "@b3"]),
    ("inferred skills are never asked", ok("@a5", "@c3"), ["@a5", "@c3"]),
    ("fewer direct skills, fewer challenges", ok("@b2"), ["@b2"]),
    ("a wrong answer later removes the skill", [*ok("@b4"), ("@b4", "ko"), *ok("@b2")], ["@b2"]),
    ("an easier wrong answer invalidates", [*ok("@a5"), ("@a2", "aband")], []),
    ("a direct answer stays direct when a harder one agrees", ok("@a2", "@a4"), ["@a4", "@a2"]),
    ("a wrong answer to the skill itself", [("@c3", "ko"), *ok("@c2")], ["@c2"]),
]


@pytest.mark.parametrize(
    ("rule", "answers", "expected"), SKILL_CASES, ids=[c[0] for c in SKILL_CASES]
)
def test_skills_chosen(rule: str, answers: list[tuple[str, str]], expected: list[str]) -> None:
    for seed in SEEDS:
        assert [c["skill"] for c in select(answers, seed=seed)] == expected, rule


def test_equal_difficulty_in_four_tubes_is_left_to_the_seed() -> None:
    answers = ok("@a3", "@b3", "@c3", "@d3")
    picks = {tuple(c["skill"] for c in select(answers, seed=seed)) for seed in SEEDS}
    assert all(len(p) == 3 == len(set(p)) for p in picks)
    assert {s for p in picks for s in p} == {"@a3", "@b3", "@c3", "@d3"} and len(picks) > 1


# (rule, challenges answered in positioning, accessibility, challenge expected for @a4)
CHALLENGE_CASES = [
    ("an unanswered challenge first", {"@a4-x"}, False, {"@a4-y"}),
    ("the other one when both were answered", {"@a4-x", "@a4-y"}, False, {"@a4-x", "@a4-y"}),
    ("either when none was answered", set(), False, {"@a4-x", "@a4-y"}),
    ("only accessible ones for accessibility needs", set(), True, {"@a4-y"}),
    ("accessible even if already answered", {"@a4-y"}, True, {"@a4-y"}),
]


@pytest.mark.parametrize(
    ("rule", "seen", "accessibility", "expected"),
    CHALLENGE_CASES,
    ids=[c[0] for c in CHALLENGE_CASES],
)
def test_challenge_of_a_skill(
    rule: str, seen: set[str], accessibility: bool, expected: set[str]
) -> None:
    chosen = {
        select(ok("@a4"), seen=seen, seed=seed, accessibility=accessibility)[0]["challenge"]
        for seed in SEEDS
    }
    assert chosen == expected, rule


def test_a_skill_without_accessible_challenge_is_skipped_for_accessibility_needs() -> None:
    answers = ok("@a5", "@a4", "@b4", "@c3")
    for seed in SEEDS:
        assert [c["skill"] for c in select(answers, seed=seed)] == ["@a5", "@b4", "@a4"]
        adapted = [c["skill"] for c in select(answers, seed=seed, accessibility=True)]
        assert sorted(adapted[:2]) == ["@a4", "@b4"] and adapted[2] == "@c3"


def test_only_competences_at_level_one_or_more() -> None:
    answers = ok("@a3", "@e2")
    assert {c["competence"] for c in select(answers, {"1.1": 3, "1.2": 0})} == {"1.1"}
    both = select(answers, {"1.1": 3, "1.2": 1})
    assert [(c["competence"], c["skill"], c["difficulty"]) for c in both] == [
        ("1.1", "@a3", 3),
        ("1.2", "@e2", 2),
    ]
    assert all(SMALL.challenge(c["challenge"]).skill == c["skill"] for c in both)


def test_same_seed_same_selection_another_seed_may_differ() -> None:
    answers = ok("@a3", "@b3", "@c3", "@d3", "@e1", "@e2")
    levels = {"1.1": 3, "1.2": 1}
    first = select(answers, levels, seed="course-1")
    assert first == select(answers, levels, seed="course-1")
    assert any(select(answers, levels, seed=seed) != first for seed in SEEDS)


# --- properties on the shipped referential ---------------------------------------------

REF = load_referential()
SKILL_IDS = sorted(s.id for c in COMPETENCE_CODES for s in REF.skills_of(c))


@settings(max_examples=150, deadline=None)
@given(
    answers=st.lists(
        st.tuples(st.sampled_from(SKILL_IDS), st.sampled_from(ANSWER_RESULTS)), max_size=120
    ),
    seed=st.text(max_size=20),
    accessibility=st.booleans(),
)
def test_selection_properties(
    answers: list[tuple[str, str]], seed: str, accessibility: bool
) -> None:
    knowledge = knowledge_of(answers, REF)
    profile = profile_of(REF, knowledge, max_level=8)
    chosen = select_challenges(REF, profile, knowledge, set(), seed, accessibility)
    assert chosen == select_challenges(REF, profile, knowledge, set(), seed, accessibility)
    assert len(chosen) <= 48
    assert len({c["skill"] for c in chosen}) == len(chosen)  # no repeated skill, ever
    direct = knowledge.directly_validated_skills()
    for code in COMPETENCE_CODES:
        mine = [c for c in chosen if c["competence"] == code]
        assert len(mine) <= PER_COMPETENCE
        if profile.level_of(code) < 1:
            assert not mine
            continue
        difficulties = [c["difficulty"] for c in mine]
        assert difficulties == sorted(difficulties, reverse=True)  # hardest first
        expected = min(PER_COMPETENCE, len(knowledge.directly_validated_skills(code)))
        assert len(mine) == expected  # every shipped challenge is accessible
    for item in chosen:
        assert item["skill"] in direct and REF.challenge(item["challenge"]).skill == item["skill"]


def test_direct_evidence_is_order_independent() -> None:
    answers = [*ok("@a2", "@a4"), ("@b3", "ko"), ("@b1", "ok"), ("@c2", "ok"), ("@c1", "ko")]
    forwards = knowledge_of(answers)
    backwards = Knowledge()
    for position, (skill, result) in reversed(list(enumerate(answers, start=1))):
        backwards.apply(SMALL, skill, result, position)
    assert forwards.directly_validated_skills() == backwards.directly_validated_skills()
    assert forwards.directly_validated_skills() == {"@a2", "@a4", "@b1"}
    assert forwards.directly_validated_skills("1.2") == set()
    assert forwards.validated_skills() >= {"@a1", "@a3"}  # inferred, validated, not direct


# --- the accessible flag in the referential -------------------------------------------------

SHIPPED_RELEASE_HASH = "c9ee00a8445cab087c86527b034c746b01e9e4d80db670917ff46aa2caf44be1"


def test_accessible_by_default_and_the_shipped_release_is_unchanged() -> None:
    assert all(REF.challenge(c["id"]).accessible for c in shipped_json()["challenges"])
    assert REF.to_dict() == shipped_json()
    assert crypto.sha256_hex(crypto.canonical_json(REF.to_dict())) == SHIPPED_RELEASE_HASH


def test_an_inaccessible_challenge_round_trips_and_a_bad_flag_is_refused() -> None:
    data = SMALL.to_dict()
    assert {"id": "@a5-x", "skill": "@a5", "accessible": False} in data["challenges"]
    assert {"id": "@a3-x", "skill": "@a3"} in data["challenges"]
    assert Referential.from_dict(json.loads(json.dumps(data))).to_dict() == data
    data["challenges"][0]["accessible"] = "yes"
    with pytest.raises(ReferentialError, match="accessible"):
        Referential.from_dict(data)


def test_a_skill_re_validated_by_inference_after_an_invalidation_is_not_direct() -> None:
    """X answered ok, an easier skill wrong (X invalidated), a harder one ok (X inferred)."""
    from ledger.domain.referential import load_referential

    ref = load_referential()
    tube = next(t for t in ref.tubes if len(ref.tube_skills(t.name)) >= 3)
    easy, middle, hard = sorted(ref.tube_skills(tube.name), key=lambda s: s.difficulty)[:3]
    knowledge = Knowledge()
    knowledge.apply(ref, middle.id, "ok", 1)
    assert knowledge.is_direct(middle.id)
    knowledge.apply(ref, easy.id, "ko", 2)
    knowledge.apply(ref, hard.id, "ok", 3)
    assert middle.id in knowledge.validated_skills() and not knowledge.is_direct(middle.id)
    knowledge.apply(ref, middle.id, "ok", 4)  # answered again: direct again
    assert knowledge.is_direct(middle.id)
