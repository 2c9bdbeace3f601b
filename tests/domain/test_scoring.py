"""Certification scoring (docs/scoring.md): every rule as rows of data, then properties.

Expected rates, bands and decisions are worked out here from the rule text, with exact
fractions and explicit half-up rounding, never with the module's own arithmetic: a test
that reused `reproducibility_rate` would agree with any mistake in it.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ledger.domain.referential import COMPETENCE_CODES
from ledger.domain.scoring import (
    BAND_NAMES,
    CANCELLED,
    ERROR,
    LEGACY_RULES,
    REJECTED,
    RULES,
    RULES_VERSION,
    STATUSES,
    TABLE,
    VALIDATED,
    CompetenceEvidence,
    ScoringResult,
    band,
    minimum_remaining,
    rate_of,
    reproducibility_rate,
    rules_of,
    score,
)

V, D, U = "validated", "downgraded", "uncertified"
HIGH, MIDDLE, LOW = "80-100", "70-79", "0-69"
COLUMNS = (HIGH, MIDDLE, LOW)


# --- the rule text, computed independently --------------------------------------------


def half_up(value: Fraction) -> int:
    return math.floor(value + Fraction(1, 2))


def rate_from_text(correct: int, remaining: int) -> int:
    """round(100 x correct / non-neutralized), halves up."""
    return half_up(Fraction(100 * correct, remaining))


def band_from_text(rate: int) -> str:
    return HIGH if rate >= 80 else MIDDLE if rate >= 70 else LOW


def needed_from_text(asked: int) -> int:
    """66% of the challenges asked, rounded up."""
    return math.ceil(Fraction(66 * asked, 100))


# --- building courses ---------------------------------------------------------------


def ev(
    code: str, asked: int, correct: int, neutralized: int = 0, level: int = 3, pix: int = 28
) -> CompetenceEvidence:
    return CompetenceEvidence(code, level, pix, asked, correct, neutralized)


def layout(size: int, room: int = len(COMPETENCE_CODES)) -> list[int]:
    """Challenges per competence in a course of `size` over at most `room` competences:
    threes, then ones, or a single two when there is no room for two ones."""
    full, rest = divmod(size, 3)
    return [3] * full + ([1] * rest if full + rest <= room else [rest])


def fill(
    sizes: list[int], correct: int, neutralized: int = 0, first: int = 0, **profile: int
) -> list[CompetenceEvidence]:
    """Competences of these sizes; neutralized challenges, then correct answers, fill them
    in order, so whole competences are right and the certified total is never 0 pix."""
    items = []
    for index, asked in enumerate(sizes):
        n = min(neutralized, asked)
        c = min(correct, asked - n)
        neutralized, correct = neutralized - n, correct - c
        items.append(ev(COMPETENCE_CODES[first + index], asked, c, n, **profile))
    assert correct == neutralized == 0, "the counts do not fit in the course"
    return items


# --- 1. the published table, each row in each band ------------------------------------

# The national table as published (docs/scoring.md): asked, correct, neutralized (None = any), outcomes in
# the >= 80, 70-79 and < 70 bands.
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
# The rates each band is tried at: its lower end and another rate inside it that every
# row can reach (100 needs every answer right; 50 is the lowest that is not rejected).
RATES = {HIGH: (90, 80), MIDDLE: (79, 70), LOW: (69, 50)}


def published() -> dict[tuple[int, int, int], tuple[str, str, str]]:
    return {
        (asked, correct, n): outcomes
        for asked, correct, neutralized, outcomes in PUBLISHED
        for n in (range(asked - correct + 1) if neutralized is None else [neutralized])
    }


TABLE_CASES = [
    pytest.param(asked, correct, n, rate, outcome, id=f"{asked}-{correct}-{n}-at-{rate}")
    for (asked, correct, n), outcomes in published().items()
    for column, outcome in zip(COLUMNS, outcomes, strict=True)
    for rate in RATES[column]
]


def course_at(target: CompetenceEvidence, rate: int) -> list[CompetenceEvidence]:
    """The target competence plus other ones that bring the whole course to exactly `rate`,
    with enough challenges left to be trustable; one of them all right, so the course
    certifies some pix whatever the target's outcome."""
    for count in range(1, len(COMPETENCE_CODES)):
        for extra in range(3, 3 * count + 1):
            asked = target.asked + 3 * count
            remaining = asked - target.neutralized
            if remaining < needed_from_text(asked):
                continue
            if rate_from_text(target.correct + extra, remaining) == rate:
                return [target, *fill([3] * count, extra, first=1, level=2, pix=20)]
    raise AssertionError(f"no course around {target} has a rate of {rate}%")


def test_table_is_the_published_one_for_every_possible_count() -> None:
    possible = {
        (asked, correct, n)
        for asked in range(1, 4)
        for correct in range(asked + 1)
        for n in range(asked - correct + 1)
    }
    assert published() == TABLE
    assert set(TABLE) == possible


@pytest.mark.parametrize(("asked", "correct", "neutralized", "rate", "expected"), TABLE_CASES)
def test_published_table(
    asked: int, correct: int, neutralized: int, rate: int, expected: str
) -> None:
    target = ev("1.1", asked, correct, neutralized, level=4, pix=37)
    result = score(course_at(target, rate))
    assert (result.status, result.reproducibility_rate) == (VALIDATED, rate)
    assert result.band == band_from_text(rate)
    first = result.competences[0]
    assert (first.code, first.outcome) == ("1.1", expected)
    assert (first.level, first.pix) == {V: (4, 37), D: (3, 29), U: (0, 0)}[expected]
    assert (first.asked, first.correct, first.neutralized) == (asked, correct, neutralized)


# --- 2. the rate: an integer percentage rounded half up --------------------------------

# correct, non-neutralized, rate, band
RATE_EXAMPLES = [
    (159, 200, 80, HIGH),  # 79.5 rounds up into the upper band
    (39, 49, 80, HIGH),  # 79.59
    (7, 9, 78, MIDDLE),  # 77.78
    (35, 44, 80, HIGH),  # 79.55
    (16, 23, 70, MIDDLE),  # 69.57
    (2, 3, 67, LOW),
    (7, 8, 88, HIGH),  # 87.5, a half: up
    (5, 8, 63, LOW),  # 62.5
    (3, 8, 38, LOW),  # 37.5
    (1, 8, 13, LOW),  # 12.5
    (1, 2, 50, LOW),
    (99, 199, 50, LOW),  # 49.75: not below 50
    (1, 3, 33, LOW),
    (4, 5, 80, HIGH),
    (0, 3, 0, LOW),
    (3, 3, 100, HIGH),
]


@pytest.mark.parametrize(("correct", "remaining", "rate", "band_name"), RATE_EXAMPLES)
def test_rate_examples(correct: int, remaining: int, rate: int, band_name: str) -> None:
    assert rate_from_text(correct, remaining) == rate  # the example is right
    assert reproducibility_rate(correct, remaining) == rate  # and the module agrees
    assert BAND_NAMES[band(rate)] == band_name == band_from_text(rate)


def test_no_challenge_left_gives_a_rate_of_zero() -> None:
    assert reproducibility_rate(0, 0) == 0


@pytest.mark.parametrize(
    ("rate", "band_name"),
    [(100, HIGH), (80, HIGH), (79, MIDDLE), (70, MIDDLE), (69, LOW), (50, LOW), (0, LOW)],
)
def test_bands_are_read_on_the_integer_rate(rate: int, band_name: str) -> None:
    assert BAND_NAMES[band(rate)] == band_name


# Every course of 1 to 48 challenges where rounding half up, rather than flooring, moves
# the rate into another band or across 50%: size, correct, rate, floored rate. A probe
# competence with these counts (asked, correct) then gets another outcome.
ROUNDING_CHANGES_THE_BAND = [
    (23, 16, 70, 69, (2, 1), D, U),
    (33, 23, 70, 69, (2, 1), D, U),
    (43, 30, 70, 69, (2, 1), D, U),
    (44, 35, 80, 79, (3, 2), V, D),
    (46, 32, 70, 69, (2, 1), D, U),
]


def test_the_rows_where_rounding_matters_are_all_listed() -> None:
    found = []
    for size in range(1, 49):
        for correct in range(size + 1):
            rate, floored = rate_from_text(correct, size), 100 * correct // size
            if band_from_text(rate) != band_from_text(floored) or (rate < 50) != (floored < 50):
                found.append((size, correct, rate, floored))
    assert found == [row[:4] for row in ROUNDING_CHANGES_THE_BAND]


@pytest.mark.parametrize(
    ("size", "correct", "rate", "floored", "probe", "outcome", "floored_outcome"),
    ROUNDING_CHANGES_THE_BAND,
)
def test_rounding_half_up_decides_the_band(
    size: int,
    correct: int,
    rate: int,
    floored: int,
    probe: tuple[int, int],
    outcome: str,
    floored_outcome: str,
) -> None:
    asked, right = probe
    rest = fill(layout(size - asked, room=15), correct - right, first=1)
    result = score([ev(COMPETENCE_CODES[0], asked, right), *rest])
    assert (result.status, result.reproducibility_rate) == (VALIDATED, rate)
    assert result.band == band_from_text(rate) != band_from_text(floored)
    assert result.competences[0].outcome == outcome
    assert TABLE[(asked, right, 0)][COLUMNS.index(band_from_text(floored))] == floored_outcome


@pytest.mark.parametrize("size", range(1, 49))
def test_every_course_size_and_number_of_correct_answers(size: int) -> None:
    for correct in range(size + 1):
        rate = rate_from_text(correct, size)
        result = score(fill(layout(size), correct))
        assert result.reproducibility_rate == rate, (size, correct)
        assert result.band == band_from_text(rate), (size, correct)
        assert result.status == (REJECTED if rate < 50 else VALIDATED), (size, correct)


# --- 3. the 50% threshold and 0-pix results --------------------------------------------

# competences as (asked, correct, neutralized, profile level, profile pix), status, rate
ZERO_PIX = [
    pytest.param([(2, 1, 0, 3, 28)], REJECTED, 50, id="uncertified-at-50"),
    pytest.param([(1, 1, 0, 1, 8), (3, 1, 0, 3, 28)], REJECTED, 50, id="downgraded-to-0-at-50"),
    pytest.param([(1, 1, 0, 1, 8), (2, 1, 0, 3, 28)], ERROR, 67, id="downgraded-to-0-at-67"),
    pytest.param([(1, 1, 0, 0, 0)], ERROR, 100, id="level-0-at-100"),
    pytest.param([(1, 1, 0, 1, 9), (3, 1, 0, 3, 28)], VALIDATED, 50, id="1-pix-left-at-50"),
    pytest.param([(1, 1, 0, 3, 28), (3, 1, 0, 3, 28)], VALIDATED, 50, id="downgraded-at-50"),
]


@pytest.mark.parametrize(("counts", "status", "rate"), ZERO_PIX)
def test_zero_pix_is_never_a_validated_certificate(
    counts: list[tuple[int, int, int, int, int]], status: str, rate: int
) -> None:
    items = [ev(COMPETENCE_CODES[i], *c) for i, c in enumerate(counts)]
    result = score(items)
    assert (result.status, result.reproducibility_rate) == (status, rate)
    assert (result.pix_score > 0) == (status == VALIDATED)
    if status == ERROR:
        assert "to be reviewed" in result.reasons[0]


# size, correct: the smallest courses on each side of 50%
THRESHOLD = [(2, 1, 50), (3, 2, 67), (4, 2, 50), (35, 17, 49), (35, 18, 51), (48, 24, 50)]


@pytest.mark.parametrize(("size", "correct", "rate"), THRESHOLD)
def test_rate_below_50_rejects(size: int, correct: int, rate: int) -> None:
    result = score(fill(layout(size), correct))
    assert result.reproducibility_rate == rate
    assert result.status == (REJECTED if rate < 50 else VALIDATED)


# --- 4. unfinished tests --------------------------------------------------------------

# asked, answered, correct, abort reason, status, rate. After a technical abort the
# unanswered challenges are neutralized; after a candidate abort they count as wrong.
ABORTS = [
    (15, 10, 4, "technical", CANCELLED, 40),
    (15, 10, 4, "candidate", REJECTED, 27),
    (48, 35, 17, "technical", CANCELLED, 49),
    (48, 35, 17, "candidate", REJECTED, 35),
    (48, 32, 16, "technical", VALIDATED, 50),
    (48, 32, 16, "candidate", REJECTED, 33),
    (48, 40, 30, "technical", VALIDATED, 75),
    (48, 40, 30, "candidate", VALIDATED, 63),
    (48, 31, 30, "technical", CANCELLED, 97),  # 31 left, 32 needed
    (48, 31, 30, "candidate", VALIDATED, 63),
    (9, 5, 5, "technical", CANCELLED, 100),  # 5 left, 6 needed
    (3, 2, 2, "technical", VALIDATED, 100),
    (3, 1, 1, "technical", CANCELLED, 100),  # 1 left, 2 needed
]


@pytest.mark.parametrize(("asked", "answered", "correct", "reason", "status", "rate"), ABORTS)
def test_unfinished_tests_by_abort_reason(
    asked: int, answered: int, correct: int, reason: str, status: str, rate: int
) -> None:
    technical = reason == "technical"
    unanswered = asked - answered
    items = fill(layout(asked), correct, unanswered if technical else 0)
    result = score(items, technical_abort=technical)
    assert (result.status, result.reproducibility_rate) == (status, rate)
    if status == CANCELLED and technical and answered >= needed_from_text(asked):
        assert "technical abort" in result.reasons[0]


def test_a_technical_abort_does_not_override_the_operator() -> None:
    items = fill(layout(15), 4, 5)
    assert score(items, technical_abort=True, fraud_confirmed=True).status == REJECTED
    assert score(items, technical_abort=True, cancelled_by_operator=True).status == CANCELLED


def test_a_technical_abort_at_50_with_no_pix_is_rejected_not_cancelled() -> None:
    result = score([ev("1.1", 2, 1)], technical_abort=True)
    assert (result.status, result.reproducibility_rate) == (REJECTED, 50)


# --- 5. downgrade from the uncapped profile, then cap ---------------------------------

# uncapped profile (level, pix), counts, max level, certified (outcome, level, pix).
# Around it 3/3 and 2/3 elsewhere: 7 of 9 or 8 of 9 right, so 2 of 3 is downgraded.
CAPPING = [
    ((6, 48), (3, 2, 0), 5, (D, 5, 40)),  # 48 - 8 = 40: level 5, not 4
    ((6, 48), (3, 3, 0), 5, (V, 5, 40)),
    ((8, 64), (3, 2, 0), 5, (D, 5, 40)),
    ((5, 45), (3, 2, 0), 5, (D, 4, 37)),  # capped first would give 32
    ((5, 41), (3, 3, 0), 5, (V, 5, 40)),
    ((6, 50), (3, 2, 0), 8, (D, 5, 42)),
    ((6, 48), (3, 2, 0), 3, (D, 3, 24)),
    ((7, 60), (3, 2, 0), 6, (D, 6, 48)),
    ((4, 37), (3, 2, 0), 5, (D, 3, 29)),
    ((1, 12), (3, 2, 0), 5, (D, 0, 4)),
    ((1, 8), (3, 2, 0), 5, (D, 0, 0)),
    ((4, 37), (3, 1, 0), 5, (U, 0, 0)),
]


@pytest.mark.parametrize(("profile", "counts", "max_level", "expected"), CAPPING)
def test_downgrade_then_cap(
    profile: tuple[int, int],
    counts: tuple[int, int, int],
    max_level: int,
    expected: tuple[str, int, int],
) -> None:
    level, pix = profile
    target = ev("3.4", *counts, level=level, pix=pix)
    others = [ev("3.1", 3, 3, level=2, pix=16), ev("3.2", 3, 2, level=2, pix=16)]
    result = score([target, *others], max_level=max_level)
    assert result.status == VALIDATED
    first = result.competences[0]
    assert (first.outcome, first.level, first.pix) == expected
    assert result.pix_score == sum(c.pix for c in result.competences)


# --- 6. too many neutralized challenges -----------------------------------------------

# asked, challenges needed (66% rounded up)
NEEDED = [(1, 1), (2, 2), (3, 2), (4, 3), (9, 6), (15, 10), (25, 17), (47, 32), (48, 32)]


@pytest.mark.parametrize(("asked", "needed"), NEEDED)
def test_minimum_remaining_is_66_percent_rounded_up(asked: int, needed: int) -> None:
    assert needed_from_text(asked) == needed == minimum_remaining(asked)


@pytest.mark.parametrize("asked", range(1, 49))
def test_too_many_neutralized_cancels_at_every_size(asked: int) -> None:
    needed = needed_from_text(asked)
    for neutralized in range(asked + 1):
        result = score(fill(layout(asked), asked - neutralized, neutralized))
        trustable = asked - neutralized >= needed
        assert result.status == (VALIDATED if trustable else CANCELLED), (asked, neutralized)
        if not trustable:
            assert f"only {asked - neutralized} of {asked}" in result.reasons[0]


def test_everything_neutralized_cancels_without_dividing_by_zero() -> None:
    result = score([ev("1.1", 3, 0, 3), ev("1.2", 2, 0, 2)])
    assert (result.status, result.reproducibility_rate, result.band) == (CANCELLED, 0, None)


# --- 7. operator decisions, impossible evidence, recorded results ----------------------


def test_operator_decisions_come_first() -> None:
    perfect = [ev("1.1", 3, 3), ev("1.2", 3, 3)]
    fraud = score(perfect, fraud_confirmed=True)
    assert (fraud.status, fraud.pix_score, fraud.reproducibility_rate) == (REJECTED, 0, 100)
    assert fraud.reasons == ("fraud confirmed by the operator",)
    cancelled = score(perfect, fraud_confirmed=True, cancelled_by_operator=True)
    assert (cancelled.status, cancelled.pix_score) == (CANCELLED, 0)
    assert {(c.level, c.pix) for c in cancelled.competences} == {(0, 0)}
    assert score([ev("1.1", 5, 3)], cancelled_by_operator=True).status == CANCELLED


@pytest.mark.parametrize(
    ("items", "max_level"),
    [
        ([], 5),
        ([ev("1.1", 4, 3)], 5),
        ([ev("1.1", 0, 0)], 5),
        ([ev("1.1", 3, 2, 2)], 5),
        ([ev("1.1", 3, -1)], 5),
        ([ev("1.1", 3, 3, level=-1)], 5),
        ([ev("1.1", 3, 3, level=9)], 5),
        ([ev("1.1", 3, 3, pix=65)], 5),
        ([ev("1.1", 3, 3), ev("1.1", 3, 3)], 5),
        ([ev("1.1", 3, 3)], 0),
        ([ev("1.1", 3, 3)], 9),
    ],
)
def test_impossible_evidence_is_an_error(items: list[CompetenceEvidence], max_level: int) -> None:
    result = score(items, max_level=max_level)
    assert result.status == ERROR
    assert result.pix_score == 0
    assert result.reasons[0].startswith("inconsistent evidence")


def plain(value: Any) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(plain(v) for v in value)
    return value is None or type(value) in (str, int)


def test_to_dict_is_plain_names_its_rules_and_round_trips() -> None:
    result = score([ev("1.1", 3, 3), ev("2.1", 3, 2), ev("5.2", 2, 1)])
    data = result.to_dict()
    assert plain(data)
    assert json.loads(json.dumps(data)) == data
    assert ScoringResult.from_dict(data) == result
    assert (data["rules"], data["reproducibility_rate"], data["band"]) == (
        RULES_VERSION,
        75,
        MIDDLE,
    )
    assert data["competences"][0] == {
        "code": "1.1",
        "outcome": V,
        "level": 3,
        "pix": 28,
        "asked": 3,
        "correct": 3,
        "neutralized": 0,
    }
    assert plain(score([], fraud_confirmed=True).to_dict())


def test_rules_are_versioned() -> None:
    assert (LEGACY_RULES, RULES_VERSION) == ("1", "2")
    assert set(RULES) == {LEGACY_RULES, RULES_VERSION}
    assert rules_of(score([ev("1.1", 3, 3)]).to_dict()) == RULES_VERSION


def test_a_legacy_result_is_read_as_it_was_recorded() -> None:
    legacy = {
        "status": "validated",
        "reproducibility_permille": 875,
        "competences": [{"code": "1.1", "outcome": V, "level": 3, "pix": 28}],
        "pix_score": 28,
        "reasons": [],
    }
    assert (rules_of(legacy), rate_of(legacy)) == (LEGACY_RULES, 87)
    result = ScoringResult.from_dict(legacy)
    assert (result.rules, result.reproducibility_rate, result.band) == (LEGACY_RULES, 87, None)
    assert result.competences[0].asked == 0


# A legacy per-mille rate read as a percentage keeps the band and decision it was
# recorded with: the thresholds are multiples of 10 per mille.
@pytest.mark.parametrize(
    ("permille", "rate"),
    [(1000, 100), (875, 87), (800, 80), (799, 79), (795, 79), (700, 70), (699, 69), (500, 50),
     (499, 49), (0, 0)],
)  # fmt: skip
def test_legacy_rates_keep_their_band(permille: int, rate: int) -> None:
    assert rate_of({"reproducibility_permille": permille}) == rate
    legacy_band = HIGH if permille >= 800 else MIDDLE if permille >= 700 else LOW
    assert BAND_NAMES[band(rate)] == legacy_band
    assert rate_of({"reproducibility_rate": rate, "reproducibility_permille": 1}) == rate


# --- properties -----------------------------------------------------------------------

RANK = {U: 0, D: 1, V: 2}


@st.composite
def one_competence(draw: st.DrawFn, code: str) -> CompetenceEvidence:
    """Counts a course can produce; an uncapped profile (level = pix // 8, up to 8)."""
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
@given(courses(), max_levels, flags, flags, flags)
def test_never_a_validated_result_with_0_pix(
    items: list[CompetenceEvidence], max_level: int, fraud: bool, cancelled: bool, tech: bool
) -> None:
    result = score(
        items,
        fraud_confirmed=fraud,
        cancelled_by_operator=cancelled,
        technical_abort=tech,
        max_level=max_level,
    )
    assert result.status in STATUSES
    assert (result.status == VALIDATED) == (result.pix_score > 0)
    if result.status != VALIDATED:
        assert result.reasons and {(c.level, c.pix) for c in result.competences} <= {(0, 0)}


@settings(max_examples=300, deadline=None)
@given(courses(), max_levels, flags, flags, flags)
def test_the_same_facts_give_the_same_result(
    items: list[CompetenceEvidence], max_level: int, fraud: bool, cancelled: bool, tech: bool
) -> None:
    options = {
        "fraud_confirmed": fraud,
        "cancelled_by_operator": cancelled,
        "technical_abort": tech,
        "max_level": max_level,
    }
    result = score(items, **options)
    assert score(list(items), **options) == result
    data = result.to_dict()
    assert ScoringResult.from_dict(json.loads(json.dumps(data))) == result
    assert ScoringResult.from_dict(data).to_dict() == data


@settings(max_examples=300, deadline=None)
@given(courses(), max_levels)
def test_certified_pix_add_up_and_stay_within_profile_and_max_level(
    items: list[CompetenceEvidence], max_level: int
) -> None:
    result = score(items, max_level=max_level)
    assert [c.code for c in result.competences] == [e.code for e in items]
    for certified, evidence in zip(result.competences, items, strict=True):
        assert 0 <= certified.level <= min(evidence.profile_level, max_level)
        assert 0 <= certified.pix <= min(evidence.profile_pix, 8 * max_level)
        counts = (certified.asked, certified.correct, certified.neutralized)
        assert counts == (evidence.asked, evidence.correct, evidence.neutralized)
    assert result.pix_score == sum(c.pix for c in result.competences)


@settings(max_examples=300, deadline=None)
@given(courses(), max_levels, st.data())
def test_neutralizing_a_wrong_answer_never_lowers_an_outcome(
    items: list[CompetenceEvidence], max_level: int, data: st.DataObject
) -> None:
    # Holds because the rate can only rise, every column of the table is at least as good
    # as the one below it, and each row with one more neutralized is at least as good.
    # Only the 66% rule may then cancel the test.
    wrong = [i for i, e in enumerate(items) if e.correct + e.neutralized < e.asked]
    assume(wrong)
    index = data.draw(st.sampled_from(wrong))
    after_items = list(items)
    after_items[index] = replace(items[index], neutralized=items[index].neutralized + 1)
    before, after = score(items, max_level=max_level), score(after_items, max_level=max_level)
    assume(after.status != CANCELLED)
    assert after.reproducibility_rate >= before.reproducibility_rate
    if before.status == VALIDATED:
        assert after.status == VALIDATED
    for old, new in zip(before.competences, after.competences, strict=True):
        assert RANK[new.outcome] >= RANK[old.outcome]
        assert new.level >= old.level and new.pix >= old.pix


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
def test_rate_and_threshold_follow_the_text(
    items: list[CompetenceEvidence], max_level: int
) -> None:
    asked, remaining, correct = totals(items)
    assume(remaining >= needed_from_text(asked))
    result = score(items, max_level=max_level)
    rate = rate_from_text(correct, remaining)
    assert (result.reproducibility_rate, result.band) == (rate, band_from_text(rate))
    if rate < 50:
        assert (result.status, result.pix_score) == (REJECTED, 0)
    elif rate == 50:
        assert result.status in (VALIDATED, REJECTED)
    else:
        assert result.status in (VALIDATED, ERROR)


@settings(max_examples=300, deadline=None)
@given(courses(), max_levels)
def test_a_technical_abort_only_turns_a_rejection_below_50_into_a_cancellation(
    items: list[CompetenceEvidence], max_level: int
) -> None:
    plain_result = score(items, max_level=max_level)
    aborted = score(items, max_level=max_level, technical_abort=True)
    if plain_result.status == REJECTED and plain_result.reproducibility_rate < 50:
        assert (aborted.status, aborted.pix_score) == (CANCELLED, 0)
    else:
        assert aborted == plain_result


@settings(max_examples=300, deadline=None)
@given(courses(), max_levels)
def test_too_many_neutralized_is_always_cancelled(
    items: list[CompetenceEvidence], max_level: int
) -> None:
    asked, remaining, _ = totals(items)
    result = score(items, max_level=max_level)
    assert (result.status == CANCELLED) == (remaining < needed_from_text(asked))


@settings(max_examples=100, deadline=None)
@given(courses(), max_levels, flags)
def test_operator_decisions_always_win(
    items: list[CompetenceEvidence], max_level: int, tech: bool
) -> None:
    fraud = score(items, fraud_confirmed=True, technical_abort=tech, max_level=max_level)
    assert (fraud.status, fraud.pix_score) == (REJECTED, 0)
    cancelled = score(items, fraud_confirmed=tech, cancelled_by_operator=True, max_level=max_level)
    assert (cancelled.status, cancelled.pix_score) == (CANCELLED, 0)
