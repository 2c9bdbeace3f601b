"""Certification domain rules without HTTP or a database: sessions, courses, codes, calendar."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.domain import clock
from ledger.domain.base import Conflict
from ledger.domain.calendar import CalendarError, OutsideWindow, check_window, parse_windows
from ledger.domain.certificate import CODE_ALPHABET, new_code, normalize_code, valid_until
from ledger.domain.course import (
    Course,
    CourseEnded,
    LateAnswer,
    UnassignedChallenge,
    select_challenges,
)
from ledger.domain.profile import CompetenceScore, Profile
from ledger.domain.referential import COMPETENCE_CODES, load_referential
from ledger.domain.session import (
    IneligibleCandidate,
    InvalidReport,
    NotEnrolled,
    Session,
    WrongState,
)

REF = load_referential()
START = datetime(2026, 11, 24, 8, 30, tzinfo=UTC)


def profile(levels: dict[str, int]) -> Profile:
    scores = tuple(
        CompetenceScore(c, 8 * levels.get(c, 0), levels.get(c, 0)) for c in COMPETENCE_CODES
    )
    return Profile(scores, sum(s.pix for s in scores), sum(1 for s in scores if s.level) >= 5)


def new_session() -> Session:
    return Session(centre="c", audience="adult", date="2026-11-24", time="09:00", address="a",
                   room="r", examiner={"sealed": "x", "subject": "s"})  # fmt: skip


def new_course(levels: dict[str, int] | None = None) -> Course:
    levels = levels or {"1.1": 2, "2.1": 1, "3.1": 3, "4.1": 1, "5.1": 2}
    p = profile(levels)
    seed = "7f1c1a3e-2b1f-4a9c-8d5e-1c2b3a4d5e6f"
    with clock.frozen_at(START):
        return Course(
            selection_seed=seed, session="s", candidate="k", centre="c", referential=REF.version,
            challenges=select_challenges(REF, p, set(), seed), profile=p.to_list(),
            started_at=clock.format_time(START), deadline=clock.format_time(START + timedelta(minutes=105)),
        )  # fmt: skip


def test_session_lifecycle_and_refusals() -> None:
    s = new_session()
    with pytest.raises(IneligibleCandidate):
        s.enrol("k1", "adult", eligible=False, competences_at_level_1=4)
    s.enrol("k1", "adult", eligible=True, competences_at_level_1=6)
    with pytest.raises(Conflict):
        s.enrol("k1", "adult", eligible=True, competences_at_level_1=6)
    with pytest.raises(NotEnrolled):
        s.start_course("k2", "course-2")
    with pytest.raises(WrongState):
        s.finalize([], None, [], [], set())  # no test started
    s.enrol("k2", "adult", eligible=True, competences_at_level_1=5)
    s.start_course("k1", "course-1")
    with pytest.raises(InvalidReport):
        s.finalize(["k1"], None, [], [], set())  # started, so not absent
    with pytest.raises(InvalidReport):
        s.finalize([], None, [], [], {"k1"})  # unfinished without abort reason
    with pytest.raises(InvalidReport):
        s.finalize(
            [],
            None,
            [],
            [{"candidate": "k1", "category": "fraud", "neutralize": True, "challenge": "x"}],
            set(),
        )
    s.finalize(["k2"], None, [], [], set())
    with pytest.raises(WrongState):
        s.publish("2026-12-01", [], [])
    s.start_review()
    with pytest.raises(WrongState):
        s.publish("2026-12-01", ["course-1"], [])
    s.publish("2026-12-01", [], [])
    assert s.state == "processed"
    with pytest.raises(WrongState):
        s.enrol("k3", "adult", eligible=True, competences_at_level_1=9)


def test_selection_is_at_the_level_three_per_competence_and_deterministic() -> None:
    levels = {"1.1": 2, "1.2": 4, "2.1": 1, "3.4": 5, "4.2": 3, "5.2": 1}
    p = profile(levels)
    first = select_challenges(REF, p, set(), "seed-a")
    assert first == select_challenges(REF, p, set(), "seed-a")
    assert first != select_challenges(REF, p, set(), "seed-b")
    for code, level in levels.items():
        picked = [c for c in first if c["competence"] == code]
        at_level = [s for s in REF.skills_of(code) if s.difficulty == level]
        assert len(picked) == 3 and {c["difficulty"] for c in picked} == {level}
        assert len({c["skill"] for c in picked}) == min(3, len(at_level))
        assert len({c["challenge"] for c in picked}) == 3
        assert all(REF.challenge(c["challenge"]).skill == c["skill"] for c in picked)


def test_selection_prefers_challenges_not_seen_in_positioning() -> None:
    p = profile({"1.1": 1, "1.2": 1, "1.3": 1, "2.1": 1, "2.2": 1})
    everything = {c["challenge"] for c in select_challenges(REF, p, set(), "s")}
    again = select_challenges(REF, p, everything, "s")
    assert not everything & {c["challenge"] for c in again}


@given(st.dictionaries(st.sampled_from(COMPETENCE_CODES), st.integers(0, 5)))
def test_selection_never_exceeds_48_nor_asks_untested_competences(levels: dict[str, int]) -> None:
    chosen = select_challenges(REF, profile(levels), set(), "x")
    assert len(chosen) <= 48
    assert {c["competence"] for c in chosen} == {c for c, level in levels.items() if level >= 1}


def test_answers_are_final_assigned_and_before_the_deadline() -> None:
    course = new_course()
    first, second = course.challenges[0]["challenge"], course.challenges[1]["challenge"]
    with clock.frozen_at(START + timedelta(minutes=10)):
        course.answer(first, "ok", 1000)
        with pytest.raises(Conflict):
            course.answer(first, "ko", 1000)
        with pytest.raises(UnassignedChallenge):
            course.answer("nope", "ok", 1000)
    with clock.frozen_at(START + timedelta(minutes=105, microseconds=1)), pytest.raises(LateAnswer):
        course.answer(second, "ok", 1000)
    course.end("timed-out")
    with clock.frozen_at(START + timedelta(minutes=20)), pytest.raises(CourseEnded):
        course.answer(second, "ok", 1000)


def test_completing_the_course_and_scoring_it() -> None:
    course = new_course()
    with clock.frozen_at(START + timedelta(minutes=30)):
        for item in course.challenges:
            course.answer(item["challenge"], "ok", 1000)
    assert course.state == "completed"
    result = course.score("completion", "done", max_level=5)
    assert result.status == "validated" and result.reproducibility_rate == 100
    levels = {c.code: c.level for c in result.competences}
    assert levels == {"1.1": 2, "2.1": 1, "3.1": 3, "4.1": 1, "5.1": 2}
    first = course.challenges[0]["challenge"]
    report = {"id": "r", "category": "in-challenge", "challenge": first}
    kept = course.score("rescoring", "late report", max_level=5, issue_reports=[report])
    assert kept.status == "validated" and len(course.scores) == 2
    assert course.scores[-1]["neutralized"] == []  # a correct answer is kept
    again = course.neutralize(first, {"sealed": "operator"}, max_level=5)
    assert again.status == "validated" and course.scores[-1]["neutralized"] == [first]
    fraud = course.score("operator", "phone", max_level=5, fraud_confirmed=True)
    assert fraud.status == "rejected" and course.scores[-1]["neutralized"] == [first]


def test_codes_are_unambiguous_and_input_is_tolerant() -> None:
    codes = {new_code() for _ in range(2000)}
    assert len(codes) == 2000
    for code in codes:
        assert code[:2] == "P-" and len(code) == 10 and set(code[2:]) <= set(CODE_ALPHABET)
    assert not set("AEIOU015SZL") & set(CODE_ALPHABET)
    code = next(iter(codes))
    assert normalize_code(code) == code
    assert normalize_code(code[2:].lower()) == code
    assert normalize_code(" " + code[2:6].lower() + " " + code[6:]) == code
    assert normalize_code("P-AAAAAAAA") is None and normalize_code("P-123") is None


def test_validity_is_three_years() -> None:
    assert valid_until(date(2026, 12, 1)) == date(2029, 12, 1)
    assert valid_until(date(2028, 2, 29)) == date(2031, 2, 28)


def test_calendar_windows() -> None:
    windows = parse_windows("upper-secondary=01-05:03-31,lower-secondary=03-01:05-31")
    check_window(windows, "upper-secondary", date(2027, 1, 5))
    check_window(windows, "upper-secondary", date(2027, 3, 31))
    check_window(windows, "adult", date(2027, 8, 15))
    with pytest.raises(OutsideWindow):
        check_window(windows, "upper-secondary", date(2027, 4, 1))
    with pytest.raises(OutsideWindow):
        check_window(windows, "lower-secondary", date(2027, 2, 28))
    for bad in ("upper=13-01:03-01", "x=03-01:01-01", "nonsense"):
        with pytest.raises(CalendarError):
            parse_windows(bad)
