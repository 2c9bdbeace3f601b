"""Scoring a course: aborts, issue reports, operator neutralization, rescoring, replay.

Courses are built with explicit challenges (5 competences x 3, level 2, 16 pix), so
every count below is written out; the rules themselves are tested in test_scoring.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.domain import clock
from ledger.domain.base import Conflict
from ledger.domain.course import Course, CourseError, UnassignedChallenge
from ledger.domain.scoring import RULES_VERSION
from ledger.store.mapper import LedgerMapper

START = datetime(2026, 11, 24, 8, 30, tzinfo=UTC)
COMPETENCES = ("1.1", "2.1", "3.1", "4.1", "5.1")
SEED = "7f1c1a3e-2b1f-4a9c-8d5e-1c2b3a4d5e6f"
# Fields other parts add to CourseStarted; passed only when the constructor takes them.
LATER_START_FIELDS = {"extra_time_percent": 0, "accessibility": False, "rules": RULES_VERSION}


def new_course() -> Course:
    challenges = [
        {"challenge": f"ch-{code}-{i}", "skill": f"sk-{code}-{i}", "competence": code,
         "difficulty": 2}
        for code in COMPETENCES
        for i in range(3)
    ]  # fmt: skip
    profile = [{"code": code, "level": 2, "pix": 16} for code in COMPETENCES]
    params = inspect.signature(Course.__init__).parameters
    extra = {k: v for k, v in LATER_START_FIELDS.items() if k in params}
    with clock.frozen_at(START):
        return Course(
            selection_seed=SEED, session="s", candidate="k", centre="c", referential="v1",
            challenges=challenges, profile=profile, started_at=clock.format_time(START),
            deadline=clock.format_time(START + timedelta(minutes=105)), **extra,
        )  # fmt: skip


def ids(course: Course) -> list[str]:
    return [c["challenge"] for c in course.challenges]


def answer(course: Course, results: list[str]) -> None:
    """Answer the first len(results) challenges, in order."""
    with clock.frozen_at(START + timedelta(minutes=30)):
        for challenge, result in zip(ids(course), results, strict=False):
            course.answer(challenge, result, 1000)


def replayed(course: Course, drop: tuple[str, ...] = ()) -> Course:
    """The course as the store rebuilds it; `drop` removes new CourseScored fields (older events)."""
    mapper = LedgerMapper()
    aggregate = None
    for domain_event in course.collect_events():
        stored = mapper.to_stored_event(domain_event)
        if stored.topic == "certification.CourseScored" and drop:
            state = {k: v for k, v in json.loads(stored.state).items() if k not in drop}
            stored = replace(stored, state=json.dumps(state))
        aggregate = mapper.to_domain_event(stored).mutate(aggregate)
    return aggregate


def test_every_scoring_records_its_rules_and_carries_over_neutralizations() -> None:
    course = new_course()
    answer(course, ["ok"] * 15)
    result = course.score("completion", "all challenges answered", 5)
    assert result.status == "validated" and result.reproducibility_rate == 100
    recorded = course.scores[-1]
    assert recorded["result"]["rules"] == RULES_VERSION
    assert recorded["neutralizations"] == [] and recorded["kept"] == []
    assert recorded["abort_reason"] is None
    course.neutralize(ids(course)[0], {"sealed": "x"}, 5)
    course.score("operator", {"sealed": "y"}, 5, fraud_confirmed=True)
    assert course.scores[-1]["neutralized"] == [ids(course)[0]]
    assert course.latest_result["status"] == "rejected"


# (answers given in order, abort reason) -> status, rate, neutralized count
ABORTS = [
    # 10 answered of 15: 4 correct, 6 wrong, 5 unanswered
    (["ok"] * 4 + ["ko"] * 6, "candidate", "rejected", 27, 0),
    (["ok"] * 4 + ["ko"] * 6, "technical", "cancelled", 40, 5),
    # 12 answered, 11 correct: the 3 unanswered no longer count against the candidate
    (["ok"] * 11 + ["ko"], "technical", "validated", 92, 3),
    (["ok"] * 11 + ["ko"], "candidate", "validated", 73, 0),
    # 9 answered: 6 unanswered neutralized leave fewer than 66% of 15
    (["ok"] * 9, "technical", "cancelled", 100, 6),
]


@pytest.mark.parametrize(("answers", "abort", "status", "rate", "neutralized"), ABORTS)
def test_unfinished_tests_by_abort_reason(
    answers: list[str], abort: str, status: str, rate: int, neutralized: int
) -> None:
    course = new_course()
    answer(course, answers)
    course.end("aborted")
    result = course.score("finalization", "examiner report", 5, abort_reason=abort)
    assert (result.status, result.reproducibility_rate) == (status, rate)
    assert course.abort_reason == abort
    entries = course.scores[-1]["neutralizations"]
    assert len(entries) == neutralized
    assert all(e["source"] == "technical-abort" for e in entries)
    unanswered = set(ids(course)[len(answers) :])
    assert {e["challenge"] for e in entries} == (unanswered if abort == "technical" else set())


def test_a_technical_abort_is_remembered_by_later_scorings() -> None:
    course = new_course()
    answer(course, ["ok"] * 4 + ["ko"] * 6)
    course.end("aborted")
    course.score("finalization", "examiner report", 5, abort_reason="technical")
    again = course.score("operator", {"sealed": "z"}, 5)
    assert again.status == "cancelled" and course.abort_reason == "technical"
    with pytest.raises(CourseError):
        course.score("finalization", "examiner report", 5, abort_reason="tired")


def report(challenge: str, ident: str = "r-1") -> dict[str, Any]:
    return {"id": ident, "category": "in-challenge", "challenge": challenge}


@pytest.mark.parametrize(
    ("result", "neutralized"),
    [("ok", False), ("ko", True), ("aband", True), ("timedout", True), ("partially", True)],
)
def test_an_issue_report_neutralizes_only_a_challenge_not_answered_correctly(
    result: str, neutralized: bool
) -> None:
    course = new_course()
    answer(course, [result] + ["ok"] * 14)
    first = ids(course)[0]
    course.score("finalization", "examiner report", 5, issue_reports=[report(first)])
    recorded = course.scores[-1]
    assert (first in recorded["neutralized"]) is neutralized
    if neutralized:
        assert recorded["neutralizations"] == [
            {"challenge": first, "source": "issue-report", "report": "r-1",
             "category": "in-challenge", "reason": None}
        ]  # fmt: skip
        assert recorded["kept"] == []
    else:
        assert recorded["kept"] == [
            {"challenge": first, "report": "r-1", "category": "in-challenge"}
        ]
        assert course.latest_result["reproducibility_rate"] == 100


def test_an_issue_report_on_an_unanswered_challenge_neutralizes_it() -> None:
    course = new_course()
    answer(course, ["ok"] * 14)
    course.end("aborted")
    last = ids(course)[-1]
    course.score(
        "finalization", "report", 5, issue_reports=[report(last)], abort_reason="candidate"
    )
    assert course.scores[-1]["neutralized"] == [last]
    assert course.latest_result["reproducibility_rate"] == 100


def test_an_issue_report_on_an_unassigned_challenge_is_refused() -> None:
    course = new_course()
    answer(course, ["ok"] * 15)
    with pytest.raises(UnassignedChallenge):
        course.score("finalization", "report", 5, issue_reports=[report("nope")])


def test_the_operator_neutralizes_and_deneutralizes_any_challenge() -> None:
    course = new_course()
    answer(course, ["ok"] * 12 + ["ko"] * 3)
    course.score("completion", "all challenges answered", 5)
    assert course.latest_result["reproducibility_rate"] == 80
    first = ids(course)[0]  # a correct answer: only the operator may neutralize it
    result = course.neutralize(first, {"sealed": "screen froze"}, 5)
    assert result.reproducibility_rate == 79  # 11 of 14, rounded half up
    assert course.scores[-1]["basis"] == "neutralization"
    assert course.neutralizations[first]["source"] == "operator"
    assert course.neutralizations[first]["reason"] == {"sealed": "screen froze"}
    with pytest.raises(Conflict):
        course.neutralize(first, {"sealed": "again"}, 5)
    back = course.deneutralize(first, {"sealed": "it did not"}, 5)
    assert back.reproducibility_rate == 80 and course.scores[-1]["basis"] == "deneutralization"
    assert course.neutralizations == {}
    with pytest.raises(Conflict):
        course.deneutralize(first, {"sealed": "twice"}, 5)
    with pytest.raises(UnassignedChallenge):
        course.neutralize("nope", {"sealed": "x"}, 5)
    types = [type(e).__name__ for e in course.collect_events()][-4:]
    assert types == ["Neutralized", "Scored", "Deneutralized", "Scored"]


def test_deneutralizing_an_issue_report_counts_the_answer_again() -> None:
    course = new_course()
    answer(course, ["ko"] + ["ok"] * 14)
    first = ids(course)[0]
    course.score("finalization", "report", 5, issue_reports=[report(first)])
    assert course.latest_result["reproducibility_rate"] == 100
    course.deneutralize(first, {"sealed": "the report was wrong"}, 5)
    assert course.latest_result["reproducibility_rate"] == 93
    assert course.scores[-1]["neutralized"] == []


def test_rescoring_the_same_facts_under_the_same_rules_records_nothing() -> None:
    course = new_course()
    answer(course, ["ok"] * 12 + ["ko"] * 3)
    course.score("completion", "all challenges answered", 5)
    before = len(course.scores)
    assert course.rescore("rules", "rules 2", 5) is None
    assert len(course.scores) == before
    course.scores[-1]["result"] = {**course.latest_result, "rules": "1"}  # as if scored earlier
    result = course.rescore("rules", "rules 2", 5)
    assert result is not None and course.scores[-1]["basis"] == "rules"
    assert course.rescore("rules", "rules 2", 5) is None


def test_the_store_replays_every_scoring_fact() -> None:
    course = new_course()
    answer(course, ["ko"] + ["ok"] * 9)
    course.end("aborted")
    course.score(
        "finalization", "report", 5, issue_reports=[report(ids(course)[0])],
        abort_reason="technical",
    )  # fmt: skip
    course.neutralize(ids(course)[1], {"sealed": "x"}, 5)
    again = replayed(course)
    assert again.scores == course.scores
    assert again.neutralizations == course.neutralizations
    assert again.abort_reason == "technical" and again.kept == []


def test_older_scorings_replay_without_the_new_fields() -> None:
    course = new_course()
    answer(course, ["ko"] + ["ok"] * 14)
    course.score("finalization", "report", 5, issue_reports=[report(ids(course)[0])])
    old = replayed(course, drop=("neutralizations", "kept", "abort_reason"))
    assert old.abort_reason is None and old.kept == []
    assert old.neutralizations == {
        ids(course)[0]: {"challenge": ids(course)[0], "source": "issue-report", "report": None,
                         "category": None, "reason": None}
    }  # fmt: skip
    assert old.rescore("rules", "same facts", 5) is None


RESULTS = st.sampled_from(("ok", "ko", "aband", "timedout", "partially", None))  # None: unanswered


@settings(max_examples=200, deadline=None)
@given(
    st.lists(RESULTS, min_size=15, max_size=15),
    st.sampled_from((None, "candidate", "technical")),
    st.sets(st.integers(0, 14), max_size=4),
    st.integers(1, 8),
)
def test_rescoring_the_same_facts_is_idempotent_and_never_a_validated_zero(
    results: list[str | None], abort: str | None, reported: set[int], max_level: int
) -> None:
    course = new_course()
    with clock.frozen_at(START + timedelta(minutes=30)):
        for challenge, result in zip(ids(course), results, strict=True):
            if result is not None:
                course.answer(challenge, result, 1000)
    reports = [report(ids(course)[i], f"r{i}") for i in sorted(reported)]
    first = course.score("finalization", "report", max_level, issue_reports=reports,
                         abort_reason=abort)  # fmt: skip
    assert not (first.status == "validated" and first.pix_score == 0)
    for i in reported:  # only a challenge not answered correctly is neutralized
        assert (ids(course)[i] in course.neutralizations) is (results[i] != "ok")
    count = len(course.scores)
    assert course.rescore("rules", "same facts", max_level) is None
    assert len(course.scores) == count and replayed(course).scores == course.scores


def test_a_rules_rescoring_with_a_re_derived_profile_downgrades_before_capping() -> None:
    """A legacy course recorded its profile capped at 5: re-derived uncapped, 6 - 1 stays 5."""
    course = new_course()
    course.profile = [{**p, "level": 5, "pix": 40} for p in course.profile]  # as legacy recorded
    answer(course, ["ko", "ok", "ok"] * 4 + ["ok"] * 3)  # 11/15 = 73%: (3, 2, 0) downgraded
    capped = course.score("completion", "done", 5)
    assert [c.level for c in capped.competences] == [4, 4, 4, 4, 5] and capped.pix_score == 168
    uncapped = [{**p, "level": 6, "pix": 48} for p in course.profile]
    result = course.rescore("rules", "national rules", 5, uncapped)
    assert result is not None and course.scores[-1]["basis"] == "rules"
    assert {c.level for c in result.competences} == {5} and result.pix_score == 5 * 40
    assert replayed(course).profile == uncapped  # the event records what it was computed from
    assert course.rescore("rules", "again", 5, uncapped) is None  # idempotent


def test_the_profile_re_derived_from_the_log_is_the_one_a_course_records(
    app, client, admin
) -> None:
    """`profile_at_start` (used to rescore courses started under older rules) reads the log only."""
    from ledger.services.certification import profile_at_start
    from tests.certification_flow import Flow

    flow = Flow(app, client, admin)
    candidate = flow.eligible_candidate({"1.1": 6, "1.2": 2, "2.1": 3, "3.1": 1, "4.1": 2})
    session = flow.session()["id"]
    flow.enrol(session, candidate)
    started = flow.start(session, candidate)
    st = app.extensions["ledger"]
    course = st.certification.course(started["id"])
    assert profile_at_start(st.ledger, course) == course.profile
    assert next(p for p in course.profile if p["code"] == "1.1")["level"] == 6  # uncapped
