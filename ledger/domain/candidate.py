"""The candidate: registration and positioning answers, with their knowledge.

One stream per candidate. Identity is sealed before it reaches the domain
(the domain only ever sees `{"sealed", "subject"}` values). Each answer is
idempotent by the platform's answer id: the same answer again is a no-op,
a different answer under the same id is a conflict.

Recording an answer needs neither the candidate's history nor its knowledge:
`AnswerStream` applies the rule from the stream's head version and the answers
already recorded under the ids at hand, so an answer costs the same at the
5,000th as at the first. The whole `Candidate` is loaded only where its
knowledge is read (enrolment, course start).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any
from uuid import UUID

from eventsourcing.domain import event

from ledger.domain.base import Conflict, DomainError, LedgerAggregate
from ledger.domain.profile import ANSWER_RESULTS, Knowledge, Profile, profile_of
from ledger.domain.referential import Referential, ReferentialError


class InvalidAnswer(DomainError):
    code = "invalid-answer"
    status = 422


class UnknownReference(DomainError):
    code = "unknown-reference"
    status = 422


@dataclass(frozen=True)
class Answer:
    """One positioning answer as the platform sends it."""

    answer_id: str
    challenge: str
    skill: str
    competence: str
    result: str
    time_spent_ms: int
    answered_at: str

    def payload(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def of(cls, recorded: dict[str, Any]) -> Answer:
        """The answer an AnswerRecorded payload holds (its referential version aside)."""
        return cls(**{f.name: recorded[f.name] for f in fields(cls)})


def is_repeat(known: Answer | None, answer: Answer) -> bool:
    """True when `answer` was already recorded as is; a Conflict when its id holds another."""
    if known is None:
        return False
    if known != answer:
        raise Conflict(
            f"answer {answer.answer_id} was already recorded with other content",
            answer_id=answer.answer_id,
        )
    return True


def derive_answer(
    ref: Referential, challenge: str, skill: str | None, competence: str | None, **rest: Any
) -> Answer:
    """The answer with its skill and competence taken from the challenge id.

    The platform need not repeat what the referential already says; when it does
    send them they must agree, so a mismatch is refused naming the field.
    """
    answer_id = rest.get("answer_id")
    try:
        derived_skill = ref.challenge(challenge).skill
    except ReferentialError as exc:
        raise UnknownReference(str(exc), answer_id=answer_id, field="challenge") from exc
    derived_competence = ref.competence_of_skill(derived_skill)
    if skill is not None and skill != derived_skill:
        raise UnknownReference(
            f"skill: challenge {challenge} tests skill {derived_skill}, not {skill}",
            answer_id=answer_id, field="skill",
        )  # fmt: skip
    if competence is not None and competence != derived_competence:
        raise UnknownReference(
            f"competence: challenge {challenge} is in competence {derived_competence},"
            f" not {competence}",
            answer_id=answer_id, field="competence",
        )  # fmt: skip
    return Answer(challenge=challenge, skill=derived_skill, competence=derived_competence, **rest)


def check_answer(ref: Referential, answer: Answer) -> None:
    """Refuse answers that do not fit the referential: unknown or mismatched ids."""
    if answer.result not in ANSWER_RESULTS:
        raise InvalidAnswer(f"unknown result {answer.result!r}", answer_id=answer.answer_id)
    if answer.time_spent_ms < 0:
        raise InvalidAnswer("time_spent_ms must not be negative", answer_id=answer.answer_id)
    try:
        competence = ref.competence(answer.competence)
        skill = ref.skill(answer.skill)
        challenge = ref.challenge(answer.challenge)
    except ReferentialError as exc:
        raise UnknownReference(str(exc), answer_id=answer.answer_id) from exc
    if ref.competence_of_skill(skill.id) != competence.code:
        raise UnknownReference(
            f"skill {skill.id} is not in competence {competence.code}", answer_id=answer.answer_id
        )
    if challenge.skill != skill.id:
        raise UnknownReference(
            f"challenge {challenge.id} does not test skill {skill.id}", answer_id=answer.answer_id
        )


class Candidate(LedgerAggregate):
    """A person who positions and certifies; personal data only in sealed form."""

    TYPE = "candidates.Candidate"

    class Registered(LedgerAggregate.Created):
        TYPE = "candidates.CandidateRegistered"
        subject: str
        identity: dict
        external_id: dict | None
        audience: str
        school: str | None

    @event(Registered)
    def __init__(
        self,
        subject: str,
        identity: dict,
        external_id: dict | None,
        audience: str,
        school: str | None = None,
    ) -> None:
        self.subject = subject
        self.school = school  # a school's UAI: which institution receives the results
        self.identity = identity
        self.external_id = external_id
        self.audience = audience
        self.answers: dict[str, Answer] = {}
        self.evidence: list[tuple[str, str, int]] = []  # (skill, result, position)
        self.referential_version = ""

    class AnswerRecorded(LedgerAggregate.Event):
        TYPE = "positioning.AnswerRecorded"
        referential: str
        answer_id: str
        challenge: str
        skill: str
        competence: str
        result: str
        time_spent_ms: int
        answered_at: str

    def record_answer(self, ref: Referential, answer: Answer) -> bool:
        """Record one answer; False when it was already recorded identically."""
        if is_repeat(self.answers.get(answer.answer_id), answer):
            return False
        check_answer(ref, answer)
        self._record(referential=ref.version, **answer.payload())
        return True

    @event(AnswerRecorded)
    def _record(
        self,
        referential: str,
        answer_id: str,
        challenge: str,
        skill: str,
        competence: str,
        result: str,
        time_spent_ms: int,
        answered_at: str,
    ) -> None:
        self.answers[answer_id] = Answer(
            answer_id, challenge, skill, competence, result, time_spent_ms, answered_at
        )
        self.referential_version = referential
        self.evidence.append((skill, result, len(self.evidence) + 1))

    def knowledge(self, ref: Referential) -> Knowledge:
        return Knowledge.of(ref, ((skill, result) for skill, result, _ in self.evidence))

    def profile(self, ref: Referential, max_level: int) -> Profile:
        """The competence profile at this moment, from this candidate's own answers."""
        return profile_of(ref, self.knowledge(ref), max_level)


class AnswerStream:
    """A candidate's stream as recording answers needs it: head version and answers by id.

    `known` holds what the log already recorded under the answer ids at hand (not the
    whole history). `record` applies the same rule as `Candidate.record_answer` and
    emits the same AnswerRecorded events at the next versions, ready to save; a stale
    head makes the save fail on the taken version, and the command is run again.
    """

    def __init__(self, candidate_id: UUID, version: int, known: dict[str, Answer]):
        self.candidate_id = candidate_id
        self.version = version
        self.known = dict(known)
        self.events: list[Candidate.AnswerRecorded] = []

    def record(self, ref: Referential, answer: Answer) -> bool:
        """Record one answer; False when it was already recorded identically."""
        if is_repeat(self.known.get(answer.answer_id), answer):
            return False
        check_answer(ref, answer)
        self.version += 1
        recorded = Candidate.AnswerRecorded
        self.events.append(
            recorded(
                originator_id=self.candidate_id,
                originator_version=self.version,
                timestamp=recorded.create_timestamp(),
                referential=ref.version,
                **answer.payload(),
            )
        )
        self.known[answer.answer_id] = answer
        return True


@dataclass
class Positioning:
    """What a candidate's answers say, folded up to stream `version`: knowledge and challenges seen.

    Its size is bounded by the referential, not by the history, so it can be kept
    and carried forward: `fold` continues exactly where `Candidate.knowledge` would be
    after the same answers (positions count answers, from 1).
    """

    referential: str
    version: int = 1
    answers: int = 0
    knowledge: Knowledge = field(default_factory=Knowledge)
    seen: set[str] = field(default_factory=set)

    def fold(self, ref: Referential, version: int, recorded: dict[str, Any] | None) -> None:
        """Event `version` of the stream; `recorded` is its payload when it is an answer."""
        if recorded is not None:
            self.answers += 1
            self.knowledge.apply(ref, recorded["skill"], recorded["result"], self.answers)
            self.seen.add(recorded["challenge"])
        self.version = version

    def to_state(self) -> dict[str, Any]:
        return {
            "referential": self.referential, "version": self.version, "answers": self.answers,
            "knowledge": self.knowledge.to_state(), "seen": sorted(self.seen),
        }  # fmt: skip

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Positioning:
        return cls(
            referential=state["referential"], version=int(state["version"]),
            answers=int(state["answers"]), knowledge=Knowledge.from_state(state["knowledge"]),
            seen=set(state["seen"]),
        )  # fmt: skip
