"""Scoring rules through HTTP, on SQLite and PostgreSQL: aborts, issue reports, review.

Expectations are computed from the course's own size (the selection decides how many
challenges a profile gets), with the rules' arithmetic: integer percent, half up.
"""

from __future__ import annotations

from typing import Any

import pytest

from ledger.domain import clock
from ledger.domain.scoring import RULES_VERSION, minimum_remaining, reproducibility_rate
from ledger.projections.runner import catch_up, create_tables, dump, rebuild
from ledger.services.candidates import load_candidate
from tests.certification_flow import MORNING, Flow
from tests.test_api_positioning import assert_problem


@pytest.fixture
def flow(app, client, admin) -> Flow:
    return Flow(app, client, admin)


def answer(flow: Flow, course: dict[str, Any], results: list[str]) -> None:
    """Answer the course's first len(results) challenges, in order."""
    with clock.frozen_at(MORNING.replace(minute=45)):
        for item, result in zip(course["challenges"], results, strict=False):
            flow.post(
                f"/api/v1/courses/{course['id']}/answers",
                {"challenge": item["challenge"], "result": result, "time_spent_ms": 30_000},
                flow.platform,
            )


def course_view(
    flow: Flow, course: dict[str, Any], headers: dict[str, str] | None = None
) -> dict[str, Any]:
    response = flow.client.get(f"/api/v1/courses/{course['id']}", headers=headers or flow.staff)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def aborted(flow: Flow, results_of: Any, reason: str) -> tuple[dict[str, Any], int, int]:
    """A course answered in part, finalized with that abort reason: (view, asked, answered)."""
    candidate, session, course = flow.started()
    asked = len(course["challenges"])
    results = results_of(asked)
    answer(flow, course, results)
    flow.finalize(session, {"aborts": [{"candidate": candidate, "reason": reason}]})
    return course_view(flow, course), asked, len(results)


def low_rate(asked: int) -> list[str]:
    """Enough answers to stay trustable once the rest is neutralized, fewer than half correct."""
    answered = minimum_remaining(asked)
    correct = (answered - 1) // 2
    return ["ok"] * correct + ["ko"] * (answered - correct)


def nearly_all(asked: int) -> list[str]:
    return ["ok"] * (asked - 1)


def test_candidate_abort_counts_unanswered_challenges_wrong(flow: Flow) -> None:
    view, asked, answered = aborted(flow, low_rate, "candidate")
    correct = (answered - 1) // 2
    scoring = view["scoring"]
    assert view["state"] == "ended" and view["result"]["status"] == "rejected"
    assert scoring["abort_reason"] == "candidate" and scoring["neutralizations"] == []
    assert scoring["reproducibility_rate"] == reproducibility_rate(correct, asked)
    assert sum(c["asked"] for c in scoring["competences"]) == asked
    assert sum(c["neutralized"] for c in scoring["competences"]) == 0


def test_technical_abort_below_half_is_cancelled_not_rejected(flow: Flow) -> None:
    view, _, answered = aborted(flow, low_rate, "technical")
    scoring = view["scoring"]
    assert view["result"]["status"] == "cancelled" and scoring["abort_reason"] == "technical"
    assert scoring["reproducibility_rate"] == reproducibility_rate((answered - 1) // 2, answered)
    assert "technical abort" in scoring["reasons"][0]
    unanswered = {c["challenge"] for c in view["challenges"][answered:]}
    assert {n["challenge"] for n in scoring["neutralizations"]} == unanswered
    assert {n["source"] for n in scoring["neutralizations"]} == {"technical-abort"}


def test_technical_abort_with_enough_answers_is_validated(flow: Flow) -> None:
    view, _, _ = aborted(flow, nearly_all, "technical")
    scoring = view["scoring"]
    assert view["result"]["status"] == "validated" and scoring["reproducibility_rate"] == 100
    assert [n["source"] for n in scoring["neutralizations"]] == ["technical-abort"]
    assert scoring["rules"] == RULES_VERSION and scoring["band"] == "80-100"


def reported(
    flow: Flow, first: str, neutralize: bool = True
) -> tuple[str, str, dict[str, Any], dict[str, Any]]:
    """The first challenge answered `first`, the rest correctly, and an issue report on it."""
    candidate, session, course = flow.started()
    answer(flow, course, [first] + ["ok"] * (len(course["challenges"]) - 1))
    report = {"candidate": candidate, "category": "in-challenge", "neutralize": neutralize,
              "challenge": course["challenges"][0]["challenge"], "description": "écran figé"}  # fmt: skip
    flow.finalize(session, {"issue_reports": [report]})
    return candidate, session, course, course_view(flow, course)


def test_an_issue_report_on_a_correct_answer_keeps_it(flow: Flow) -> None:
    _, _, course, view = reported(flow, "ok")
    first = course["challenges"][0]["challenge"]
    scoring = view["scoring"]
    assert scoring["neutralizations"] == [] and scoring["reproducibility_rate"] == 100
    (kept,) = scoring["kept"]
    assert kept["challenge"] == first and kept["category"] == "in-challenge" and kept["report"]


def test_an_issue_report_on_a_wrong_answer_neutralizes_and_rescores(flow: Flow) -> None:
    candidate, session, course, view = reported(flow, "ko")
    first = course["challenges"][0]["challenge"]
    scoring = view["scoring"]
    assert scoring["basis"] == "finalization" and scoring["reproducibility_rate"] == 100
    (entry,) = scoring["neutralizations"]
    assert entry["challenge"] == first and entry["source"] == "issue-report"
    assert entry["category"] == "in-challenge" and entry["report"] and entry["reason"] is None
    assert scoring["kept"] == []
    assert sum(c["neutralized"] for c in scoring["competences"]) == 1
    session_view = flow.client.get(f"/api/v1/sessions/{session}", headers=flow.staff).get_json()
    (summary,) = session_view["results"]
    assert summary == {"course": course["id"], "candidate": candidate, "state": "completed",
                       "result_status": "validated", "reproducibility_rate": 100,
                       "band": "80-100", "neutralized": 1, "scoring": scoring}  # fmt: skip
    history = flow.client.get(
        f"/api/v1/candidates/{candidate}/certifications", headers=flow.platform
    ).get_json()
    (listed,) = history["courses"]
    assert listed["scoring"] == scoring and listed["neutralized"] == 1
    assert listed["referential"] == view["referential"] and listed["rules"] == RULES_VERSION


def test_a_report_cannot_neutralize_a_challenge_outside_the_test(flow: Flow) -> None:
    candidate, session, _ = flow.started()
    report = {"candidate": candidate, "category": "technical-problem", "neutralize": True,
              "challenge": "not-in-this-test"}  # fmt: skip
    body = {"issue_reports": [report], "aborts": [{"candidate": candidate, "reason": "technical"}]}
    problem = flow.finalize(session, body, status=422)
    assert problem["type"] == "/problems/invalid-examiner-report"


def neutralization(flow: Flow, course: str, challenge: str, undo: bool = False, **kw: Any) -> Any:
    path = "deneutralizations" if undo else "neutralizations"
    body = {"challenge": challenge, "reason": "le chronomètre s'est arrêté"}
    return flow.post(f"/api/v1/courses/{course}/{path}", body, flow.admin, **kw)


def test_the_operator_neutralizes_and_deneutralizes_during_review(flow: Flow) -> None:
    _, session, course = flow.started()
    asked = len(course["challenges"])
    answer(flow, course, ["ok"] * asked)
    flow.finalize(session)
    first = course["challenges"][0]["challenge"]
    early = neutralization(flow, course["id"], first, status=409)  # not in review yet
    assert early["type"] == "/problems/conflict"
    flow.post(f"/api/v1/sessions/{session}/review", {}, flow.admin)

    done = neutralization(flow, course["id"], first)  # a correct answer: the operator may
    assert done["seq"] > 0 and done["result"]["status"] == "validated"
    entry = course_view(flow, course, flow.admin)["scoring"]["neutralizations"][0]
    assert entry == {"challenge": first, "source": "operator", "report": None, "category": None,
                     "reason": "le chronomètre s'est arrêté"}  # fmt: skip
    staff_sees = course_view(flow, course)["scoring"]["neutralizations"][0]
    assert staff_sees == {"challenge": first, "source": "operator", "report": None,
                          "category": None}  # fmt: skip
    assert neutralization(flow, course["id"], first, status=409)["type"] == "/problems/conflict"

    back = neutralization(flow, course["id"], first, undo=True)
    assert back["seq"] > done["seq"] and back["result"]["reproducibility_rate"] == 100
    scoring = course_view(flow, course)["scoring"]
    assert scoring["basis"] == "deneutralization" and scoring["neutralizations"] == []
    assert (
        neutralization(flow, course["id"], first, undo=True, status=409)["type"]
        == "/problems/conflict"
    )

    unknown = neutralization(flow, course["id"], "nope", status=422)
    assert unknown["type"] == "/problems/unassigned-challenge"
    missing = "00000000-0000-4000-8000-000000000000"
    assert neutralization(flow, missing, first, status=404)["type"] == "/problems/not-found"
    staff = flow.client.post(
        f"/api/v1/courses/{course['id']}/neutralizations",
        json={"challenge": first, "reason": "x"},
        headers=flow.staff,
    )
    assert staff.status_code == 403
    empty = flow.client.post(
        f"/api/v1/courses/{course['id']}/neutralizations",
        json={"challenge": first, "reason": ""},
        headers=flow.admin,
    )
    assert "reason" in str(assert_problem(empty, 422, "validation-failed"))
    with clock.frozen_at(MORNING.replace(day=30)):
        flow.post(f"/api/v1/sessions/{session}/publication", {}, flow.admin)
    assert neutralization(flow, course["id"], first, status=409)["type"] == "/problems/conflict"


def test_an_operator_reason_is_null_once_the_candidate_is_erased(flow: Flow, app) -> None:
    candidate, session, course = flow.started()
    answer(flow, course, ["ko"] + ["ok"] * (len(course["challenges"]) - 1))
    flow.finalize(session)
    flow.post(f"/api/v1/sessions/{session}/review", {}, flow.admin)
    first = course["challenges"][0]["challenge"]
    neutralization(flow, course["id"], first)
    assert course_view(flow, course, flow.admin)["scoring"]["neutralizations"][0]["reason"]
    subject = load_candidate(app.extensions["ledger"].ledger, candidate).subject
    flow.post(f"/api/v1/subjects/{subject}/erasure", {"reason": "data-subject-request"}, flow.admin)
    entry = course_view(flow, course, flow.admin)["scoring"]["neutralizations"][0]
    assert entry["reason"] is None and entry["reason_erased"] is True
    history = flow.client.get(
        f"/api/v1/candidates/{candidate}/certifications", headers=flow.admin
    ).get_json()
    assert history["courses"][0]["scoring"]["neutralizations"][0]["reason"] is None


def test_the_courses_read_model_rebuilds_to_the_same_rows(flow: Flow, app) -> None:
    reported(flow, "ko")
    aborted(flow, low_rate, "technical")
    st = app.extensions["ledger"]
    st.fresh()
    before = dump(st.ledger.db, st.projections)
    rebuild(st.ledger.db, st.projections)
    assert dump(st.ledger.db, st.projections) == before


OLD_COURSES_TABLE = """CREATE TABLE proj_courses (course TEXT PRIMARY KEY, candidate TEXT NOT NULL,
    session TEXT NOT NULL, centre TEXT NOT NULL, started_at TEXT NOT NULL, deadline TEXT NOT NULL,
    challenges INTEGER NOT NULL, answered INTEGER NOT NULL, state TEXT NOT NULL, end_reason TEXT,
    result_status TEXT, pix_score INTEGER, reproducibility_permille INTEGER, scored_basis TEXT,
    updated_seq BIGINT NOT NULL)"""


def test_a_read_model_built_by_an_older_schema_is_replayed_from_the_log(flow: Flow, app) -> None:
    candidate, _, _, view = reported(flow, "ko")
    st = app.extensions["ledger"]
    st.fresh()
    expected = dump(st.ledger.db, st.projections)
    with st.ledger.db.write(lock=None) as cur:  # a ledger whose tables predate this schema
        cur.execute("DROP TABLE proj_courses")
        cur.execute(OLD_COURSES_TABLE)
        cur.execute("DELETE FROM projection_schemas WHERE name = 'courses'")
    create_tables(st.ledger.db, st.projections)  # what a restarted process does first
    assert dump(st.ledger.db, st.projections) == expected  # rebuilt at once: never an empty view
    assert catch_up(st.ledger.db, st.projections) == set()
    history = flow.client.get(
        f"/api/v1/candidates/{candidate}/certifications", headers=flow.platform
    ).get_json()
    assert history["courses"][0]["scoring"] == view["scoring"]
    assert dump(st.ledger.db, st.projections) == expected
