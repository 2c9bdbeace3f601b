"""Certification scoring: the published table row by row, then properties of the rules."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ledger.domain.referential import COMPETENCE_CODES
from ledger.domain.scoring import (
    CANCELLED,
    ERROR,
    REJECTED,
    STATUSES,
    VALIDATED,
    CompetenceEvidence,
    ScoringResult,
    band,
    minimum_remaining,
    reproducibility_permille,
    score,
)

V, D, U = "validated", "downgraded", "uncertified"
BANDS = ("80+", "70-80", "-70")

# The DOMAIN.md table, as published: asked, correct, neutralized ("any" = None), outcomes.
PUBLISHED = [
    (3, 3, 0, (V, V, V)),
    (3, 2, 0, (V, D, D)),
    (3, 2, 1, (V, V, V)),
    (3, 1, 0, (U, U, U)),
    (3, 1, 1, (V, D, U)),
    (3, 1, 2, (V, V, D)),
    (3, 0, None, (U, U, U)),
    (2, 2, 0, (V, V, V)),
    (2, 1, 0, (V, D, U)),
    (2, 1, 1, (V, V, D)),
    (2, 0, None, (U, U, U)),
    (1, 1, 0, (V, V, D)),
    (1, 0, None, (U, U, U)),
]


def table_cases() -> list[Any]:
    cases = []
    for asked, correct, neutralized, outcomes in PUBLISHED:
        spread = range(asked + 1) if neutralized is None else [neutralized]
        for n in spread:
            for band_index, expected in enumerate(outcomes):
                case_id = f"{asked}-{correct}-{n}-{BANDS[band_index]}"
                cases.append(pytest.param(asked, correct, n, band_index, expected, id=case_id))
    return cases


def in_band(rate: int, band_index: int) -> bool:
    return rate >= 500 and band(rate) == band_index


def fillers(asked: int, correct: int, neutralized: int, band_index: int) -> list[tuple[int, int]]:
    """Other competences, as (asked=3, correct) pairs, that put the global rate in the band
    while keeping the test trustable."""
    for count in range(len(COMPETENCE_CODES)):
        for extra in range(3 * count + 1):
            total_asked = asked + 3 * count
            remaining = total_asked - neutralized
            if remaining < minimum_remaining(total_asked):
                continue
            if in_band(reproducibility_permille(correct + extra, remaining), band_index):
                per = [3] * (extra // 3) + ([extra % 3] if extra % 3 else [])
                per += [0] * (count - len(per))
                return [(3, c) for c in per]
    raise AssertionError("no filler puts the rate in that band")


def evidence(
    code: str, asked: int, correct: int, neutralized: int = 0, level: int = 3, pix: int = 28
) -> CompetenceEvidence:
    return CompetenceEvidence(code, level, pix, asked, correct, neutralized)


@pytest.mark.parametrize(
    ("asked", "correct", "neutralized", "band_index", "expected"), table_cases()
)
def test_published_table(
    asked: int, correct: int, neutralized: int, band_index: int, expected: str
) -> None:
    target = evidence("1.1", asked, correct, neutralized, level=4, pix=37)
    filler = fillers(asked, correct, neutralized, band_index)
    codes = COMPETENCE_CODES[1 : 1 + len(filler)]
    others = [
        evidence(code, a, c, level=2, pix=20) for code, (a, c) in zip(codes, filler, strict=True)
    ]
    result = score([target, *others])
    assert result.status == VALIDATED
    assert band(result.reproducibility_permille) == band_index
    first = result.competences[0]
    assert (first.code, first.outcome) == ("1.1", expected)
    assert (first.level, first.pix) == {V: (4, 37), D: (3, 29), U: (0, 0)}[expected]


@pytest.mark.parametrize(
    ("rate", "band_index"), [(1000, 0), (800, 0), (799, 1), (700, 1), (699, 2), (500, 2)]
)
def test_bands(rate: int, band_index: int) -> None:
    assert band(rate) == band_index


def test_rate_is_floored_per_mille_of_non_neutralized_answers() -> None:
    result = score([evidence("1.1", 3, 2, 0), evidence("1.2", 3, 2, 1), evidence("1.3", 3, 3, 0)])
    assert result.reproducibility_permille == 7 * 1000 // 8 == 875
    assert reproducibility_permille(2, 3) == 666
    assert reproducibility_permille(0, 0) == 0


@pytest.mark.parametrize(("asked", "needed"), [(1, 1), (2, 2), (3, 2), (9, 6), (15, 10), (48, 32)])
def test_minimum_remaining_is_66_percent_rounded_up(asked: int, needed: int) -> None:
    assert minimum_remaining(asked) == needed


def test_too_many_neutralized_cancels() -> None:
    # 9 asked: 6 must remain. 6 remaining is trustable, 5 is not.
    trustable = [evidence("1.1", 3, 3, 0), evidence("1.2", 3, 3, 0), evidence("1.3", 3, 0, 3)]
    assert score(trustable).status == VALIDATED
    untrustable = [evidence("1.1", 3, 3, 0), evidence("1.2", 3, 2, 1), evidence("1.3", 3, 0, 3)]
    result = score(untrustable)
    assert result.status == CANCELLED
    assert "5 of 9" in result.reasons[0]
    assert result.pix_score == 0


def test_everything_neutralized_cancels_without_dividing_by_zero() -> None:
    result = score([evidence("1.1", 3, 0, 3), evidence("1.2", 2, 0, 2)])
    assert (result.status, result.reproducibility_permille) == (CANCELLED, 0)


def test_rate_below_half_rejects_and_half_does_not() -> None:
    low = score([evidence("1.1", 3, 1), evidence("1.2", 3, 1), evidence("1.3", 2, 1)])
    assert (low.status, low.reproducibility_permille) == (REJECTED, 375)
    assert all((c.level, c.pix, c.outcome) == (0, 0, U) for c in low.competences)
    half = score([evidence("1.1", 2, 1), evidence("1.2", 2, 1)])
    assert (half.status, half.reproducibility_permille) == (VALIDATED, 500)


def test_operator_decisions_come_first() -> None:
    perfect = [evidence("1.1", 3, 3), evidence("1.2", 3, 3)]
    fraud = score(perfect, fraud_confirmed=True)
    assert (fraud.status, fraud.pix_score, fraud.reproducibility_permille) == (REJECTED, 0, 1000)
    assert fraud.reasons == ("fraud confirmed by the operator",)
    cancelled = score(perfect, fraud_confirmed=True, cancelled_by_operator=True)
    assert (cancelled.status, cancelled.pix_score) == (CANCELLED, 0)
    assert {(c.level, c.pix) for c in cancelled.competences} == {(0, 0)}
    broken = [evidence("1.1", 5, 3)]
    assert score(broken, cancelled_by_operator=True).status == CANCELLED


@pytest.mark.parametrize(
    ("items", "max_level"),
    [
        ([], 5),
        ([evidence("1.1", 4, 3)], 5),
        ([evidence("1.1", 0, 0)], 5),
        ([evidence("1.1", 3, 2, 2)], 5),
        ([evidence("1.1", 3, -1)], 5),
        ([evidence("1.1", 3, 3, level=-1)], 5),
        ([evidence("1.1", 3, 3, level=9)], 5),
        ([evidence("1.1", 3, 3), evidence("1.1", 3, 3)], 5),
        ([evidence("1.1", 3, 3)], 0),
    ],
)
def test_impossible_evidence_is_an_error(items: list[CompetenceEvidence], max_level: int) -> None:
    result = score(items, max_level=max_level)
    assert result.status == ERROR
    assert result.pix_score == 0
    assert result.reasons[0].startswith("inconsistent evidence")


@pytest.mark.parametrize(
    ("outcome_counts", "level", "pix", "expected"),
    [
        ((3, 3, 0), 4, 37, (V, 4, 37)),
        ((3, 2, 0), 4, 37, (D, 3, 29)),
        ((3, 2, 0), 1, 5, (D, 0, 0)),
        ((3, 1, 0), 4, 37, (U, 0, 0)),
        ((3, 3, 0), 7, 60, (V, 5, 40)),
        ((3, 2, 0), 7, 60, (D, 5, 40)),
        ((3, 2, 0), 6, 50, (D, 5, 40)),
    ],
)
def test_certified_level_and_pix(
    outcome_counts: tuple[int, int, int], level: int, pix: int, expected: tuple[str, int, int]
) -> None:
    # With 5 of 6 correct elsewhere, 2 of 3 here gives 777 per mille: the 70-80% band.
    target = evidence("3.4", *outcome_counts, level=level, pix=pix)
    others = [evidence("3.1", 3, 3, 0, level=2, pix=16), evidence("3.2", 3, 2, 0, level=2, pix=16)]
    result = score([target, *others])
    assert result.status == VALIDATED
    first = result.competences[0]
    assert (first.outcome, first.level, first.pix) == expected
    assert result.pix_score == sum(c.pix for c in result.competences)


def plain(value: Any) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(plain(v) for v in value)
    return type(value) in (str, int)


def test_to_dict_is_plain_and_round_trips() -> None:
    result = score([evidence("1.1", 3, 3), evidence("2.1", 3, 2), evidence("5.2", 2, 1)])
    data = result.to_dict()
    assert plain(data)
    assert json.loads(json.dumps(data)) == data
    assert ScoringResult.from_dict(data) == result
    assert data["competences"][0] == {"code": "1.1", "outcome": V, "level": 3, "pix": 28}
    assert plain(score([], fraud_confirmed=True).to_dict())


# --- properties ---------------------------------------------------------------------


@st.composite
def one_competence(draw: st.DrawFn, code: str) -> CompetenceEvidence:
    level = draw(st.integers(min_value=0, max_value=8))
    pix = min(8 * level + draw(st.integers(min_value=0, max_value=7)), 64)
    asked = draw(st.integers(min_value=1, max_value=3))
    correct = draw(st.integers(min_value=0, max_value=asked))
    neutralized = draw(st.integers(min_value=0, max_value=asked - correct))
    return CompetenceEvidence(code, level, pix, asked, correct, neutralized)


@st.composite
def courses(draw: st.DrawFn) -> list[CompetenceEvidence]:
    codes = draw(st.lists(st.sampled_from(COMPETENCE_CODES), min_size=1, max_size=16, unique=True))
    return [draw(one_competence(code)) for code in sorted(codes)]


max_levels = st.integers(min_value=1, max_value=8)
flags = st.booleans()


def totals(items: list[CompetenceEvidence]) -> tuple[int, int, int]:
    asked = sum(e.asked for e in items)
    remaining = asked - sum(e.neutralized for e in items)
    return asked, remaining, sum(e.correct for e in items)


@settings(max_examples=300, deadline=None)
@given(courses(), max_levels, flags, flags)
def test_certified_never_exceeds_profile_nor_max_level(
    items: list[CompetenceEvidence], max_level: int, fraud: bool, cancelled: bool
) -> None:
    result = score(
        items, fraud_confirmed=fraud, cancelled_by_operator=cancelled, max_level=max_level
    )
    assert result.status in STATUSES
    assert [c.code for c in result.competences] == [e.code for e in items]
    for certified, ev in zip(result.competences, items, strict=True):
        assert 0 <= certified.level <= min(ev.profile_level, max_level)
        assert 0 <= certified.pix <= min(ev.profile_pix, 8 * max_level)
    assert result.pix_score == sum(c.pix for c in result.competences)
    assert result.pix_score <= sum(e.profile_pix for e in items)
    if result.status != VALIDATED:
        assert result.pix_score == 0 and result.reasons
    assert (
        score(items, fraud_confirmed=fraud, cancelled_by_operator=cancelled, max_level=max_level)
        == result
    )


@settings(max_examples=300, deadline=None)
@given(courses(), max_levels, st.data())
def test_more_correct_answers_never_lower_anything(
    items: list[CompetenceEvidence], max_level: int, data: st.DataObject
) -> None:
    improvable = [i for i, e in enumerate(items) if e.correct + e.neutralized < e.asked]
    assume(improvable)
    index = data.draw(st.sampled_from(improvable))
    better = list(items)
    better[index] = replace(items[index], correct=items[index].correct + 1)
    before, after = score(items, max_level=max_level), score(better, max_level=max_level)
    if before.status == VALIDATED:
        assert after.status == VALIDATED
    for old, new in zip(before.competences, after.competences, strict=True):
        assert new.level >= old.level and new.pix >= old.pix
    assert after.pix_score >= before.pix_score


@settings(max_examples=300, deadline=None)
@given(courses(), max_levels)
def test_rate_below_half_is_always_rejected(
    items: list[CompetenceEvidence], max_level: int
) -> None:
    asked, remaining, correct = totals(items)
    assume(remaining >= minimum_remaining(asked))
    result = score(items, max_level=max_level)
    assert result.reproducibility_permille == correct * 1000 // remaining
    if 2 * correct < remaining:
        assert result.status == REJECTED
        assert result.pix_score == 0
    else:
        assert result.status == VALIDATED


@settings(max_examples=300, deadline=None)
@given(courses(), max_levels)
def test_too_many_neutralized_is_always_cancelled(
    items: list[CompetenceEvidence], max_level: int
) -> None:
    asked, remaining, _ = totals(items)
    result = score(items, max_level=max_level)
    assert (result.status == CANCELLED) == (100 * remaining < 66 * asked)


@settings(max_examples=100, deadline=None)
@given(courses(), max_levels)
def test_fraud_is_always_rejected(items: list[CompetenceEvidence], max_level: int) -> None:
    result = score(items, fraud_confirmed=True, max_level=max_level)
    assert (result.status, result.pix_score) == (REJECTED, 0)
