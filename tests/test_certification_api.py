"""Certification through HTTP: every rule and transition, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ledger.domain import clock
from ledger.domain.referential import load_referential
from ledger.projections.runner import dump, rebuild
from tests.certification_flow import MORNING, Flow
from tests.conftest import make_token
from tests.test_api_positioning import assert_problem


@pytest.fixture
def flow(app, client, admin) -> Flow:
    return Flow(app, client, admin)


def test_full_lifecycle_to_a_published_certificate_then_rebuild(flow: Flow, app, client) -> None:
    candidate, code, _ = flow.certified()
    assert code.startswith("P-") and len(code) == 10
    with clock.frozen_at(datetime(2026, 12, 2, tzinfo=UTC)):
        public = client.get(f"/api/v1/certificates/{code}").get_json()
    assert public["status"] == "valid"
    assert public["issued_on"] == "2026-12-01" and public["valid_until"] == "2029-12-01"
    assert public["passed_on"] == "2026-11-24" and public["centre"] == "Lycée Victor Hugo"
    assert public["holder"] == {
        "first_name": "Camille",
        "last_name": "Lefèvre",
        "birth_date": "2007-03-14",
    }
    levels = {c["code"]: c["level"] for d in public["domains"] for c in d["competences"]}
    assert levels == {
        **dict.fromkeys(levels, 0),
        "1.1": 2,
        "1.2": 2,
        "2.1": 3,
        "3.1": 1,
        "4.1": 2,
        "5.1": 1,
    }
    assert len(public["domains"]) == 5 and len(levels) == 16
    assert public["pix_score"] == 8 * 11 and public["max_level"] == 5
    assert public["proof"]["signature_valid"] and public["proof"]["chain_link_valid"]
    assert len(public["proof"]["hash"]) == 64
    assert "subject" not in public and "birth_place" not in public["holder"]

    st = app.extensions["ledger"]
    st.fresh()
    live = dump(st.ledger.db, st.projections)
    rebuild(st.ledger.db, st.projections)
    assert dump(st.ledger.db, st.projections) == live
    with clock.frozen_at(datetime(2026, 12, 2, tzinfo=UTC)):
        assert client.get(f"/api/v1/certificates/{code}").get_json() == public
    admin = make_token(app, "admin")
    with clock.frozen_at(datetime(2030, 1, 2, tzinfo=UTC)):
        history = client.get(
            f"/api/v1/candidates/{candidate}/certifications", headers=admin
        ).get_json()
    (cert,) = history["certificates"]
    assert (cert["code"], cert["status"], cert["status_since"]) == (code, "expired", "2029-12-01")
    assert "holder" not in cert and history["courses"][0]["result_status"] == "validated"


def test_validity_boundary(flow: Flow, client) -> None:
    _, code, _ = flow.certified()
    with clock.frozen_at(datetime(2029, 12, 1, 22, 59, tzinfo=UTC)):  # 23:59 in Paris
        assert client.get(f"/api/v1/certificates/{code}").get_json()["status"] == "valid"
    with clock.frozen_at(datetime(2029, 12, 1, 23, 0, tzinfo=UTC)):  # next day in Paris
        body = client.get(f"/api/v1/certificates/{code}").get_json()
    assert body["status"] == "expired" and body["status_since"] == "2029-12-01"


def test_code_lookup_is_tolerant_and_unknown_codes_are_404(flow: Flow, client) -> None:
    _, code, _ = flow.certified()
    sloppy = code[2:].lower()[:4] + " " + code[2:].lower()[4:]
    assert client.get(f"/api/v1/certificates/{sloppy}").get_json()["code"] == code
    for probe in ("P-BBBBBBBB", "nonsense", "P-AAAAAAAA"):
        assert_problem(client.get(f"/api/v1/certificates/{probe}"), 404, "unknown-certificate")


def test_cancellation_shows_latest_with_reason_and_history(flow: Flow, client, admin) -> None:
    _, code, _ = flow.certified()
    with clock.frozen_at(datetime(2027, 1, 10, 9, tzinfo=UTC)):
        flow.post(f"/api/v1/certificates/{code}/cancellation", {"reason": "fraude avérée"}, admin)
        body = client.get(f"/api/v1/certificates/{code}", headers=admin).get_json()
    assert body["status"] == "cancelled" and body["status_reason"] == "fraude avérée"
    assert body["status_since"] == "2027-01-10"
    assert [h["event"] for h in body["history"]] == ["issued", "cancelled"]
    again = client.post(
        f"/api/v1/certificates/{code}/cancellation", json={"reason": "x"}, headers=admin
    )
    assert_problem(again, 409, "conflict")


def test_rescoring_after_a_late_issue_report(flow: Flow, client, admin) -> None:
    _, session, course = flow.started()
    flow.answer_all(course, wrong=2)
    flow.finalize(session)
    (code,) = flow.publish(session)
    before = client.get(f"/api/v1/certificates/{code}").get_json()
    wrong = [c["challenge"] for c in course["challenges"][:2]]
    result = flow.post(
        f"/api/v1/certificates/{code}/rescoring",
        {"neutralize": wrong, "reason": "bug in challenge"},
        admin,
    )["result"]
    after = client.get(f"/api/v1/certificates/{code}").get_json()
    assert result["status"] == "validated" and result["reproducibility_rate"] == 100
    assert after["pix_score"] >= before["pix_score"]
    assert [h["event"] for h in after["history"]] == ["issued", "rescored"]
    assert after["history"][-1]["previous_pix_score"] == before["pix_score"]
    assert (
        after["proof"]["seq"] == before["proof"]["seq"]
        and after["proof"]["latest_seq"] > before["proof"]["seq"]
    )


def test_ineligible_candidate_cannot_enrol(flow: Flow, client) -> None:
    candidate = flow.eligible_candidate({"1.1": 2, "1.2": 2, "2.1": 3, "3.1": 1})
    session = flow.session()["id"]
    body = flow.enrol(session, candidate, status=422)
    assert body["type"] == "/problems/ineligible-candidate" and body["competences_at_level_1"] == 4


def test_calendar_window_refuses_enrolment(flow: Flow) -> None:
    pupil = flow.eligible_candidate(audience="upper-secondary")
    november = flow.session()["id"]  # an adult session: the pupil's window still applies
    body = flow.enrol(november, pupil, status=422)
    assert body["type"] == "/problems/outside-certification-window"
    february = flow.session(day="2027-02-10", audience="upper-secondary")["id"]
    flow.enrol(february, pupil)


def test_a_pupil_session_outside_its_window_is_refused_when_scheduled(flow: Flow) -> None:
    """Nobody could ever be enrolled in it, so the centre hears it at once, naming the date."""
    for audience in ("upper-secondary", "lower-secondary"):
        body = flow.session(audience=audience, status=422)
        assert body["type"] == "/problems/outside-certification-window"
        assert body["field"] == "date" and body["detail"].startswith("date: ")
    assert flow.session(day="2027-03-10", audience="lower-secondary")["id"]


def test_a_centre_never_sees_another_centres_sessions(flow: Flow, app, client, admin) -> None:
    session = flow.session()["id"]
    other = flow.post(
        "/api/v1/centres", {"name": "IUT", "kind": "university", "city": "Lyon"}, admin
    )["id"]
    intruder = make_token(app, f"centre:{other}")
    assert_problem(client.get(f"/api/v1/sessions/{session}", headers=intruder), 404, "not-found")
    assert_problem(
        client.get(f"/api/v1/centres/{flow.centre}/sessions", headers=intruder), 404, "not-found"
    )
    candidate = flow.eligible_candidate()
    response = client.post(
        f"/api/v1/sessions/{session}/candidates", json={"candidate": candidate}, headers=intruder
    )
    assert_problem(response, 404, "not-found")
    listing = client.get(f"/api/v1/centres/{flow.centre}/sessions", headers=flow.staff).get_json()
    assert [s["session"] for s in listing["sessions"]] == [session]
    assert listing["sessions"][0]["state"] == "created"
    assert_problem(
        client.post(
            "/api/v1/centres", json={"name": "x", "kind": "school", "city": "y"}, headers=flow.staff
        ),
        403,
        "insufficient-scope",
    )


def test_session_state_machine(flow: Flow, client, admin) -> None:
    candidate = flow.eligible_candidate()
    late = flow.eligible_candidate()
    session = flow.session()["id"]
    flow.enrol(session, candidate)
    body = flow.finalize(session, status=409)
    assert "no test started" in body["detail"]
    assert_problem(
        client.post(f"/api/v1/sessions/{session}/review", headers=admin), 409, "wrong-session-state"
    )
    course = flow.start(session, candidate)
    flow.answer_all(course)
    flow.finalize(session)
    assert flow.enrol(session, late, status=409)["type"] == "/problems/wrong-session-state"
    assert_problem(
        client.post(f"/api/v1/sessions/{session}/publication", headers=admin),
        409,
        "wrong-session-state",
    )
    assert flow.finalize(session, status=409)["type"] == "/problems/wrong-session-state"
    flow.publish(session)
    state = client.get(f"/api/v1/sessions/{session}", headers=flow.staff).get_json()["state"]
    assert state == "processed"


def test_unfinished_tests_need_an_abort_reason(flow: Flow) -> None:
    a, b = flow.eligible_candidate(), flow.eligible_candidate()
    session = flow.session()["id"]
    for c in (a, b):
        flow.enrol(session, c)
    done = flow.start(session, a)
    flow.answer_all(done)
    flow.start(session, b)
    body = flow.finalize(session, status=422)
    assert body["type"] == "/problems/invalid-examiner-report" and body["candidates"] == [b]
    flow.finalize(session, {"aborts": [{"candidate": b, "reason": "technical"}]})
    codes = flow.publish(session)
    assert len(codes) == 1  # the aborted test scored nothing to certify


def test_answers_are_final_assigned_and_on_time(flow: Flow, client) -> None:
    *_, course = flow.started()
    first = course["challenges"][0]["challenge"]
    url = f"/api/v1/courses/{course['id']}/answers"
    with clock.frozen_at(MORNING.replace(minute=40)):
        flow.post(url, {"challenge": first, "result": "ok", "time_spent_ms": 1000}, flow.platform)
        again = client.post(
            url,
            json={"challenge": first, "result": "ko", "time_spent_ms": 1},
            headers=flow.platform,
        )
        assert_problem(again, 409, "conflict")
        stranger = client.post(
            url,
            json={"challenge": "recnotassigned", "result": "ok", "time_spent_ms": 1},
            headers=flow.platform,
        )
        assert_problem(stranger, 422, "unassigned-challenge")
    second = course["challenges"][1]["challenge"]
    deadline = datetime.fromisoformat(course["deadline"].replace("Z", "+00:00"))
    with clock.frozen_at(deadline):
        flow.post(url, {"challenge": second, "result": "ok", "time_spent_ms": 1000}, flow.platform)
    third = course["challenges"][2]["challenge"]
    with clock.frozen_at(deadline.replace(microsecond=1)):
        late = client.post(
            url,
            json={"challenge": third, "result": "ok", "time_spent_ms": 1},
            headers=flow.platform,
        )
    assert_problem(late, 409, "late-answer")


def test_the_individualized_test_follows_the_profile(flow: Flow) -> None:
    levels = {"1.1": 2, "1.2": 1, "2.1": 3, "3.1": 1, "4.1": 2, "5.1": 4}
    candidate, session, course = flow.started(levels)
    per_competence: dict[str, list[int]] = {}
    for item in course["challenges"]:
        per_competence.setdefault(item["competence"], []).append(item["difficulty"])
    assert set(per_competence) == set(levels)
    ref = load_referential()
    for code, difficulties in per_competence.items():
        tubes = {s.tube for s in ref.skills_of(code) if s.difficulty <= levels[code]}
        assert len(difficulties) == min(3, len(tubes))  # climb answers one skill per tube
        assert difficulties == sorted(difficulties, reverse=True)
        assert difficulties[0] == levels[code]
    assert len({i["skill"] for i in course["challenges"]}) == len(course["challenges"]) <= 48
    assert flow.start(session, candidate, status=409)["type"] == "/problems/conflict"


def test_low_reproducibility_is_rejected_and_gets_no_certificate(flow: Flow, client, admin) -> None:
    candidate, session, course = flow.started()
    flow.answer_all(course, wrong=len(course["challenges"]) - 2)
    flow.finalize(session)
    assert flow.publish(session) == []
    history = client.get(f"/api/v1/candidates/{candidate}/certifications", headers=admin).get_json()
    assert history["courses"][0]["result_status"] == "rejected" and history["certificates"] == []


def test_neutralizing_issue_report_at_finalization(flow: Flow, client, admin) -> None:
    candidate, session, course = flow.started()
    flow.answer_all(course, wrong=1)
    wrong = course["challenges"][0]["challenge"]
    report = {"issue_reports": [{"candidate": candidate, "category": "in-challenge", "challenge": wrong,
                                 "neutralize": True, "description": "image did not load"}]}  # fmt: skip
    flow.finalize(session, report)
    result = client.get(f"/api/v1/courses/{course['id']}", headers=flow.platform).get_json()[
        "result"
    ]
    assert result["reproducibility_rate"] == 100
    bad = {
        "issue_reports": [
            {"candidate": candidate, "category": "fraud", "challenge": wrong, "neutralize": True}
        ]
    }
    assert flow.finalize(session, bad, status=409)["type"] == "/problems/wrong-session-state"


def test_operator_fraud_decision_rejects(flow: Flow, client, admin) -> None:
    _, session, course = flow.started()
    flow.answer_all(course)
    flow.finalize(session)
    flow.post(f"/api/v1/sessions/{session}/review", {}, admin)
    flow.post(
        f"/api/v1/courses/{course['id']}/decision", {"decision": "fraud", "reason": "phone"}, admin
    )
    assert flow.post(f"/api/v1/sessions/{session}/publication", {}, admin)["certificates"] == []


def test_idempotent_publication(flow: Flow, client, admin) -> None:
    candidate = flow.eligible_candidate()
    session = flow.session()["id"]
    flow.enrol(session, candidate)
    flow.answer_all(flow.start(session, candidate))
    flow.finalize(session)
    flow.post(f"/api/v1/sessions/{session}/review", {}, admin)
    headers = {**admin, "Idempotency-Key": "pub-1"}
    first = client.post(f"/api/v1/sessions/{session}/publication", headers=headers)
    second = client.post(f"/api/v1/sessions/{session}/publication", headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.get_json() == second.get_json() and len(first.get_json()["certificates"]) == 1


def test_the_last_answer_says_the_course_is_complete_with_its_result(flow: Flow) -> None:
    _, _, course = flow.started()
    *first, last = course["challenges"]
    with clock.frozen_at(MORNING.replace(minute=45)):
        for item in first:
            sent = {"challenge": item["challenge"], "result": "ok", "time_spent_ms": 30_000}
            body = flow.post(f"/api/v1/courses/{course['id']}/answers", sent, flow.platform)
            assert body["course_completed"] is False and body["result"] is None
        sent = {"challenge": last["challenge"], "result": "ok", "time_spent_ms": 30_000}
        body = flow.post(f"/api/v1/courses/{course['id']}/answers", sent, flow.platform)
    assert body["course_completed"] is True and body["result"]["status"] == "validated"
    assert body["seq"] >= 1


def test_publication_says_which_candidate_got_which_code(flow: Flow) -> None:
    candidate, session, course = flow.started()
    flow.answer_all(course)
    flow.finalize(session)
    flow.post(f"/api/v1/sessions/{session}/review", {}, flow.admin)
    with clock.frozen_at(datetime(2026, 12, 1, 10, tzinfo=UTC)):
        body = flow.post(f"/api/v1/sessions/{session}/publication", {}, flow.admin)
    (issued,) = body["certificates"]
    assert issued["candidate"] == candidate and issued["course"] == course["id"]
    assert body["codes"] == [issued["code"]] and issued["code"].startswith("P-")


def test_a_centre_reads_back_its_examiner_report_in_clear(flow: Flow, client) -> None:
    candidate, session, course = flow.started()
    flow.answer_all(course)
    report = {
        "incidents": "Coupure réseau de 5 minutes à 10h05",
        "issue_reports": [
            {"candidate": candidate, "category": "other", "description": "Écran figé au début"}
        ],
    }
    flow.finalize(session, report)
    seen = client.get(f"/api/v1/sessions/{session}", headers=flow.staff).get_json()
    assert seen["report"]["incidents"] == report["incidents"]
    assert seen["report"]["issue_reports"][0]["description"] == "Écran figé au début"
    assert seen["examiner"] == "Mme Laurent"


def test_no_course_answer_is_recorded_after_the_candidates_erasure(flow: Flow, client) -> None:
    candidate, _, course = flow.started()
    st = flow.app.extensions["ledger"]
    subject = st.candidates.answering(candidate).subject
    first, second = course["challenges"][:2]
    with clock.frozen_at(MORNING.replace(minute=45)):  # the process now knows the subject
        sent = {"challenge": first["challenge"], "result": "ok", "time_spent_ms": 30_000}
        flow.post(f"/api/v1/courses/{course['id']}/answers", sent, flow.platform, 201)
    flow.post(f"/api/v1/subjects/{subject}/erasure", {"reason": "consent-withdrawn"}, flow.admin)
    with clock.frozen_at(MORNING.replace(minute=46)):
        sent = {"challenge": second["challenge"], "result": "ok", "time_spent_ms": 30_000}
        body = flow.post(f"/api/v1/courses/{course['id']}/answers", sent, flow.platform, 409)
    assert body["candidate"] == candidate and "erased" in body["detail"]


def test_an_erased_candidate_can_be_neither_enrolled_nor_started(flow: Flow, client) -> None:
    """No signed enrolment or CourseStarted is written for a person whose data was erased."""
    st = flow.app.extensions["ledger"]
    enrolled, unenrolled = flow.eligible_candidate(), flow.eligible_candidate()
    session = flow.session()["id"]
    flow.enrol(session, enrolled)
    for candidate in (enrolled, unenrolled):
        subject = st.candidates.answering(candidate).subject
        flow.post(
            f"/api/v1/subjects/{subject}/erasure", {"reason": "consent-withdrawn"}, flow.admin
        )
    before = st.ledger.recorder.max_notification_id()
    refused = [flow.enrol(session, unenrolled, 409), flow.start(session, enrolled, 409)]
    for body, candidate in zip(refused, (unenrolled, enrolled), strict=True):
        assert body["type"] == "/problems/conflict" and body["candidate"] == candidate
        assert "erased" in body["detail"]
    assert st.ledger.recorder.max_notification_id() == before
    seen = client.get(f"/api/v1/sessions/{session}", headers=flow.staff).get_json()
    assert seen["enrolled"] == [enrolled] and seen["courses"] == {}
