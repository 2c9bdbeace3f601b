"""A candidate's certification course: individualized challenges, final answers, scores.

Starting the course fixes, in one event, the challenges derived from the
candidate's knowledge at that moment, the uncapped profile, the scoring rules
version, the accommodations and the deadline (105 minutes of effective test
time, extended by the candidate's extra time). Answers are final: one per
assigned challenge, none late, none after the end. Every scoring or rescoring is a new event, never an update.

Each CourseScored records the facts it was computed from, so a later scoring
carries them over and anyone can recompute it: every neutralization with its
source (an issue report, granted only on an answer that was not correct; a
technical abort, for the unanswered challenges; the operator during review),
the issue reports kept on correct answers, the abort reason and the operator's
decisions. Events written before these were recorded are read tolerantly.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from eventsourcing.domain import event

from ledger.domain import clock
from ledger.domain.base import Conflict, DomainError, LedgerAggregate
from ledger.domain.profile import CORRECT, Knowledge, Profile
from ledger.domain.referential import Challenge, Referential, Skill
from ledger.domain.scoring import (
    ABORT_REASONS,
    LEGACY_RULES,
    RULES_VERSION,
    TECHNICAL,
    CompetenceEvidence,
    ScoringResult,
    rules_of,
    score,
)

EFFECTIVE_MINUTES = 105
PER_COMPETENCE = 3
ANSWER_RESULTS = ("ok", "ko", "partially", "timedout", "focusedOut", "aband")
IN_PROGRESS, COMPLETED, ENDED = "in_progress", "completed", "ended"
ISSUE_REPORT, OPERATOR, TECHNICAL_ABORT = "issue-report", "operator", "technical-abort"
NEUTRALIZATION_SOURCES = (ISSUE_REPORT, OPERATOR, TECHNICAL_ABORT)


class Facts(NamedTuple):
    """What a scoring reads besides the answers: recorded with its result."""

    neutralizations: dict[str, dict[str, Any]]
    kept: list[dict[str, Any]]
    abort_reason: str | None
    fraud: bool
    cancelled: bool


class CourseError(DomainError):
    code = "course-rule"


class LateAnswer(DomainError):
    code = "late-answer"
    status = 409


class CourseEnded(DomainError):
    code = "course-ended"
    status = 409


class UnassignedChallenge(DomainError):
    code = "unassigned-challenge"


def select_challenges(
    ref: Referential,
    profile: Profile,
    knowledge: Knowledge,
    seen: set[str],
    seed: str,
    accessibility: bool = False,
) -> list[dict[str, Any]]:
    """For each competence at level >= 1, up to 3 challenges, as the national platform picks.

    Only skills the candidate validated directly (not by inference) are asked, hardest
    first, one challenge per skill; at equal difficulty a skill of a tube not yet used
    in this competence comes first; for each skill a challenge not answered in
    positioning (`seen`) comes first; with `accessibility`, only accessible challenges.
    Remaining ties follow a PRNG seeded from `seed` (the course id), so anyone can
    re-derive a course's selection from the log. Fewer such skills, fewer challenges.
    """
    rng = random.Random(hashlib.sha256(seed.encode()).digest())
    chosen: list[dict[str, Any]] = []
    for comp in profile.competences:
        if comp.level < 1:
            continue
        options = _skill_options(ref, comp.code, knowledge, seen, rng, accessibility)
        for skill, challenge in _pick(options):
            chosen.append(
                {"challenge": challenge.id, "skill": skill.id, "competence": comp.code,
                 "difficulty": skill.difficulty}
            )  # fmt: skip
    return chosen


def _skill_options(
    ref: Referential,
    competence: str,
    knowledge: Knowledge,
    seen: set[str],
    rng: random.Random,
    accessibility: bool,
) -> list[tuple[Skill, Challenge]]:
    """(skill, its preferred challenge) per directly validated skill, in the PRNG's order."""
    direct = knowledge.directly_validated_skills(competence)
    skills = [s for s in ref.skills_of(competence) if s.id in direct]
    rng.shuffle(skills)
    options = []
    for skill in skills:
        usable = [c for c in ref.challenges_of(skill.id) if c.accessible or not accessibility]
        rng.shuffle(usable)
        if usable:
            options.append((skill, min(usable, key=lambda c: c.id in seen)))
    return options


def _pick(options: list[tuple[Skill, Challenge]]) -> list[tuple[Skill, Challenge]]:
    """Hardest first, at most 3; at equal difficulty a tube not yet used first (stable)."""
    left, picked, tubes = list(options), [], set()
    while left and len(picked) < PER_COMPETENCE:
        hardest = max(skill.difficulty for skill, _ in left)
        level = [o for o in left if o[0].difficulty == hardest]
        best = next((o for o in level if o[0].tube not in tubes), level[0])
        left.remove(best)
        picked.append(best)
        tubes.add(best[0].tube)
    return picked


class Course(LedgerAggregate):
    TYPE = "certification.Course"

    @staticmethod
    def create_id(selection_seed: str) -> uuid.UUID:  # type: ignore[override]
        """The course id is the seed of its challenge selection: anyone can re-derive it."""
        return uuid.UUID(selection_seed)

    class Started(LedgerAggregate.Created):
        TYPE = "certification.CourseStarted"
        selection_seed: str
        session: str
        candidate: str
        centre: str
        referential: str
        challenges: list
        profile: list
        started_at: str
        deadline: str
        extra_time_percent: int
        accessibility: bool
        rules: str

    @event(Started)
    def __init__(
        self,
        selection_seed: str,
        session: str,
        candidate: str,
        centre: str,
        referential: str,
        challenges: list,
        profile: list,
        started_at: str,
        deadline: str,
        extra_time_percent: int = 0,  # the defaults read courses started before these fields
        accessibility: bool = False,
        rules: str = LEGACY_RULES,
    ) -> None:
        self.session = session
        self.candidate = candidate
        self.centre = centre
        self.referential = referential
        self.challenges = challenges
        self.profile = profile
        self.started_at = started_at
        self.deadline = deadline
        self.extra_time_percent = extra_time_percent
        self.accessibility = accessibility
        self.rules = rules
        self.profile_rules = rules  # the rules the profile was computed under (see `rescore`)
        self.answers: dict[str, dict[str, Any]] = {}
        self.state = IN_PROGRESS
        self.end_reason = ""
        self.scores: list[dict[str, Any]] = []
        self.neutralizations: dict[str, dict[str, Any]] = {}  # challenge -> entry (see _entry)

    @property
    def assigned(self) -> dict[str, dict[str, Any]]:
        return {c["challenge"]: c for c in self.challenges}

    def is_late(self, moment: datetime) -> bool:
        return moment > clock.parse_time(self.deadline)

    # --- answers -----------------------------------------------------------------

    class Answered(LedgerAggregate.Event):
        TYPE = "certification.ChallengeAnswered"
        challenge: str
        result: str
        time_spent_ms: int
        answered_at: str

    def answer(self, challenge: str, result: str, time_spent_ms: int) -> None:
        now = clock.now()
        if self.state != IN_PROGRESS:
            raise CourseEnded(f"this course has ended ({self.end_reason}); answers are final")
        if challenge not in self.assigned:
            raise UnassignedChallenge(f"challenge {challenge} was not assigned in this course")
        if challenge in self.answers:
            raise Conflict(f"challenge {challenge} was already answered; answers are final")
        if result not in ANSWER_RESULTS:
            raise CourseError(f"unknown result {result!r}")
        if self.is_late(now):
            raise LateAnswer(f"the test time ended at {self.deadline}", deadline=self.deadline)
        self._answer(
            challenge=challenge,
            result=result,
            time_spent_ms=time_spent_ms,
            answered_at=clock.format_time(now),
        )
        if len(self.answers) == len(self.challenges):
            self.end("completed")

    @event(Answered)
    def _answer(self, challenge: str, result: str, time_spent_ms: int, answered_at: str) -> None:
        self.answers[challenge] = {"result": result, "time_spent_ms": time_spent_ms}

    # --- end -------------------------------------------------------------------

    class Ended(LedgerAggregate.Event):
        TYPE = "certification.CourseEnded"
        reason: str

    def end(self, reason: str) -> None:
        if self.state != IN_PROGRESS:
            raise CourseEnded(f"this course has already ended ({self.end_reason})")
        if reason not in ("completed", "timed-out", "aborted"):
            raise CourseError("reason must be completed, timed-out or aborted")
        if reason == "completed" and len(self.answers) < len(self.challenges):
            raise CourseError("a course is completed only when every challenge is answered")
        self._end(reason=reason)

    @event(Ended)
    def _end(self, reason: str) -> None:
        self.state = COMPLETED if reason == "completed" else ENDED
        self.end_reason = reason

    @property
    def unfinished(self) -> bool:
        return self.state != COMPLETED

    # --- scoring -----------------------------------------------------------------

    class Scored(LedgerAggregate.Event):
        TYPE = "certification.CourseScored"
        basis: str
        reason: str | dict  # an operator's free text is sealed under the candidate's subject
        neutralized: list
        neutralizations: list
        kept: list
        abort_reason: str | None
        fraud_confirmed: bool
        cancelled_by_operator: bool
        result: dict
        # present only when a rescoring re-derived the profile (see `rescore`)
        profile: list | None

    def evidence(
        self, neutralized: set[str], profile: list[dict[str, Any]] | None = None
    ) -> list[CompetenceEvidence]:
        """Counts per competence from the uncapped profile; unanswered counts as not correct."""
        per: dict[str, dict[str, int]] = {}
        for item in self.challenges:
            counts = per.setdefault(
                item["competence"], {"asked": 0, "correct": 0, "neutralized": 0}
            )
            counts["asked"] += 1
            if item["challenge"] in neutralized:
                counts["neutralized"] += 1
            elif self.answer_result(item["challenge"]) == CORRECT:
                counts["correct"] += 1
        levels = {p["code"]: p for p in (profile or self.profile)}
        return [
            CompetenceEvidence(
                code=code,
                profile_level=levels[code]["level"],
                profile_pix=levels[code]["pix"],
                **counts,
            )
            for code, counts in sorted(per.items())
        ]

    def answer_result(self, challenge: str) -> str | None:
        """The recorded result of an assigned challenge, None when it was never answered."""
        return self.answers.get(challenge, {}).get("result")

    def score(
        self,
        basis: str,
        reason: str | dict,
        max_level: int,
        *,
        issue_reports: list[dict[str, Any]] | None = None,
        abort_reason: str | None = None,
        fraud_confirmed: bool | None = None,
        cancelled_by_operator: bool | None = None,
        profile: list[dict[str, Any]] | None = None,
    ) -> ScoringResult:
        """Score (or rescore) from all evidence so far; earlier decisions carry over.

        `issue_reports` ({"id", "category", "challenge"}) ask to neutralize a challenge:
        granted only when its answer is not correct (a correct answer is kept, so a
        report can never take a point away). `abort_reason` "technical" neutralizes
        every unanswered challenge; "candidate" leaves them counted as wrong.
        `profile`: see `rescore`.
        """
        facts = self._facts(issue_reports, abort_reason, fraud_confirmed, cancelled_by_operator)
        changed = profile if profile is not None and profile != self.profile else None
        result = self._compute(facts, max_level, changed)
        self._record(basis, reason, facts, result, changed)
        return result

    def _facts(
        self,
        issue_reports: list[dict[str, Any]] | None,
        abort_reason: str | None,
        fraud_confirmed: bool | None,
        cancelled_by_operator: bool | None,
    ) -> Facts:
        """What a new scoring reads: earlier facts carried over, new ones added.

        A course last scored under older rules has its issue-report neutralizations
        read again under the current rule, so a correct answer is kept.
        """
        if abort_reason is not None and abort_reason not in ABORT_REASONS:
            raise CourseError(f"abort reason must be {' or '.join(ABORT_REASONS)}")
        neutralizations, kept = dict(self.neutralizations), list(self.kept)
        if self.latest_result is not None and rules_of(self.latest_result) != RULES_VERSION:
            for entry in [n for n in neutralizations.values() if n["source"] == ISSUE_REPORT]:
                del neutralizations[entry["challenge"]]
                self._apply_report(entry, neutralizations, kept)
        for report in issue_reports or ():
            self._apply_report(report, neutralizations, kept)
        if abort_reason == TECHNICAL:
            self._neutralize_unanswered(neutralizations)
        kept = [k for k in kept if k["challenge"] not in neutralizations]
        abort = self.abort_reason if abort_reason is None else abort_reason
        fraud = self.fraud_confirmed if fraud_confirmed is None else fraud_confirmed
        cancelled = (
            self.cancelled_by_operator if cancelled_by_operator is None else cancelled_by_operator
        )
        return Facts(neutralizations, kept, abort, fraud, cancelled)

    def _apply_report(
        self,
        report: dict[str, Any],
        neutralizations: dict[str, dict[str, Any]],
        kept: list[dict[str, Any]],
    ) -> None:
        """Neutralize the reported challenge unless it was answered correctly (then keep it)."""
        challenge = report["challenge"]
        self._require_assigned(challenge)
        ref = {"report": report.get("report", report.get("id")), "category": report.get("category")}
        if self.answer_result(challenge) == CORRECT:
            if (challenge, ref["category"]) not in {(k["challenge"], k["category"]) for k in kept}:
                kept.append({"challenge": challenge, **ref})
                kept.sort(key=lambda k: (k["challenge"], str(k["report"])))
        elif challenge not in neutralizations:
            neutralizations[challenge] = _entry(challenge, ISSUE_REPORT, **ref)

    def _neutralize_unanswered(self, neutralizations: dict[str, dict[str, Any]]) -> None:
        """A technical abort: what the candidate could not answer counts neither way."""
        for item in self.challenges:
            if self.answer_result(item["challenge"]) is None:
                neutralizations.setdefault(
                    item["challenge"], _entry(item["challenge"], TECHNICAL_ABORT)
                )

    def _compute(
        self, facts: Facts, max_level: int, profile: list[dict[str, Any]] | None
    ) -> ScoringResult:
        return score(
            self.evidence(set(facts.neutralizations), profile),
            fraud_confirmed=facts.fraud,
            cancelled_by_operator=facts.cancelled,
            technical_abort=facts.abort_reason == TECHNICAL,
            max_level=max_level,
        )

    def _record(
        self,
        basis: str,
        reason: str | dict,
        facts: Facts,
        result: ScoringResult,
        profile: list[dict[str, Any]] | None,
    ) -> None:
        neutralizations = facts.neutralizations
        self._scored(
            profile=profile,
            basis=basis,
            reason=reason,
            neutralized=sorted(neutralizations),
            neutralizations=[neutralizations[c] for c in sorted(neutralizations)],
            kept=facts.kept,
            abort_reason=facts.abort_reason,
            fraud_confirmed=facts.fraud,
            cancelled_by_operator=facts.cancelled,
            result=result.to_dict(),
        )

    @event(Scored)
    def _scored(
        self,
        basis: str,
        reason: str | dict,
        neutralized: list,
        fraud_confirmed: bool,
        cancelled_by_operator: bool,
        result: dict,
        neutralizations: list | None = None,
        kept: list | None = None,
        abort_reason: str | None = None,
        profile: list | None = None,
    ) -> None:
        """Also replays events written before neutralizations, kept reports and aborts were recorded."""
        entries = neutralizations
        if entries is None:  # an older event: its neutralizations came from issue reports
            entries = [_entry(c, ISSUE_REPORT) for c in neutralized]
        self.scores.append(
            {
                "basis": basis,
                "reason": reason,
                "neutralized": neutralized,
                "neutralizations": entries,
                "kept": kept or [],
                "abort_reason": abort_reason,
                "fraud_confirmed": fraud_confirmed,
                "cancelled_by_operator": cancelled_by_operator,
                "result": result,
            }
        )
        self.neutralizations = {n["challenge"]: n for n in entries}
        if profile is not None:
            self.profile, self.profile_rules = profile, rules_of(result)

    # --- operator review: neutralization by hand ----------------------------------

    class Neutralized(LedgerAggregate.Event):
        TYPE = "certification.ChallengeNeutralized"
        challenge: str
        reason: dict  # sealed under the candidate's subject

    class Deneutralized(LedgerAggregate.Event):
        TYPE = "certification.ChallengeDeneutralized"
        challenge: str
        reason: dict

    def neutralize(
        self,
        challenge: str,
        reason: str | dict,
        max_level: int,
        profile: list[dict[str, Any]] | None = None,
    ) -> ScoringResult:
        """The operator neutralizes any assigned challenge, whatever its answer; then rescore."""
        return self._by_hand(challenge, reason, max_level, profile, undo=False)

    def deneutralize(
        self,
        challenge: str,
        reason: str | dict,
        max_level: int,
        profile: list[dict[str, Any]] | None = None,
    ) -> ScoringResult:
        """The operator lets a neutralized challenge count again (as answered); then rescore."""
        return self._by_hand(challenge, reason, max_level, profile, undo=True)

    def _by_hand(
        self,
        challenge: str,
        reason: str | dict,
        max_level: int,
        profile: list[dict[str, Any]] | None,
        undo: bool,
    ) -> ScoringResult:
        self._require_assigned(challenge)
        if (challenge in self.neutralizations) != undo:
            state = "not neutralized" if undo else "already neutralized"
            raise Conflict(f"challenge {challenge} is {state}", challenge=challenge)
        if undo:
            self._deneutralize(challenge=challenge, reason=reason)
        else:
            self._neutralize(challenge=challenge, reason=reason)
        basis = "deneutralization" if undo else "neutralization"
        return self.score(basis, reason, max_level, profile=profile)

    def _require_assigned(self, challenge: str) -> None:
        if challenge not in self.assigned:
            raise UnassignedChallenge(
                f"challenge {challenge} was not assigned in this course", challenge=challenge
            )

    @event(Neutralized)
    def _neutralize(self, challenge: str, reason: str | dict) -> None:
        self.neutralizations = {
            **self.neutralizations,
            challenge: _entry(challenge, OPERATOR, reason=reason),
        }

    @event(Deneutralized)
    def _deneutralize(self, challenge: str, reason: str | dict) -> None:
        self.neutralizations = {c: n for c, n in self.neutralizations.items() if c != challenge}

    # --- rescoring under the current rules -----------------------------------------

    def rescore(
        self,
        basis: str,
        reason: str | dict,
        max_level: int,
        profile: list[dict[str, Any]] | None = None,
        abort_reason: str | None = None,
    ) -> ScoringResult | None:
        """The same facts under the current rules; None (nothing recorded) if that changes nothing.

        For a course started or scored under older rules: `profile` is its profile at
        the start re-derived under the current rules (the recorded one was capped, its
        pix computed without the 4-pix limit) and `abort_reason` the examiner report's
        (older results did not record it). Both are recorded with the new result, so
        the event alone says what it was computed from.
        """
        facts = self._facts(None, abort_reason, None, None)
        changed = profile if profile is not None and profile != self.profile else None
        result = self._compute(facts, max_level, changed)
        latest = (self.neutralizations, self.kept, self.abort_reason)
        carried = (facts.neutralizations, facts.kept, facts.abort_reason)
        if changed is None and carried == latest and result.to_dict() == self.latest_result:
            return None
        self._record(basis, reason, facts, result, changed)
        return result

    # --- what the latest scoring says ------------------------------------------------

    @property
    def latest(self) -> dict[str, Any]:
        return self.scores[-1] if self.scores else {}

    @property
    def latest_result(self) -> dict[str, Any] | None:
        return self.latest.get("result")

    @property
    def kept(self) -> list[dict[str, Any]]:
        return list(self.latest.get("kept", []))

    @property
    def abort_reason(self) -> str | None:
        return self.latest.get("abort_reason")

    @property
    def fraud_confirmed(self) -> bool:
        return bool(self.latest.get("fraud_confirmed", False))

    @property
    def cancelled_by_operator(self) -> bool:
        return bool(self.latest.get("cancelled_by_operator", False))


def _entry(
    challenge: str,
    source: str,
    report: str | None = None,
    category: str | None = None,
    reason: str | dict | None = None,
) -> dict[str, Any]:
    """One neutralization as CourseScored records it: which challenge, by whom, why."""
    return {
        "challenge": challenge,
        "source": source,
        "report": report,
        "category": category,
        "reason": reason,
    }


def deadline_from(start: datetime, extra_time_percent: int = 0) -> datetime:
    """105 minutes of test time, extended by the candidate's extra time, in whole seconds."""
    seconds = EFFECTIVE_MINUTES * 60 * (100 + extra_time_percent) // 100
    return start + timedelta(seconds=seconds)
