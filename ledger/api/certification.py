"""Centres, sessions, certification courses, finalization, review and publication."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from ledger.api import schemas
from ledger.api.auth import SECURED, current_principal, idempotent, require, scoped_token
from ledger.api.openapi import READS_AFTER_SEQ, json_doc
from ledger.api.state import appended, state
from ledger.domain import clock
from ledger.domain.base import NotFound
from ledger.projections.certificates import by_candidate, public_status
from ledger.projections.courses import history_of, scoring_view, summaries_of_session
from ledger.projections.sessions import centre_of, sessions_of
from ledger.services.certification import CENTRE_TZ
from ledger.services.verification import (
    OPERATOR,
    PUBLIC,
    for_audience,
    neutralizations_for,
    opened_history,
    opened_reason,
)

blp = Blueprint(
    "certification", __name__, url_prefix="/api/v1", description="Centres, sessions and courses"
)


def centres_allowed() -> set[str] | None:
    """None for operators (admin); otherwise the centres this token may act for."""
    principal = current_principal()
    return None if principal.is_admin else principal.centres()


# --- centres ---------------------------------------------------------------------


@blp.route("/centres", methods=["POST"])
@require("admin")
@idempotent
@blp.arguments(schemas.CentreIn)
@blp.response(201, schemas.CentreOut)
@blp.doc(security=SECURED)
def create_centre(body: dict[str, Any]) -> dict[str, Any]:
    """Create a certification centre (operators only)."""
    centre, seq = state().certification.create_centre(body["name"], body["kind"], body["city"])
    return {"id": str(centre.id), **body, **appended(seq)}


@blp.route("/centres/<uuid:centre_id>/tokens", methods=["POST"])
@require("admin")
@idempotent
@blp.arguments(schemas.StaffTokenIn, required=False)
@blp.response(201, schemas.StaffTokenOut)
@blp.doc(security=SECURED)
def create_staff_token(body: dict[str, Any], centre_id: Any) -> dict[str, Any]:
    """A staff token scoped to this one centre; shown once."""
    st = state()
    st.certification.centre(str(centre_id), None)
    return scoped_token(f"centre:{centre_id}", body["label"])


@blp.route("/centres/<uuid:centre_id>/sessions", methods=["POST"])
@require("centre:*")
@idempotent
@blp.arguments(schemas.SessionIn)
@blp.response(201, schemas.SessionCreatedOut)
@blp.doc(security=SECURED)
def create_session(body: dict[str, Any], centre_id: Any) -> dict[str, Any]:
    """Schedule a session: date, time, address, room, examiner (sealed), audience."""
    details = {**body, "date": body["date"].isoformat()}
    session, seq = state().certification.create_session(
        str(centre_id), centres_allowed(), **details
    )
    return {"id": str(session.id), "state": session.state, **appended(seq)}


@blp.route("/centres/<uuid:centre_id>/sessions", methods=["GET"])
@require("centre:*")
@blp.response(200, schemas.SessionListOut)
@blp.doc(security=SECURED)
@blp.doc(**READS_AFTER_SEQ)
def list_sessions(centre_id: Any) -> dict[str, Any]:
    """The centre's sessions with their state, oldest first."""
    st = state()
    st.certification.centre(str(centre_id), centres_allowed())
    st.fresh()
    with st.ledger.db.read() as cur:
        return {"sessions": sessions_of(cur, str(centre_id))}


@blp.route("/sessions/<uuid:session_id>", methods=["GET"])
@require("centre:*")
@blp.doc(security=SECURED, **json_doc(200, "The session"))
@blp.doc(**READS_AFTER_SEQ)
def get_session(session_id: Any) -> dict[str, Any]:
    """One session: details, enrolled candidates, their courses, the examiner report."""
    st = state()
    session = st.certification.session(str(session_id), centres_allowed())
    st.fresh()
    with st.ledger.db.read() as cur:
        centre = centre_of(cur, session.centre)
        results = summaries_of_session(cur, str(session.id))
    for result in results:
        result["scoring"] = _opened_scoring(result["scoring"])
    return {
        "id": str(session.id),
        "centre": centre or {"id": session.centre},
        "audience": session.audience,
        "date": session.date,
        "time": session.time,
        "address": session.address,
        "room": session.room,
        "examiner": st.ledger.vault.open_or_none(session.examiner),
        "state": session.state,
        "enrolled": sorted(session.enrolled),
        "candidates": _enrolled_view(session),
        "courses": session.courses,
        "results": results,
        "report": _opened_report(session.report),
    }


def _enrolled_view(session: Any) -> list[dict[str, Any]]:
    """Each enrolled candidate with the accommodations the centre must provide."""
    return [
        {"candidate": c, "audience": session.enrolled[c], **session.accommodation_of(c)}
        for c in sorted(session.enrolled)
    ]


def _opened_report(report: dict[str, Any] | None) -> dict[str, Any] | None:
    """The examiner report with its sealed free text opened (null once erased)."""
    if report is None:
        return None
    vault = state().ledger.vault
    return {
        **report,
        "incidents": vault.open_or_none(report.get("incidents")),
        "issue_reports": [
            {**r, "description": vault.open_or_none(r.get("description"))}
            for r in report["issue_reports"]
        ],
    }


@blp.route("/sessions/<uuid:session_id>/candidates", methods=["POST"])
@require("centre:*")
@idempotent
@blp.arguments(schemas.EnrolmentIn)
@blp.response(201, schemas.AppendedOut)
@blp.doc(security=SECURED)
def enrol(body: dict[str, Any], session_id: Any) -> dict[str, Any]:
    """Enrol an eligible candidate (level >= 1 on 5+ competences), inside the audience's window.

    Accommodations are signed with the enrolment: extra time (percent) and accessibility.
    """
    seq = state().certification.enrol(
        str(session_id),
        str(body["candidate"]),
        centres_allowed(),
        extra_time_percent=body["extra_time_percent"],
        accessibility=body["accessibility"],
    )
    return appended(seq)


# --- courses -----------------------------------------------------------------------


def _course_view(course: Any) -> dict[str, Any]:
    return {
        "id": str(course.id),
        "session": course.session,
        "candidate": course.candidate,
        "state": course.state,
        "started_at": course.started_at,
        "deadline": course.deadline,
        "extra_time_percent": course.extra_time_percent,
        "accessibility": course.accessibility,
        "challenges": course.challenges,
        "answered": sorted(course.answers),
        "referential": course.referential,
        "result": course.latest_result,
        "scoring": _opened_scoring(scoring_view(course.latest) if course.scores else None),
    }


def _opened_scoring(scoring: dict[str, Any] | None) -> dict[str, Any] | None:
    """A scoring view with the operator's neutralization reasons opened for `admin` only."""
    if scoring is None:
        return None
    shown = neutralizations_for(
        state().ledger, scoring["neutralizations"], current_principal().is_admin
    )
    return {**scoring, "neutralizations": shown}


def _platform_or_centre() -> set[str] | None:
    """The platform (events:append) acts for every centre; staff for their own."""
    principal = current_principal()
    return None if principal.has("events:append") else principal.centres()


@blp.route("/sessions/<uuid:session_id>/courses", methods=["POST"])
@require("events:append", "centre:*")
@idempotent
@blp.arguments(schemas.CandidateRefIn)
@blp.response(201, schemas.CourseOut)
@blp.doc(security=SECURED)
def start_course(body: dict[str, Any], session_id: Any) -> dict[str, Any]:
    """Start an enrolled candidate's course: the challenges are fixed now, from the profile."""
    course, _ = state().certification.start_course(
        str(session_id), str(body["candidate"]), _platform_or_centre()
    )
    return _course_view(course)


@blp.route("/courses/<uuid:course_id>", methods=["GET"])
@require("events:append", "centre:*")
@blp.response(200, schemas.CourseOut)
@blp.doc(security=SECURED)
def get_course(course_id: Any) -> dict[str, Any]:
    return _course_view(state().certification.course(str(course_id), _platform_or_centre()))


@blp.route("/courses/<uuid:course_id>/answers", methods=["POST"])
@require("events:append")
@idempotent
@blp.arguments(schemas.CourseAnswerIn)
@blp.response(201, schemas.CourseAnswerOut)
@blp.doc(security=SECURED)
def answer(body: dict[str, Any], course_id: Any) -> dict[str, Any]:
    """Record the answer to an assigned challenge. Answers are final: a second one is 409.

    The answer to the last challenge completes the course: `course_completed` is then
    true and `result` holds the score, so the platform need not poll the course.
    """
    seq, result = state().certification.answer(
        str(course_id), body["challenge"], body["result"], body["time_spent_ms"]
    )
    return {**appended(seq), "course_completed": result is not None, "result": result}


@blp.route("/courses/<uuid:course_id>/end", methods=["POST"])
@require("events:append")
@idempotent
@blp.arguments(schemas.CourseEndIn)
@blp.response(201, schemas.AppendedOut)
@blp.doc(security=SECURED)
def end_course(body: dict[str, Any], course_id: Any) -> dict[str, Any]:
    """End a course early (timed out, aborted); it is scored on what was answered."""
    return appended(state().certification.end_course(str(course_id), body["reason"]))


# --- finalization, review, publication -------------------------------------------------


@blp.route("/sessions/<uuid:session_id>/finalization", methods=["POST"])
@require("centre:*")
@idempotent
@blp.arguments(schemas.FinalizationIn)
@blp.response(201, schemas.AppendedOut)
@blp.doc(security=SECURED)
def finalize(body: dict[str, Any], session_id: Any) -> dict[str, Any]:
    """The examiner report: absences, incidents, abort reasons, issue reports."""
    seq = state().certification.finalize(str(session_id), body, centres_allowed())
    return appended(seq)


@blp.route("/sessions/<uuid:session_id>/review", methods=["POST"])
@require("admin")
@idempotent
@blp.response(201, schemas.AppendedOut)
@blp.doc(security=SECURED)
def start_review(session_id: Any) -> dict[str, Any]:
    """The operator takes a finalized session in review (state in_process)."""
    return appended(state().certification.start_review(str(session_id)))


@blp.route("/courses/<uuid:course_id>/decision", methods=["POST"])
@require("admin")
@idempotent
@blp.arguments(schemas.DecisionIn)
@blp.response(201, schemas.AppendedOut)
@blp.doc(security=SECURED)
def decide(body: dict[str, Any], course_id: Any) -> dict[str, Any]:
    """Operator decision during review: confirmed fraud (rejected) or cancellation."""
    seq = state().certification.operator_decision(str(course_id), body["decision"], body["reason"])
    return appended(seq)


@blp.route("/courses/<uuid:course_id>/neutralizations", methods=["POST"])
@require("admin")
@idempotent
@blp.arguments(schemas.NeutralizationIn)
@blp.response(201, schemas.NeutralizationOut)
@blp.doc(security=SECURED)
def neutralize(body: dict[str, Any], course_id: Any) -> dict[str, Any]:
    """During review, neutralize any challenge of the course, with a reason; it is rescored."""
    seq, result = state().certification.neutralize(
        str(course_id), body["challenge"], body["reason"]
    )
    return {"result": result, **appended(seq)}


@blp.route("/courses/<uuid:course_id>/deneutralizations", methods=["POST"])
@require("admin")
@idempotent
@blp.arguments(schemas.NeutralizationIn)
@blp.response(201, schemas.NeutralizationOut)
@blp.doc(security=SECURED)
def deneutralize(body: dict[str, Any], course_id: Any) -> dict[str, Any]:
    """During review, let a neutralized challenge count again, with a reason; it is rescored."""
    seq, result = state().certification.neutralize(
        str(course_id), body["challenge"], body["reason"], undo=True
    )
    return {"result": result, **appended(seq)}


@blp.route("/sessions/<uuid:session_id>/publication", methods=["POST"])
@require("admin")
@idempotent
@blp.response(201, schemas.PublicationOut)
@blp.doc(security=SECURED)
def publish(session_id: Any) -> dict[str, Any]:
    """Publish the session's results: one certificate per validated course.

    `certificates` says which candidate (and course) got which code; `codes` is the
    same codes alone, for clients written against the earlier answer.
    """
    issued, seq = state().certification.publish(str(session_id))
    return {"certificates": issued, "codes": [c["code"] for c in issued], **appended(seq)}


@blp.route("/candidates/<uuid:candidate_id>/certifications", methods=["GET"])
@require("events:append", "audit:read")
@blp.response(200, schemas.CertificationHistoryOut)
@blp.doc(security=SECURED)
@blp.doc(**READS_AFTER_SEQ)
def certification_history(candidate_id: Any) -> dict[str, Any]:
    """The candidate's courses (with the latest score) and certificates.

    Only the operator (`admin`) reads the free-text cancellation, rescoring and
    neutralization reasons; the platform and an auditor read the neutral
    categories the public reads.
    """
    st = state()
    audience = OPERATOR if current_principal().is_admin else PUBLIC
    st.fresh()
    with st.ledger.db.read() as cur:
        courses = history_of(cur, str(candidate_id))
        certificates = by_candidate(cur, str(candidate_id))
        cur.execute("SELECT 1 FROM proj_candidates WHERE candidate = ?", (str(candidate_id),))
        if cur.fetchone() is None:
            raise NotFound(f"no candidate {candidate_id}")
    for course in courses:
        course["scoring"] = _opened_scoring(course["scoring"])
    today = clock.now().astimezone(CENTRE_TZ).date()
    for cert in certificates:
        cert.pop("holder")
        current = public_status(cert, today)
        private = audience == OPERATOR  # nobody else reads a reason: none is opened for them
        reason, erased = (
            opened_reason(st.ledger, cert["status_reason"]) if private else (None, False)
        )
        history = opened_history(st.ledger, cert["history"], open_reasons=private)
        cert.update(
            status=current["status"], status_since=current["since"], status_reason=reason,
            status_reason_erased=erased, history=history,
        )  # fmt: skip
    shaped = [for_audience(cert, audience) for cert in certificates]
    return {"courses": courses, "certificates": shaped}
