"""Certification sessions and their lifecycle (docs/domain.md, "Certification").

created -> finalized (the centre's examiner report) -> in_process (operator
review) -> processed (published). Each refusal rule is a DomainError with its
own code, so the API can say exactly which rule a request broke.
"""

from __future__ import annotations

from typing import Any

from eventsourcing.domain import event

from ledger.domain.base import Conflict, DomainError, LedgerAggregate

CREATED, FINALIZED, IN_PROCESS, PROCESSED = "created", "finalized", "in_process", "processed"
ABORT_REASONS = ("candidate", "technical")
ISSUE_CATEGORIES = (
    "other",
    "candidate-information-changes",
    "signature-issue",
    "connection-or-end-screen",
    "in-challenge",
    "fraud",
    "technical-problem",
    "non-blocking-candidate-issue",
    "non-blocking-technical-issue",
    "late-or-leaving",
)
NEUTRALIZING_CATEGORIES = ("in-challenge", "technical-problem")


class WrongState(DomainError):
    code = "wrong-session-state"
    status = 409


class InvalidReport(DomainError):
    code = "invalid-examiner-report"


class NotEnrolled(DomainError):
    code = "not-enrolled"


class IneligibleCandidate(DomainError):
    code = "ineligible-candidate"


class InvalidAccommodation(DomainError):
    code = "invalid-accommodation"


MAX_EXTRA_TIME_PERCENT = 100
TIERS_TEMPS = 33  # the usual extra third of time


def accommodation(extra_time_percent: int = 0, accessibility: bool = False) -> dict[str, Any]:
    """A candidate's accommodations, checked: whole percent 0..100, accessibility a boolean."""
    if type(extra_time_percent) is not int or not 0 <= extra_time_percent <= MAX_EXTRA_TIME_PERCENT:
        raise InvalidAccommodation(
            f"extra_time_percent must be a whole number from 0 to {MAX_EXTRA_TIME_PERCENT}",
            field="extra_time_percent",
        )
    if type(accessibility) is not bool:
        raise InvalidAccommodation("accessibility must be true or false", field="accessibility")
    return {"extra_time_percent": extra_time_percent, "accessibility": accessibility}


class Session(LedgerAggregate):
    TYPE = "certification.Session"

    class Created(LedgerAggregate.Created):
        TYPE = "certification.SessionCreated"
        centre: str
        audience: str
        date: str
        time: str
        address: str
        room: str
        examiner: dict

    @event(Created)
    def __init__(
        self,
        centre: str,
        audience: str,
        date: str,
        time: str,
        address: str,
        room: str,
        examiner: dict,
    ) -> None:
        self.centre = centre
        self.audience = audience
        self.date = date
        self.time = time
        self.address = address
        self.room = room
        self.examiner = examiner
        self.state = CREATED
        self.enrolled: dict[str, str] = {}  # candidate -> audience
        self.accommodations: dict[str, dict[str, Any]] = {}  # candidate -> accommodation()
        self.courses: dict[str, str] = {}  # candidate -> course
        self.report: dict[str, Any] | None = None

    def _require(self, *states: str) -> None:
        if self.state not in states:
            raise WrongState(
                f"session is {self.state}; this needs it to be {' or '.join(states)}",
                session_state=self.state,
            )

    # --- enrolment --------------------------------------------------------

    class CandidateEnrolled(LedgerAggregate.Event):
        TYPE = "certification.CandidateEnrolled"
        candidate: str
        audience: str
        extra_time_percent: int
        accessibility: bool

    def enrol(
        self,
        candidate: str,
        audience: str,
        eligible: bool,
        competences_at_level_1: int,
        extra_time_percent: int = 0,
        accessibility: bool = False,
    ) -> None:
        self._require(CREATED)
        accommodation(extra_time_percent, accessibility)
        if candidate in self.enrolled:
            raise Conflict(f"candidate {candidate} is already enrolled in this session")
        if not eligible:
            raise IneligibleCandidate(
                "a candidate needs level 1 or more on at least 5 of the 16 competences; "
                f"this one has {competences_at_level_1}",
                competences_at_level_1=competences_at_level_1,
            )
        self._enrol(
            candidate=candidate,
            audience=audience,
            extra_time_percent=extra_time_percent,
            accessibility=accessibility,
        )

    @event(CandidateEnrolled)
    def _enrol(
        self,
        candidate: str,
        audience: str,
        extra_time_percent: int = 0,  # the defaults read enrolments made before these fields
        accessibility: bool = False,
    ) -> None:
        self.enrolled[candidate] = audience
        self.accommodations[candidate] = {
            "extra_time_percent": extra_time_percent,
            "accessibility": accessibility,
        }

    def accommodation_of(self, candidate: str) -> dict[str, Any]:
        return self.accommodations.get(candidate) or accommodation()

    # --- courses ------------------------------------------------------------

    class CourseStarted(LedgerAggregate.Event):
        TYPE = "certification.SessionCourseStarted"
        candidate: str
        course: str

    def start_course(self, candidate: str, course: str) -> None:
        self._require(CREATED)
        if candidate not in self.enrolled:
            raise NotEnrolled(f"candidate {candidate} is not enrolled in this session")
        if candidate in self.courses:
            raise Conflict(f"candidate {candidate} already started a course in this session")
        self._start_course(candidate=candidate, course=course)

    @event(CourseStarted)
    def _start_course(self, candidate: str, course: str) -> None:
        self.courses[candidate] = course

    # --- finalization (the examiner report) -----------------------------------

    class Finalized(LedgerAggregate.Event):
        TYPE = "certification.SessionFinalized"
        absent: list
        incidents: dict | None
        aborts: list
        issue_reports: list

    def finalize(
        self,
        absent: list[str],
        incidents: dict | None,
        aborts: list[dict[str, str]],
        issue_reports: list[dict[str, Any]],
        unfinished: set[str],
    ) -> None:
        """`unfinished`: candidates whose course started but did not complete."""
        self._require(CREATED)
        if not self.courses:
            raise WrongState("a session where no test started cannot be finalized")
        self.check_report(absent, aborts, issue_reports, unfinished)
        self._finalize(
            absent=absent, incidents=incidents, aborts=aborts, issue_reports=issue_reports
        )

    def check_report(
        self,
        absent: list[str],
        aborts: list[dict[str, str]],
        reports: list[dict[str, Any]],
        unfinished: set[str],
        *,
        assigned: dict[str, set[str]] | None = None,
    ) -> None:
        """Refuse an examiner report that contradicts the session (raises InvalidReport).

        `assigned`: each candidate's course challenges, when known, so a report cannot
        ask to neutralize a challenge the candidate was never given.
        """
        self._require(CREATED)
        for candidate in absent:
            if candidate not in self.enrolled:
                raise NotEnrolled(f"absent candidate {candidate} is not enrolled")
            if candidate in self.courses:
                raise InvalidReport(f"candidate {candidate} started a test and cannot be absent")
        aborted = {a["candidate"]: a["reason"] for a in aborts}
        for candidate, reason in aborted.items():
            if candidate not in unfinished:
                raise InvalidReport(f"candidate {candidate} has no unfinished test to abort")
            if reason not in ABORT_REASONS:
                raise InvalidReport(f"abort reason must be {' or '.join(ABORT_REASONS)}")
        missing = sorted(unfinished - set(aborted))
        if missing:
            raise InvalidReport(
                "every unfinished test needs one abort reason (candidate or technical)",
                candidates=missing,
            )
        for report in reports:
            if report["candidate"] not in self.courses:
                raise InvalidReport(f"issue report for {report['candidate']}, who has no test")
            if report["category"] not in ISSUE_CATEGORIES:
                raise InvalidReport(f"unknown issue report category {report['category']!r}")
            if report.get("neutralize"):
                self._check_neutralizing(report, assigned)

    @staticmethod
    def _check_neutralizing(report: dict[str, Any], assigned: dict[str, set[str]] | None) -> None:
        """A request to neutralize: granted at scoring only if the answer was not correct."""
        if report["category"] not in NEUTRALIZING_CATEGORIES:
            raise InvalidReport("only in-challenge and technical reports neutralize a challenge")
        challenge = report.get("challenge")
        if not challenge:
            raise InvalidReport("a neutralizing report names its challenge")
        if assigned is not None and challenge not in assigned.get(report["candidate"], set()):
            raise InvalidReport(
                f"challenge {challenge} was not in the test of candidate {report['candidate']}",
                challenge=challenge,
            )

    @event(Finalized)
    def _finalize(
        self, absent: list, incidents: dict | None, aborts: list, issue_reports: list
    ) -> None:
        self.state = FINALIZED
        self.report = {
            "absent": absent,
            "incidents": incidents,
            "aborts": aborts,
            "issue_reports": issue_reports,
        }

    # --- operator review and publication -------------------------------------

    class ReviewStarted(LedgerAggregate.Event):
        TYPE = "certification.SessionReviewStarted"

    def start_review(self) -> None:
        self._require(FINALIZED)
        self._start_review()

    @event(ReviewStarted)
    def _start_review(self) -> None:
        self.state = IN_PROCESS

    class Published(LedgerAggregate.Event):
        TYPE = "certification.SessionPublished"
        published_on: str

    def publish(
        self,
        published_on: str,
        unscored: list[str],
        erroneous: list[str],
        outdated: list[str] | None = None,
    ) -> None:
        """`outdated`: courses last scored under older rules, to rescore before publishing."""
        self._require(IN_PROCESS)
        if unscored or erroneous:
            raise WrongState(
                "a session with an unscored or erroneous test cannot be published",
                unscored=unscored,
                erroneous=erroneous,
            )
        if outdated:
            raise WrongState(
                "courses scored under older rules: rescore them under the current rules first",
                outdated=list(outdated),
            )
        self._publish(published_on=published_on)

    @event(Published)
    def _publish(self, published_on: str) -> None:
        self.state = PROCESSED
        self.published_on = published_on
