"""Candidate commands: register, record positioning answers, erase personal data."""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from ledger.domain.base import Conflict, DomainError, NotFound
from ledger.domain.candidate import Answer, AnswerStream, Candidate, Positioning
from ledger.domain.erasure import Erasure
from ledger.domain.institution import UAI_FORMAT, is_uai
from ledger.domain.referential import Referential
from ledger.lru import LRU
from ledger.services import retrying
from ledger.store.answers import AnswerIndex
from ledger.store.application import Ledger
from ledger.store.external_ids import ExternalIds
from ledger.store.positioning import PositioningFolds

AUDIENCES = ("adult", "upper-secondary", "lower-secondary")
SUBJECTS_KEPT = 100_000  # candidates' subjects a process remembers (about 30 MB)


class InvalidIdentity(DomainError):
    code = "invalid-identity"
    status = 422


@dataclass(frozen=True)
class AnswerOutcome:
    answer_id: str
    candidate: str
    status: str  # "recorded" | "duplicate"
    seq: int | None


def load_candidate(ledger: Ledger, candidate_id: str, *, version: int | None = None) -> Candidate:
    """The candidate with its whole history (its knowledge), or as of `version`."""
    try:
        candidate = ledger.app.repository.get(UUID(candidate_id), version=version)
    except (ValueError, AggregateNotFoundError):
        raise NotFound(f"no candidate {candidate_id}") from None
    if not isinstance(candidate, Candidate):
        raise NotFound(f"no candidate {candidate_id}")
    return candidate


def refuse_erased(ledger: Ledger, candidate: Candidate, action: str) -> None:
    """409 once the candidate was erased: a signed fact would be written for nobody."""
    refuse_erased_subject(ledger, str(candidate.id), candidate.subject, action)


def refuse_erased_subject(ledger: Ledger, candidate_id: str, subject: str, action: str) -> None:
    if ledger.vault.is_erased(subject):
        raise erased_conflict(candidate_id, action)


def erased_conflict(candidate_id: str, action: str) -> Conflict:
    return Conflict(
        f"candidate {candidate_id} was erased: they can no longer {action}", candidate=candidate_id
    )


class RegisteredSubjects:
    """Each candidate's subject, remembered: a registration never changes, so it is read once."""

    def __init__(self, ledger: Ledger):
        self.ledger = ledger
        self._known: LRU[str] = LRU(SUBJECTS_KEPT)

    def of(self, candidate_id: str) -> str:
        subject = self._known.get(candidate_id)
        if subject is None:
            subject = registration(self.ledger, candidate_id).subject
            self._known[candidate_id] = subject
        return subject


def registration(ledger: Ledger, candidate_id: str) -> Candidate:
    """The candidate as registered: subject, sealed identity, audience, school; no answers.

    Those never change after registration, so one event is read, whatever the
    length of the history: for every rule that needs who, not what they know.
    """
    return load_candidate(ledger, candidate_id, version=1)


def positioning(ledger: Ledger, ref: Referential, candidate: Candidate) -> Positioning:
    """The registered candidate's knowledge and challenges seen, from a kept fold on.

    Reads the answers logged after the latest fold that still verifies, not the
    whole history (see ledger/store/positioning.py).
    """
    return PositioningFolds(ledger.db, ledger.keyring).positioning(ref, str(candidate.id))


class CandidateService:
    def __init__(self, ledger: Ledger, referential: Referential):
        self.ledger = ledger
        self.ref = referential
        self.external_ids = ExternalIds(ledger.db, ledger.keyring)
        self.answer_index = AnswerIndex(ledger.db)
        self.subjects = RegisteredSubjects(ledger)

    def register(
        self,
        identity: dict[str, Any],
        audience: str = "adult",
        external_id: str | None = None,
        school: str | None = None,
    ) -> tuple[Candidate, int]:
        """Seal identity under a fresh subject and append the registration.

        `school` (a UAI, not personal data) stays clear so the school's token
        can find its pupils without opening every identity.
        """
        if audience not in AUDIENCES:
            raise InvalidIdentity(f"audience must be one of {', '.join(AUDIENCES)}")
        if school is not None and not is_uai(school):
            raise InvalidIdentity(f"school must be a UAI: {UAI_FORMAT}", field="school")
        subject = str(uuid.uuid4())
        sealed_identity = self.ledger.vault.seal(subject, identity)
        sealed_external = self.ledger.vault.seal(subject, external_id) if external_id else None
        candidate = Candidate(
            subject=subject,
            identity=sealed_identity,
            external_id=sealed_external,
            audience=audience,
            school=school,
        )
        if external_id:
            self._claim(external_id, str(candidate.id), subject)
        try:
            (seq,) = self.ledger.save(candidate)
        except BaseException:
            if external_id:
                self.external_ids.release(str(candidate.id))
            raise
        return candidate, seq

    def _claim(self, external_id: str, candidate: str, subject: str) -> None:
        """Reserve the national id before the registration is logged; 409 naming its holder.

        A reservation left by a registration that never reached the log (a crash
        between the two) is taken over once stale (five minutes) rather than blocking the
        id for ever; a younger one may be a registration still saving: 409 "in progress".
        """
        holder = self.external_ids.claim(external_id, candidate, subject)
        if holder == candidate:
            return
        try:
            registration(self.ledger, holder)
        except NotFound:
            if self.external_ids.take_over(external_id, holder, candidate, subject):
                return
            raise Conflict(
                "external_id: a registration with this id is in progress", field="external_id"
            ) from None
        raise Conflict(
            f"external_id: already registered as candidate {holder}",
            field="external_id",
            candidate=holder,
        )

    def record_answers(self, answers: list[tuple[str, Answer]]) -> list[AnswerOutcome]:
        """Record a batch atomically: every answer is written, or none is."""
        return retrying(lambda: self._record_once(answers))

    def _record_once(self, answers: list[tuple[str, Answer]]) -> list[AnswerOutcome]:
        """Each candidate's stream read through the answer index, never replayed."""
        ids: dict[str, list[str]] = defaultdict(list)
        for candidate_id, answer in answers:
            ids[candidate_id].append(answer.answer_id)
        streams: dict[str, AnswerStream] = {}
        recorded: list[tuple[str, Answer, tuple[str, int] | None]] = []
        for candidate_id, answer in answers:
            if candidate_id not in streams:  # in order: the first refusal is the one reported
                streams[candidate_id] = self.answer_stream(candidate_id, ids[candidate_id])
            stream = streams[candidate_id]
            is_new = stream.record(self.ref, answer)
            at = (str(stream.candidate_id), stream.version) if is_new else None
            recorded.append((candidate_id, answer, at))
        events = [e for stream in streams.values() for e in stream.events]
        seqs = self.ledger.save(*events) if events else []
        seq_of = {
            (str(e.originator_id), e.originator_version): seq
            for e, seq in zip(events, seqs, strict=True)
        }
        return [
            AnswerOutcome(
                answer_id=answer.answer_id,
                candidate=candidate_id,
                status="duplicate" if at is None else "recorded",
                seq=None if at is None else seq_of[at],
            )
            for candidate_id, answer, at in recorded
        ]

    def answer_stream(self, candidate_id: str, answer_ids: list[str]) -> AnswerStream:
        """What recording these answers needs of a candidate who may answer (see `answering`):
        the erasure flag, head and answer ids in one read, the subject remembered."""
        subject = self.subjects.of(candidate_id)
        stream, erased = self.answer_index.answering(UUID(candidate_id), answer_ids, subject)
        if erased:
            raise erased_conflict(candidate_id, "answer")
        return stream

    def answering(self, candidate_id: str) -> Candidate:
        """The candidate as registered, refused (409) once erased: nobody is left to have answered.

        Not race-proof against an erasure committed between this read and the save,
        which at worst records sealed answers nobody can open any more.
        """
        candidate = registration(self.ledger, candidate_id)
        refuse_erased(self.ledger, candidate, "answer")
        return candidate

    def erase(self, subject: str, reason: str) -> int:
        """Delete the subject's key and record the erasure (reason code only) in the log."""
        erasure = Erasure.record(subject, reason)  # a bad reason refuses before anything is deleted
        outcome = self.ledger.vault.erase(subject)
        if outcome == "unknown":
            raise NotFound(f"no subject {subject}")
        if outcome == "already":
            raise Conflict(f"subject {subject} was already erased")
        self.external_ids.forget(subject)
        (seq,) = self.ledger.save(erasure)
        return seq
