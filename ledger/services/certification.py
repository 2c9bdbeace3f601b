"""Certification commands: centres, sessions, courses, scoring, publication, certificates.

Centre staff act only on their own centre's sessions: a session of another
centre is reported as not found, so a token cannot even probe for it.
`centres=None` means an operator (admin) acting on any centre.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from eventsourcing.application import AggregateNotFoundError

from ledger.config import Config
from ledger.domain import clock
from ledger.domain.base import Conflict, DomainError, NotFound
from ledger.domain.calendar import OutsideWindow, check_window, parse_windows
from ledger.domain.candidate import Candidate
from ledger.domain.centre import Centre, create_centre
from ledger.domain.certificate import CANCELLED as CERTIFICATE_CANCELLED
from ledger.domain.certificate import (
    LATE_ISSUE_REPORT,
    RULES_CHANGE,
    Certificate,
    certificate_id,
    new_code,
    valid_until,
)
from ledger.domain.course import Course, CourseError, deadline_from, select_challenges
from ledger.domain.payload import InvalidInput
from ledger.domain.profile import Knowledge, profile_of
from ledger.domain.referential import (
    COMPETENCE_CODES,
    MAX_DIFFICULTY,
    Referential,
    ReferentialError,
    load_referential,
)
from ledger.domain.referential_release import ReferentialRelease, release, release_id
from ledger.domain.scoring import ERROR, RULES_VERSION, VALIDATED, ScoringResult, rules_of
from ledger.domain.session import IN_PROCESS, PROCESSED, Session
from ledger.services import retrying
from ledger.services.candidates import (
    RegisteredSubjects,
    positioning,
    refuse_erased,
    refuse_erased_subject,
    registration,
)
from ledger.services.repeated_rescoring import (
    ISSUED,
    LATE_REPORT_BASIS,
    NEEDS_REVIEW,
    RULES_BASIS,
    UNCHANGED,
    late_report_answer,
    rules_answer,
)
from ledger.store.application import Ledger
from ledger.store.recorder import ConcurrencyConflict

CENTRE_TZ = ZoneInfo("Europe/Paris")
CERTIFICATE_ISSUED = Certificate.Issued.TYPE
COURSE_SCORED = Course.Scored.TYPE
Centres = set[str] | None


class WrongDay(DomainError):
    code = "wrong-session-day"


def load_aggregate(ledger: Ledger, kind: type, ident: str, label: str) -> Any:
    try:
        found = ledger.app.repository.get(UUID(str(ident)))
    except (ValueError, AggregateNotFoundError):
        raise NotFound(f"no {label} {ident}") from None
    if not isinstance(found, kind):
        raise NotFound(f"no {label} {ident}")
    return found


def publish_referential(ledger: Ledger, ref: Referential) -> int | None:
    """Put the referential version in the log once (a no-op when already there)."""
    try:
        load_aggregate(ledger, ReferentialRelease, str(release_id(ref.version)), "release")
        return None
    except NotFound:
        pass
    try:
        (seq,) = ledger.save(release(ref))
    except ConcurrencyConflict:
        return None  # another process published it first
    return seq


class CertificationService:
    def __init__(self, ledger: Ledger, ref: Referential, config: Config):
        self.ledger = ledger
        self.ref = ref
        self.max_level = config.max_level
        self.windows = parse_windows(config.calendar)
        self.subjects = RegisteredSubjects(ledger)

    # --- loading with authorization ----------------------------------------

    def centre(self, centre_id: str, centres: Centres) -> Centre:
        if centres is not None and str(centre_id) not in centres:
            raise NotFound(f"no centre {centre_id}")
        return load_aggregate(self.ledger, Centre, centre_id, "centre")

    def session(self, session_id: str, centres: Centres) -> Session:
        session = load_aggregate(self.ledger, Session, session_id, "session")
        if centres is not None and session.centre not in centres:
            raise NotFound(f"no session {session_id}")
        return session

    def course(self, course_id: str, centres: Centres = None) -> Course:
        course = load_aggregate(self.ledger, Course, course_id, "course")
        if centres is not None and course.centre not in centres:
            raise NotFound(f"no course {course_id}")
        return course

    def certificate(self, code: str) -> Certificate:
        return load_aggregate(self.ledger, Certificate, str(certificate_id(code)), "certificate")

    # --- centres and sessions ------------------------------------------------

    def create_centre(self, name: str, kind: str, city: str) -> tuple[Centre, int]:
        centre = create_centre(name, kind, city)
        (seq,) = self.ledger.save(centre)
        return centre, seq

    def create_session(
        self, centre_id: str, centres: Centres, **details: Any
    ) -> tuple[Session, int]:
        """Schedule a session; a past date, or a pupil session outside its window, is refused.

        The window is checked here, not only at enrolment, so a centre learns at once
        that nobody could ever be enrolled in the session it is scheduling.
        """
        self.centre(centre_id, centres)
        try:
            today = clock.now().astimezone(CENTRE_TZ).date()
            day = clock.parse_date(details["date"])
            clock.check_session_date(day, today)
        except ValueError as exc:
            raise InvalidInput("date", str(exc)) from None
        try:
            check_window(self.windows, details.get("audience", "adult"), day)
        except OutsideWindow as exc:
            raise OutsideWindow(f"date: {exc.detail}", field="date") from None
        examiner_subject = str(uuid.uuid4())
        examiner = self.ledger.vault.seal(examiner_subject, details.pop("examiner"))
        session = Session(centre=str(centre_id), examiner=examiner, **details)
        (seq,) = self.ledger.save(session)
        return session, seq

    def enrol(
        self,
        session_id: str,
        candidate_id: str,
        centres: Centres,
        extra_time_percent: int = 0,
        accessibility: bool = False,
    ) -> int:
        """Enrol with the candidate's accommodations (extra time, accessibility), signed facts."""

        def command() -> int:
            session = self.session(session_id, centres)
            candidate = registration(self.ledger, candidate_id)
            refuse_erased(self.ledger, candidate, "be enrolled")
            check_window(self.windows, candidate.audience, clock.parse_date(session.date))
            knowledge = positioning(self.ledger, self.ref, candidate).knowledge
            profile = profile_of(self.ref, knowledge, self.max_level)
            session.enrol(
                str(candidate.id),
                candidate.audience,
                profile.eligible,
                profile.competences_at_level_1,
                extra_time_percent=extra_time_percent,
                accessibility=accessibility,
            )
            return self.ledger.save(session)[-1]

        return retrying(command)

    # --- courses ---------------------------------------------------------------

    def start_course(
        self, session_id: str, candidate_id: str, centres: Centres
    ) -> tuple[Course, int]:
        def command() -> tuple[Course, int]:
            session = self.session(session_id, centres)
            candidate = registration(self.ledger, candidate_id)
            refuse_erased(self.ledger, candidate, "start a course")
            now = clock.now()
            if now.astimezone(CENTRE_TZ).date().isoformat() != session.date:
                raise WrongDay(f"the session is on {session.date}; a test starts on that day only")
            known = positioning(self.ledger, self.ref, candidate)
            knowledge, seen = known.knowledge, known.seen
            profile = profile_of(self.ref, knowledge, max_level=MAX_DIFFICULTY)  # uncapped
            seed = str(uuid.uuid4())
            needs = session.accommodation_of(str(candidate.id))
            challenges = select_challenges(
                self.ref, profile, knowledge, seen, seed, accessibility=needs["accessibility"]
            )
            if not challenges:
                raise CourseError("the candidate's profile gives no challenge to ask")
            deadline = deadline_from(now, needs["extra_time_percent"])
            course = Course(
                selection_seed=seed, session=str(session.id), candidate=str(candidate.id), centre=session.centre,
                referential=self.ref.version, challenges=challenges, profile=profile.to_list(),
                started_at=clock.format_time(now), deadline=clock.format_time(deadline),
                rules=RULES_VERSION, **needs,
            )  # fmt: skip
            session.start_course(str(candidate.id), str(course.id))
            seqs = self.ledger.save(course, session)
            return course, seqs[0]

        return retrying(command)

    def answer(
        self, course_id: str, challenge: str, result: str, time_spent_ms: int
    ) -> tuple[int, dict[str, Any] | None]:
        """Record a final answer; returns its seq and, when it completed the course, the result.

        Refused (409) once the candidate was erased: nobody is left to have answered.
        Enrolment and course start are refused the same way.
        """

        def command() -> tuple[int, dict[str, Any] | None]:
            course = self.course(course_id)
            subject = self.subjects.of(course.candidate)
            refuse_erased_subject(self.ledger, course.candidate, subject, "answer")
            course.answer(challenge, result, time_spent_ms)
            completed = course.state != "in_progress"
            if completed:
                course.score(
                    "completion", "all challenges answered", self.max_level,
                    profile=self._start_profile(course),
                )  # fmt: skip
            seq = self.ledger.save(course)[0]
            return seq, course.latest_result if completed else None

        return retrying(command)

    def end_course(self, course_id: str, reason: str, centres: Centres = None) -> int:
        def command() -> int:
            course = self.course(course_id, centres)
            course.end(reason)
            course.score(
                "end", f"course {reason}", self.max_level, profile=self._start_profile(course)
            )
            return self.ledger.save(course)[0]

        return retrying(command)

    # --- finalization, review, publication -------------------------------------

    def finalize(self, session_id: str, report: dict[str, Any], centres: Centres) -> int:
        def command() -> int:
            session = self.session(session_id, centres)
            courses = {c: self.course(course_id) for c, course_id in session.courses.items()}
            ended_now = set()
            for candidate, course in courses.items():
                if course.state == "in_progress" and course.is_late(clock.now()):
                    course.end("timed-out")
                    ended_now.add(candidate)
            unfinished = {c for c, course in courses.items() if course.unfinished}
            raw_reports = report["issue_reports"]
            assigned = {c: set(course.assigned) for c, course in courses.items()}
            session.check_report(
                report["absent"], report["aborts"], raw_reports, unfinished, assigned=assigned
            )
            reports = [self._seal_report(r) for r in raw_reports]  # sealed only once valid
            incidents = report.get("incidents")
            sealed_incidents = self._seal_incidents(session, incidents) if incidents else None
            session.finalize(
                report["absent"], sealed_incidents, report["aborts"], reports, unfinished
            )
            aborted = {a["candidate"]: a["reason"] for a in report["aborts"]}
            for candidate, course in courses.items():
                if course.state == "in_progress" and candidate in aborted:
                    course.end("aborted")
                asks = _neutralization_requests(reports, candidate)
                if (
                    course.latest_result is None
                    or asks
                    or candidate in aborted
                    or candidate in ended_now
                ):
                    course.score(
                        "finalization", "examiner report", self.max_level,
                        issue_reports=asks, abort_reason=aborted.get(candidate),
                        profile=self._start_profile(course),
                    )  # fmt: skip
            return self.ledger.save(session, *courses.values())[0]

        return retrying(command)

    def _abort_of(self, course: Course) -> str | None:
        """The examiner report's abort reason for an unfinished course scored before it was recorded."""
        if course.abort_reason is not None or not course.unfinished:
            return None
        report = self.session(course.session, None).report or {}
        aborts = {a["candidate"]: a["reason"] for a in report.get("aborts", [])}
        return aborts.get(course.candidate)

    def _start_profile(self, course: Course) -> list[dict[str, Any]] | None:
        """For a course started under older rules, its start profile under the current ones.

        Recorded with the course's next result, once (`Course.profile_rules`).
        """
        if course.profile_rules == RULES_VERSION:
            return None
        return profile_at_start(self.ledger, course)

    def _seal_incidents(self, session: Session, incidents: str) -> dict[str, str]:
        """Free text that may name anyone present: erased with any enrolled candidate or the examiner."""
        people = [registration(self.ledger, c).subject for c in session.enrolled]
        people.append(session.examiner["subject"])
        return self.ledger.vault.seal_shared(f"session:{session.id}", people, incidents)

    def _seal_report(self, report: dict[str, Any]) -> dict[str, Any]:
        candidate = registration(self.ledger, report["candidate"])
        description = report.get("description")
        return {
            "id": report.get("id") or str(uuid.uuid4()),
            "candidate": report["candidate"],
            "category": report["category"],
            "challenge": report.get("challenge"),
            "neutralize": bool(report.get("neutralize")),
            "description": self.ledger.vault.seal(candidate.subject, description)
            if description
            else None,
        }

    def start_review(self, session_id: str) -> int:
        def command() -> int:
            session = self.session(session_id, None)
            session.start_review()
            return self.ledger.save(session)[0]

        return retrying(command)

    def _under_review(self, course_id: str, reason: str) -> tuple[Course, dict[str, str]]:
        """The course, if its session is in operator review, and the reason sealed for it.

        The reason describes what one candidate did: it is sealed under their subject.
        """
        course = self.course(course_id)
        session = self.session(course.session, None)
        if session.state != IN_PROCESS:
            raise Conflict(
                "operator decisions are taken while the session is in process",
                session_state=session.state,
            )
        subject = registration(self.ledger, course.candidate).subject
        return course, self.ledger.vault.seal(subject, reason)

    def operator_decision(self, course_id: str, decision: str, reason: str) -> int:
        """Confirm fraud (rejected) or cancel (cancelled) a course under review."""

        def command() -> int:
            course, sealed = self._under_review(course_id, reason)
            course.score(
                "operator", sealed, self.max_level,
                fraud_confirmed=True if decision == "fraud" else None,
                cancelled_by_operator=True if decision == "cancel" else None,
                profile=self._start_profile(course),
            )  # fmt: skip
            return self.ledger.save(course)[0]

        return retrying(command)

    def neutralize(
        self, course_id: str, challenge: str, reason: str, *, undo: bool = False
    ) -> tuple[int, dict[str, Any]]:
        """The operator neutralizes (or, `undo`, de-neutralizes) any challenge during review.

        One ChallengeNeutralized / ChallengeDeneutralized event and the new CourseScored,
        in one save. Returns the first event's seq and the new result.
        """

        def command() -> tuple[int, dict[str, Any]]:
            course, sealed = self._under_review(course_id, reason)
            change = course.deneutralize if undo else course.neutralize
            result = change(challenge, sealed, self.max_level, self._start_profile(course))
            return self.ledger.save(course)[0], result.to_dict()

        return retrying(command)

    def publish(self, session_id: str) -> tuple[list[dict[str, str]], int]:
        """Publish the results; one certificate per validated course.

        Returns, per certificate, its candidate, course and code (so the platform can
        tell each candidate theirs without another lookup), and the first seq.
        """

        def command() -> tuple[list[dict[str, str]], int]:
            session = self.session(session_id, None)
            courses = [self.course(course_id) for course_id in session.courses.values()]
            unscored = [str(c.id) for c in courses if c.latest_result is None]
            erroneous = [
                str(c.id) for c in courses if (c.latest_result or {}).get("status") == ERROR
            ]
            outdated = [
                str(c.id) for c in courses
                if c.latest_result is not None and rules_of(c.latest_result) != RULES_VERSION
            ]  # fmt: skip
            today = clock.now().astimezone(CENTRE_TZ).date()
            session.publish(today.isoformat(), unscored, erroneous, outdated)
            centre = load_aggregate(self.ledger, Centre, session.centre, "centre")
            certificates = [
                self._certificate(course, session, centre, today)
                for course in courses
                if course.latest_result["status"] == VALIDATED
            ]
            seqs = self.ledger.save(session, *certificates)
            issued = [
                {"candidate": c.candidate, "course": c.course, "code": c.code} for c in certificates
            ]
            return issued, seqs[0]

        return retrying(command)

    def _certificate(
        self, course: Course, session: Session, centre: Centre, today: date
    ) -> Certificate:
        candidate: Candidate = registration(self.ledger, course.candidate)
        result = course.latest_result
        return Certificate(
            code=new_code(), candidate=course.candidate, subject=candidate.subject,
            holder=candidate.identity, course=str(course.id), session=str(session.id),
            centre={"id": str(centre.id), "name": centre.name, "city": centre.city},
            passed_on=session.date, issued_on=today.isoformat(),
            valid_until=valid_until(today).isoformat(),
            competences=certified_levels(result), pix_score=result["pix_score"],
            max_level=self.max_level, referential=course.referential,
        )  # fmt: skip

    # --- after publication --------------------------------------------------------

    def cancel_certificate(self, code: str, reason: str, category: str = "other") -> int:
        """The reason may name the holder: it is sealed under their subject; the category is public."""

        def command() -> int:
            certificate = self.certificate(code)
            certificate.cancel(
                self.ledger.vault.seal(certificate.subject, reason),
                clock.now().astimezone(CENTRE_TZ).date().isoformat(),
                category,
            )
            return self.ledger.save(certificate)[0]

        return retrying(command)

    def rescore_certificate(
        self, code: str, neutralize: list[str], reason: str, category: str = "in-challenge"
    ) -> dict[str, Any]:
        """A late issue report: the course is rescored under the issue-report rule.

        Only a wrong, skipped or unanswered challenge is neutralized; a correct
        answer is kept. The certificate follows only when something changed. The
        reason may name the holder: it is sealed under their subject, in the
        course's and the certificate's events alike.
        """

        def command() -> dict[str, Any]:
            certificate = self.certificate(code)
            if certificate.status == CERTIFICATE_CANCELLED:
                raise Conflict(f"certificate {code} is cancelled; it cannot be rescored")
            course = self.course(certificate.course)
            if rules_of(course.latest_result or {}) != RULES_VERSION:
                raise Conflict(
                    f"course {course.id} was scored under older rules: rescore it under the"
                    " current rules first (POST /api/v1/courses/<id>/rescoring)"
                )
            before = (set(course.neutralizations), course.kept, course.latest_result)
            sealed = self.ledger.vault.seal(certificate.subject, reason)
            reports = [
                {"id": str(uuid.uuid4()), "category": category, "challenge": challenge}
                for challenge in dict.fromkeys(neutralize)
            ]
            result = course.score(LATE_REPORT_BASIS, sealed, self.max_level, issue_reports=reports)
            granted = sorted(set(course.neutralizations) - before[0])
            if (set(course.neutralizations), course.kept, result.to_dict()) == before:
                return self._repeated_report(code, course, set(neutralize), result)
            why = f"rescored as {result.status}: {reason}"
            action = self._follow(
                certificate, result, LATE_ISSUE_REPORT, sealed, why, neutralized=bool(granted)
            )
            self.ledger.save(course, certificate)
            return {
                "result": result.to_dict(),
                "neutralized": granted,
                "kept": sorted(set(neutralize) - set(course.neutralizations)),
                "certificate_action": action,
                "unchanged": action == UNCHANGED,
            }

        return retrying(command)

    def _repeated_report(
        self, code: str, course: Course, requested: set[str], result: ScoringResult
    ) -> dict[str, Any]:
        """Nothing new to record: the answer the same report got, or "nothing changed"."""
        neutralized = set(course.neutralizations)
        repeated = late_report_answer(self.ledger, code, str(course.id), requested, neutralized)
        return repeated or {
            "result": result.to_dict(), "neutralized": [],
            "kept": sorted(requested - neutralized),
            "certificate_action": UNCHANGED, "unchanged": True,
        }  # fmt: skip

    def rescore_course(self, course_id: str, reason: str, dry_run: bool = False) -> dict[str, Any]:
        """The same facts under the current scoring rules; the certificate, if any, follows.

        Idempotent: when the latest result is what the current rules compute,
        nothing is recorded; the answer is the one the rescoring that produced it
        gave (read from the log), or `rescored: false` when the course was never
        rescored. `dry_run` computes without saving.
        """
        return retrying(lambda: self._rescore_course(course_id, reason, dry_run, None))

    def rescore_outdated(self, reason: str, dry_run: bool = False) -> list[dict[str, Any]]:
        """Every course whose latest result was computed under older rules, rescored one by one."""
        codes = certificates_by_course(self.ledger)
        return [
            self._rescore_one(course, reason, dry_run, codes)
            for course in outdated_courses(self.ledger)
        ]

    def _rescore_one(
        self, course: str, reason: str, dry_run: bool, codes: dict[str, str]
    ) -> dict[str, Any]:
        """One course of a batch: a refusal is reported with the course, the batch goes on."""
        try:
            return retrying(lambda: self._rescore_course(course, reason, dry_run, codes))
        except (DomainError, ReferentialError) as exc:
            return {"course": course, "rescored": False, "dry_run": dry_run, "error": str(exc)}

    def _rescore_course(
        self, course_id: str, reason: str, dry_run: bool, codes: dict[str, str] | None
    ) -> dict[str, Any]:
        """One course; `codes` (course -> certificate code) saves a scan of the log per course.

        A dry run seals nothing: its reason is never recorded.
        """
        course = self.course(course_id)
        previous = course.latest_result
        if previous is None:
            raise Conflict(f"course {course_id} has no result to rescore yet")
        subject = registration(self.ledger, course.candidate).subject
        sealed = reason if dry_run else self.ledger.vault.seal(subject, reason)
        result = course.rescore(
            RULES_BASIS, sealed, self.max_level, self._start_profile(course), self._abort_of(course)
        )
        answer = {
            "course": str(course.id),
            "previous_rules": rules_of(previous),
            "previous_status": previous["status"],
            "rescored": result is not None,
            "dry_run": dry_run,
            "certificate": None,
            "certificate_action": None,
        }

        def code_of() -> str | None:
            return (codes if codes is not None else certificates_by_course(self.ledger)).get(
                str(course.id)
            )

        if result is None:
            repeated = None if dry_run else rules_answer(self.ledger, str(course.id), code_of)
            return repeated or {**answer, "result": previous}
        code = code_of()
        touched: list[Certificate] = []
        if code is not None:
            certificate = self.certificate(code)
            why = f"rescored under scoring rules {result.rules} as {result.status}: {reason}"
            action = self._follow(certificate, result, RULES_CHANGE, sealed, why, dry_run=dry_run)
            answer.update(certificate=code, certificate_action=action)
            touched.append(certificate)
        elif result.status == VALIDATED:
            touched += self._late_certificate(course, answer, dry_run)
        if not dry_run:
            self.ledger.save(course, *touched)
        return {**answer, "result": result.to_dict()}

    def _late_certificate(
        self, course: Course, answer: dict[str, Any], dry_run: bool
    ) -> list[Certificate]:
        """A published course the current rules validate, once refused: its certificate, now."""
        session = self.session(course.session, None)
        if session.state != PROCESSED:
            return []  # publication will issue it
        today = clock.now().astimezone(CENTRE_TZ).date()
        centre = load_aggregate(self.ledger, Centre, session.centre, "centre")
        certificate = self._certificate(course, session, centre, today)
        answer.update(certificate=certificate.code, certificate_action=ISSUED)
        return [] if dry_run else [certificate]

    def _follow(
        self,
        certificate: Certificate,
        result: ScoringResult,
        cause: str,
        sealed: str | dict[str, str],
        why: str,
        *,
        neutralized: bool = False,
        dry_run: bool = False,
    ) -> str:
        """The certificate follows a new result: rescored, cancelled, or left unchanged.

        A validated result rescores it when its levels or pix differ (or a late
        report neutralized something); any other status cancels it, saying why.
        """
        today = clock.now().astimezone(CENTRE_TZ).date().isoformat()
        levels = certified_levels(result.to_dict())
        if certificate.status == CERTIFICATE_CANCELLED:
            return UNCHANGED
        if result.status == ERROR:
            return NEEDS_REVIEW  # no pix certified above 50%: for the operator, not a cancellation
        if result.status != VALIDATED:
            if not dry_run:
                sealed = self.ledger.vault.seal(certificate.subject, why)
                certificate.cancel(sealed, today, category="rescoring")  # its public category
            return "cancelled"
        if not neutralized and (levels, result.pix_score) == (
            certificate.competences,
            certificate.pix_score,
        ):
            return UNCHANGED
        if not dry_run:
            certificate.rescore(
                sealed, today, levels, result.pix_score, rules=result.rules, cause=cause
            )
        return "rescored"


ANSWER_RECORDED = Candidate.AnswerRecorded.TYPE


def profile_at_start(ledger: Ledger, course: Course) -> list[dict[str, Any]]:
    """The candidate's uncapped profile when the course started, under the current pix rules.

    From the log: the candidate's answers logged before the course's first event,
    read with the shipped referential of the version the course names.
    """
    started = ledger.recorder.stream_envelopes(str(course.id))[0].seq
    ref = load_referential(course.referential)
    answers = (
        (env.data["skill"], env.data["result"])
        for env in ledger.recorder.stream_envelopes(course.candidate)
        if env.seq < started and env.type == ANSWER_RECORDED
    )
    knowledge = Knowledge.of(ref, answers)
    return profile_of(ref, knowledge, MAX_DIFFICULTY).to_list()


def certificates_by_course(ledger: Ledger) -> dict[str, str]:
    """course id -> certificate code, from the signed issuing events (not a read model)."""
    return {
        env.data["course"]: env.data["code"]
        for env in ledger.recorder.iter_envelopes_of_type(CERTIFICATE_ISSUED)
    }


def outdated_courses(ledger: Ledger) -> list[str]:
    """Courses whose latest result was computed under older scoring rules, in log order."""
    latest: dict[str, dict[str, Any]] = {}
    for env in ledger.recorder.iter_envelopes_of_type(COURSE_SCORED):
        latest[env.stream] = env.data["result"]
    return [course for course, result in latest.items() if rules_of(result) != RULES_VERSION]


def _neutralization_requests(reports: list[dict[str, Any]], candidate: str) -> list[dict[str, Any]]:
    """The candidate's issue reports that ask to neutralize a challenge (granted if not correct)."""
    return [
        {"id": r["id"], "category": r["category"], "challenge": r["challenge"]}
        for r in reports
        if r["candidate"] == candidate and r.get("neutralize")
    ]


def certified_levels(result: dict[str, Any]) -> list[dict[str, Any]]:
    """All 16 competences with their certified level (0 when not tested or not certified)."""
    levels = {c["code"]: c["level"] for c in result["competences"]}
    return [{"code": code, "level": levels.get(code, 0)} for code in COMPETENCE_CODES]
