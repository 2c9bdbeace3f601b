"""Accommodations at enrolment and the course they shape, on SQLite and PostgreSQL.

Extra time and accessibility are signed with the enrolment, shown to the centre,
and applied when the course starts (deadline, adapted challenges); a course's
challenges can be re-derived by anyone from the log's events alone.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from ledger.domain import clock
from ledger.domain.course import Course, deadline_from, select_challenges
from ledger.domain.profile import Knowledge, profile_of
from ledger.domain.referential import Referential, load_referential
from ledger.domain.scoring import LEGACY_RULES, RULES_VERSION
from ledger.domain.session import InvalidAccommodation, Session
from ledger.projections.runner import dump, rebuild
from tests.certification_flow import MORNING, Flow
from tests.conftest import make_token
from tests.helpers import answer
from tests.test_api_positioning import assert_problem

LEVELS = {"1.1": 3, "1.2": 2, "2.1": 3, "3.1": 1, "4.1": 2, "5.1": 1}


@pytest.fixture
def flow(app: Any, client: Any, admin: dict[str, str]) -> Flow:
    return Flow(app, client, admin)


def enrolled_course(flow: Flow, **needs: Any) -> tuple[str, str, dict[str, Any]]:
    candidate = flow.eligible_candidate(LEVELS)
    session = flow.session()["id"]
    flow.post(
        f"/api/v1/sessions/{session}/candidates", {"candidate": candidate, **needs}, flow.staff
    )
    return candidate, session, flow.start(session, candidate)


def answer_at(flow: Flow, course: dict[str, Any], index: int, moment: Any) -> Any:
    with clock.frozen_at(moment):
        return flow.client.post(
            f"/api/v1/courses/{course['id']}/answers",
            json={"challenge": course["challenges"][index]["challenge"], "result": "ok",
                  "time_spent_ms": 1000},
            headers=flow.platform,
        )  # fmt: skip


# (extra time in percent, test time in seconds)
DEADLINES = [(0, 6300), (33, 8379), (50, 9450), (100, 12600), (1, 6363)]


@pytest.mark.parametrize(("percent", "seconds"), DEADLINES)
def test_deadline_is_105_minutes_extended_in_whole_seconds(percent: int, seconds: int) -> None:
    assert deadline_from(MORNING, percent) - MORNING == timedelta(seconds=seconds)


@pytest.mark.parametrize(("percent", "accepted_at_120"), [(33, True), (0, False)])
def test_extra_time_extends_the_deadline_through_the_api(
    flow: Flow, percent: int, accepted_at_120: bool
) -> None:
    _, _, course = enrolled_course(flow, extra_time_percent=percent)
    started = clock.parse_time(course["started_at"])
    deadline = started + timedelta(seconds=6300 * (100 + percent) // 100)
    assert course["deadline"] == clock.format_time(deadline)
    assert course["extra_time_percent"] == percent and course["accessibility"] is False
    at_120 = answer_at(flow, course, 0, started + timedelta(minutes=120))
    if accepted_at_120:
        assert at_120.status_code == 201, at_120.get_data(as_text=True)
    else:
        assert_problem(at_120, 409, "late-answer")
    assert answer_at(flow, course, 1, deadline).status_code == 201  # at the boundary: on time
    late = answer_at(flow, course, 2, deadline + timedelta(microseconds=1))
    assert_problem(late, 409, "late-answer")
    shown = flow.client.get(f"/api/v1/courses/{course['id']}", headers=flow.staff).get_json()
    assert shown["deadline"] == course["deadline"] and shown["extra_time_percent"] == percent


def test_accommodations_are_signed_and_shown_to_the_centre(flow: Flow, app: Any) -> None:
    session = flow.session()["id"]
    plain, third, adapted = (flow.eligible_candidate(LEVELS) for _ in range(3))
    flow.enrol(session, plain)
    needs = {third: {"extra_time_percent": 33}, adapted: {"accessibility": True}}
    for candidate, body in needs.items():
        flow.post(
            f"/api/v1/sessions/{session}/candidates", {"candidate": candidate, **body}, flow.staff
        )
    shown = flow.client.get(f"/api/v1/sessions/{session}", headers=flow.staff).get_json()
    expected = {
        plain: (0, False),
        third: (33, False),
        adapted: (0, True),
    }
    assert {
        c["candidate"]: (c["extra_time_percent"], c["accessibility"]) for c in shown["candidates"]
    } == expected
    assert shown["enrolled"] == sorted(expected)
    auditor = make_token(app, "audit:read")
    events = log(flow, auditor)
    enrolments = {
        e["data"]["candidate"]: e["data"]
        for e in events
        if e["type"] == "certification.CandidateEnrolled"
    }
    for candidate, (percent, accessibility) in expected.items():
        assert enrolments[candidate]["extra_time_percent"] == percent
        assert enrolments[candidate]["accessibility"] is accessibility

    course = flow.start(session, adapted)
    assert course["accessibility"] is True and course["extra_time_percent"] == 0
    listed = flow.client.get(f"/api/v1/centres/{flow.centre}/sessions", headers=flow.staff)
    (row,) = listed.get_json()["sessions"]
    assert (row["enrolled"], row["with_extra_time"], row["with_accessibility"]) == (3, 1, 1)
    st = app.extensions["ledger"]
    st.fresh()
    live = dump(st.ledger.db, st.projections)
    rebuild(st.ledger.db, st.projections)
    assert dump(st.ledger.db, st.projections) == live


BAD = [
    ({"extra_time_percent": 101}, "extra_time_percent"),
    ({"extra_time_percent": -1}, "extra_time_percent"),
    ({"extra_time_percent": "33"}, "extra_time_percent"),
    ({"extra_time_percent": 33.5}, "extra_time_percent"),
    ({"extra_time_percent": True}, "extra_time_percent"),
    ({"extra_time_percent": None}, "extra_time_percent"),
    ({"accessibility": "yes"}, "accessibility"),
    ({"accessibility": 1}, "accessibility"),
    ({"accessibility": None}, "accessibility"),
]


def test_bad_accommodations_are_refused_naming_the_field(flow: Flow, app: Any) -> None:
    candidate = flow.eligible_candidate(LEVELS)
    session = flow.session()["id"]
    for body, field in BAD:
        response = flow.client.post(
            f"/api/v1/sessions/{session}/candidates",
            json={"candidate": candidate, **body},
            headers=flow.staff,
        )
        refused = assert_problem(response, 422, "validation-failed")
        assert list(refused["errors"]) == [field], body
    shown = flow.client.get(f"/api/v1/sessions/{session}", headers=flow.staff).get_json()
    assert shown["candidates"] == []
    flow.enrol(session, candidate)  # nothing was enrolled by the refused requests
    again = flow.client.post(
        f"/api/v1/sessions/{session}/candidates",
        json={"candidate": candidate, "extra_time_percent": 33},
        headers=flow.staff,
    )
    assert_problem(again, 409, "conflict")  # enrolled once, whatever the accommodations


def test_the_course_records_the_uncapped_profile_and_the_rules(flow: Flow) -> None:
    levels = {"1.1": 6, "1.2": 2, "2.1": 3, "3.1": 1, "4.1": 2}
    candidate = flow.eligible_candidate(levels)
    session = flow.session()["id"]
    flow.enrol(session, candidate)
    flow.start(session, candidate)
    started = next(e for e in log(flow, make_token(flow.app, "audit:read"))
                   if e["type"] == "certification.CourseStarted")["data"]  # fmt: skip
    assert (
        started["rules"] == RULES_VERSION and started["referential"] == load_referential().version
    )
    assert (started["extra_time_percent"], started["accessibility"]) == (0, False)
    profile = {p["code"]: p for p in started["profile"]}
    assert profile["1.1"]["level"] >= 6 and profile["1.1"]["pix"] >= 48  # not capped at 5


def test_a_course_is_re_derived_from_the_log_alone(flow: Flow) -> None:
    """Anyone with the log: the referential, the answers before the start, the course id."""
    candidate = flow.eligible_candidate(LEVELS)
    extra = [  # answers that make the selection interesting: wrong, inferred, repeated
        {**a, "result": r}
        for a, r in zip(climb_more(candidate), ("ko", "ok", "aband", "ok"), strict=False)
    ]
    flow.post("/api/v1/answers", {"answers": extra}, flow.platform)
    session = flow.session()["id"]
    flow.post(f"/api/v1/sessions/{session}/candidates",
              {"candidate": candidate, "accessibility": True}, flow.staff)  # fmt: skip
    course = flow.start(session, candidate)
    events = log(flow, make_token(flow.app, "audit:read"))
    started = next(e for e in events if e["type"] == "certification.CourseStarted")
    data = started["data"]
    release = next(
        e["data"]["content"]
        for e in events
        if e["type"] == "referential.ReferentialPublished"
        and e["data"]["version"] == data["referential"]
    )
    ref = Referential.from_dict(release)
    knowledge, seen = Knowledge(), set()
    answers = [
        e["data"]
        for e in events
        if e["type"] == "positioning.AnswerRecorded"
        and e["stream"] == candidate
        and e["seq"] < started["seq"]
    ]
    for position, item in enumerate(answers, start=1):
        knowledge.apply(ref, item["skill"], item["result"], position)
        seen.add(item["challenge"])
    profile = profile_of(ref, knowledge, max_level=8)
    assert profile.to_list() == data["profile"]
    again = select_challenges(
        ref, profile, knowledge, seen, data["selection_seed"], accessibility=data["accessibility"]
    )
    assert again == data["challenges"] == course["challenges"]
    assert data["selection_seed"] == started["stream"] == course["id"]


def climb_more(candidate: str) -> list[dict[str, Any]]:
    return [answer(candidate, "1.3", d) for d in (2, 1, 1)] + [answer(candidate, "1.1", 4)]


def log(flow: Flow, auditor: dict[str, str]) -> list[dict[str, Any]]:
    body = flow.client.get("/api/v1/events?after=0&limit=10000", headers=auditor)
    return [json.loads(line) for line in body.get_data(as_text=True).splitlines() if line]


# --- events written before the accommodations existed ----------------------------------------


def test_older_enrolment_and_course_events_read_as_no_accommodation() -> None:
    session = Session(centre="c", audience="adult", date="2026-11-24", time="09:00",
                      address="a", room="r", examiner={"sealed": "x", "subject": "s"})  # fmt: skip
    session.enrol("k1", "adult", eligible=True, competences_at_level_1=5)
    with clock.frozen_at(MORNING):
        course = Course(
            selection_seed="7f1c1a3e-2b1f-4a9c-8d5e-1c2b3a4d5e6f", session="s", candidate="k1",
            centre="c", referential="crcn-2026.1", challenges=[], profile=[],
            started_at=clock.format_time(MORNING),
            deadline=clock.format_time(deadline_from(MORNING)),
        )  # fmt: skip
    for aggregate in (session, course):
        events = aggregate.collect_events()
        for event in events:  # as written before the fields existed
            for name in ("extra_time_percent", "accessibility", "rules"):
                event.__dict__.pop(name, None)
        replayed = None
        for event in events:
            replayed = event.mutate(replayed)
        if isinstance(replayed, Session):
            assert replayed.accommodation_of("k1") == {
                "extra_time_percent": 0,
                "accessibility": False,
            }
        else:
            assert (replayed.extra_time_percent, replayed.accessibility) == (0, False)
            assert replayed.rules == LEGACY_RULES


def test_the_domain_refuses_a_bad_accommodation() -> None:
    session = Session(centre="c", audience="adult", date="2026-11-24", time="09:00",
                      address="a", room="r", examiner={"sealed": "x", "subject": "s"})  # fmt: skip
    for percent, accessibility in ((101, False), (-1, False), (True, False), (10, 1), (5.0, False)):
        with pytest.raises(InvalidAccommodation):
            session.enrol("k", "adult", True, 5, percent, accessibility)  # type: ignore[arg-type]
    session.enrol("k", "adult", True, 5, 33, True)
    assert session.accommodation_of("k") == {"extra_time_percent": 33, "accessibility": True}
