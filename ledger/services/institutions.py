"""Results for institutions: school records, higher-education admission, CSV downloads.

Schools (livret scolaire) and the admission platform (Parcoursup) receive results
without anyone retyping them (docs/domain.md, "Institutions"). Every answer
is a signed document: a compact JWS by the ledger's current key over the JSON,
which lists the events it derives from (seq and hash), so the receiving system
keeps a proof it can check later with the public JWKS alone.

The read model is untrusted: it only says where to look. Each pupil's record is
built from their signed `CandidateRegistered` (school, subject, sealed identity
and INE) and from each certificate's verified events (`verified_certificate`,
as the verify page does); the session and course aggregates say whether a
result without a certificate is still pending. Any disagreement refuses the
whole document (`integrity-failure`) and raises the alarm: the ledger never
signs a false document. Nor does it sign one false by omission: which pupils a
school has and which courses and certificates each pupil has come from the log
(`ledger/store/rosters.py`, kept folds under a MAC), and a row the read model
lacks refuses the document too. Lookups never scan the log: by INE through the
keyed-hash index, by school through the read model's index on the UAI, then a
few events per pupil and the events since the kept fold.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ledger import crypto
from ledger.domain import clock
from ledger.domain.base import DomainError, NotFound
from ledger.domain.candidate import Candidate
from ledger.domain.course import Course
from ledger.domain.referential import COMPETENCE_CODES, Referential
from ledger.domain.scoring import VALIDATED
from ledger.domain.session import PROCESSED, Session
from ledger.envelope import Envelope
from ledger.projections.certificates import by_candidate, by_code
from ledger.projections.courses import history_of
from ledger.projections.profiles import pupils_of, registration_of
from ledger.services.certification import load_aggregate
from ledger.services.verification import (
    check_envelope,
    failed_checks,
    trusted_keys,
    verified_certificate,
)
from ledger.store.application import Ledger
from ledger.store.external_ids import ExternalIds
from ledger.store.rosters import CERTIFICATES, COURSES, Roster, Rosters
from ledger.trust import KeyHistory

if TYPE_CHECKING:
    from ledger.audit.tail import TailVerifier

DOCUMENT_TYPE = "results+jws"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CSV_HEAD = ["ine", "last_name", "first_name", "birth_date", "status", "pix_score", "code",
            "passed_on", "issued_on", "valid_until", "centre"]  # fmt: skip
Registration = tuple[str, str, dict[str, Any], Any, int]
REGISTERED = Candidate.Registered.TYPE
PENDING, NOT_CERTIFIED = "pending", "not-certified"
VALIDATED_STATUSES = ("valid", "expired")
RESULT_STATUSES = (PENDING, *VALIDATED_STATUSES, "cancelled", NOT_CERTIFIED)
NO_RESULT = dict.fromkeys(
    ("pix_score", "code", "passed_on", "issued_on", "valid_until", "centre", "domains")
)
Sources = dict[int, str]  # seq -> hash of the signed events a document derives from


class IntegrityFailure(DomainError):
    """The log does not back what the read model says: no document is signed."""

    code = "integrity-failure"
    status = 503


class InstitutionService:
    def __init__(
        self,
        ledger: Ledger,
        ref: Referential,
        tail: TailVerifier,
        alarm: Callable[[dict[str, object]], None],
        fresh: Callable[[], int],
    ):
        self.ledger = ledger
        self.ref = ref
        self.tail = tail
        self.alarm = alarm
        self.fresh = fresh
        self.external_ids = ExternalIds(ledger.db, ledger.keyring)
        self.rosters = Rosters(ledger.db, ledger.keyring)

    # --- signed documents ------------------------------------------------------

    def signed(self, kind: str, body: dict[str, Any], sources: Sources) -> dict[str, Any]:
        """The document and its JWS; `sources` are the events it derives from."""
        seqs = sorted(sources)
        document = {
            "kind": kind,
            "issued_at": clock.now().isoformat(timespec="seconds"),
            "derived_from_seqs": seqs,
            "derived_from": [{"seq": seq, "hash": sources[seq]} for seq in seqs],
            **body,
        }
        jws = crypto.compact_jws(document, self.ledger.signing_key(), DOCUMENT_TYPE)
        return {"document": document, "jws": jws}

    def _refuse(self, what: str, problems: list[dict[str, Any]]) -> IntegrityFailure:
        """Record the alarm (readiness fails) and the error that refuses the document."""
        self.alarm({"document": what, "problems": problems})
        return IntegrityFailure(f"{what} does not verify against the log", problems=problems)

    # --- a pupil's signed registration -------------------------------------------

    def _registration(
        self, reg: Registration, keys: KeyHistory, school: str | None = None
    ) -> Envelope:
        """The signed registration the row points to; it must say what the row says."""
        candidate, subject, identity, external, seq = reg
        env = self.ledger.recorder.envelope(seq)
        if env is None or (env.type, env.stream) != (REGISTERED, candidate):
            raise self._refuse(f"candidate {candidate}", [{"check": "missing", "seq": seq}])
        check = check_envelope(self.ledger, env, keys)
        failed = failed_checks(check)
        data = env.data
        signed_as = (data.get("subject"), data.get("identity"), data.get("external_id"))
        if signed_as != (subject, identity, external):
            failed.append("read-model")
        if school is not None and data.get("school") != school:
            failed.append("school")
        if failed:
            raise self._refuse(
                f"candidate {candidate}", [{"check": name, "seq": seq} for name in failed]
            )
        return env

    # --- what the log lists: no row may be left out ---------------------------------

    def _bound(self) -> int:
        """The log's head, once the read models were brought up to it (`fresh`): the lists
        are folded up to it. Never the read models' own positions: the database holds
        them, and one set back would hide every later row from the comparison."""
        return self.fresh()

    def _reading(self, *rosters: Roster, upto: int | None = None) -> Reading:
        """What a document is checked against, up to `upto` (default: a fresh bound)."""
        listed: dict[str, dict[str, list[str]]] = {}
        for roster in rosters:
            listed |= roster.pupils
        return Reading(trusted_keys(self.ledger), listed, self._bound() if upto is None else upto)

    def _listed(self, registration: Envelope, reading: Reading) -> dict[str, list[str]]:
        """The candidate's courses and certificates as the log lists them."""
        candidate = registration.stream
        if candidate not in reading.listed:
            since = (registration.seq, registration.hash)
            reading.listed |= self.rosters.of_candidate(candidate, reading.upto, since).pupils
        return reading.listed[candidate]

    def _complete(self, what: str, listed: list[str], held: list[str]) -> None:
        """Every id the log lists must have its read-model row: an omission is refused."""
        missing = sorted(set(listed) - set(held))
        if missing:
            raise self._refuse(what, [{"check": "missing", "id": id_} for id_ in missing])

    def _school_regs(self, uai: str, upto: int) -> tuple[list[Registration], Roster]:
        """The read model's pupils of `uai`, refused if one the log registered up to `upto`
        is missing."""
        roster = self.rosters.of_school(uai, upto)
        with self.ledger.db.read() as cur:
            regs = pupils_of(cur, uai)
        self._complete(f"school {uai}", list(roster.pupils), [reg[0] for reg in regs])
        return regs, roster

    # --- a pupil's certificates, verified -----------------------------------------

    def _certificates(
        self, candidate: str, listed: list[str], reading: Reading
    ) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """(public view, signed row) of each of the candidate's certificates, by issued seq;
        every one the log `listed` must be there."""
        with self.ledger.db.read() as cur:
            codes = [row["code"] for row in by_candidate(cur, candidate)]
        self._complete(f"candidate {candidate}", listed, codes)
        found = []
        for code in codes:
            checked = verified_certificate(self.ledger, self.ref, code, reading.keys, self.tail)
            view, row = checked if checked else (None, None)
            if row is None or row["candidate"] != candidate:
                problems = view["integrity"]["problems"] if view else [{"check": "missing"}]
                raise self._refuse(f"certificate {code}", problems)
            found.append((view, row))
        return sorted(found, key=lambda pair: pair[1]["issued_seq"])

    def _result(self, view: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
        """Status and dates; levels and pix score only while the certificate is validated."""
        validated = view["status"] in VALIDATED_STATUSES
        return {
            "status": view["status"],
            "pix_score": view["pix_score"] if validated else None,
            "code": view["code"],
            "passed_on": view["passed_on"],
            "issued_on": view["issued_on"],
            "valid_until": view["valid_until"],
            "centre": {"name": row["centre_name"], "city": row["centre_city"]},
            "domains": view["domains"] if validated else None,
        }

    # --- a result without a certificate ---------------------------------------------

    def _load(self, reading: Reading, cls: type[Any], id_: str, what: str) -> Any:
        """An aggregate from the log, once per document (a class shares its session)."""
        if (what, id_) not in reading.loaded:
            reading.loaded[what, id_] = load_aggregate(self.ledger, cls, id_, what)
        return reading.loaded[what, id_]

    def _course_status(
        self, candidate: str, course_id: str | None, absent: str, reading: Reading
    ) -> str:
        """`not-certified` once the course's session is published, `pending` before.

        A validated result in a published session has a certificate: its absence
        means the read model lost it, so the document is refused.
        """
        if course_id is None:
            return absent
        try:
            course = self._load(reading, Course, course_id, "course")
            session = self._load(reading, Session, course.session, "session")
        except NotFound:  # the read model names a course the log does not hold
            raise self._refuse(f"course {course_id}", [{"check": "missing", "seq": None}]) from None
        if course.candidate != candidate or session.courses.get(candidate) != course_id:
            raise self._refuse(f"course {course_id}", [{"check": "read-model", "seq": None}])
        if session.state != PROCESSED:
            return PENDING
        if (course.latest_result or {}).get("status") == VALIDATED:
            raise self._refuse(f"course {course_id}", [{"check": "missing", "seq": None}])
        return NOT_CERTIFIED

    def _latest_course(self, candidate: str, listed: list[str]) -> str | None:
        """The read model's latest course; every one the log `listed` must be there."""
        with self.ledger.db.read() as cur:
            courses = [row["course"] for row in history_of(cur, candidate)]
        self._complete(f"candidate {candidate}", listed, courses)
        return courses[-1] if courses else None

    # --- a pupil's record --------------------------------------------------------

    def _pupil(
        self,
        reg: Registration,
        reading: Reading,
        school: str | None = None,
        only: Callable[[dict[str, Any]], bool] | None = None,
        course: Callable[[str], str | None] | None = None,
        absent: str = PENDING,
    ) -> tuple[dict[str, Any], Sources]:
        """One pupil's record from signed events: the latest certificate `only` keeps, or
        the status of the `course` (default: their latest; `absent` without one)."""
        env = self._registration(reg, reading.keys, school)
        candidate = env.stream
        data = env.data
        opened = self.ledger.vault.open_or_none(data["identity"]) or {}
        external = data.get("external_id")
        record: dict[str, Any] = {
            "candidate": candidate,
            "school": data.get("school"),
            "audience": data["audience"],
            "ine": self.ledger.vault.open_or_none(external) if external else None,
            "last_name": opened.get("last_name"),
            "first_name": opened.get("first_name"),
            "birth_date": opened.get("birth_date"),
        }
        sources = {env.seq: env.hash}
        listed = self._listed(env, reading)
        certificates = [
            (view, row)
            for view, row in self._certificates(candidate, listed[CERTIFICATES], reading)
            if not only or only(row)
        ]
        if certificates:
            view, row = certificates[-1]
            record.update(self._result(view, row))
            sources |= {check["seq"]: check["hash"] for check in view["events"]}
        else:
            course_id = (
                course(candidate) if course else self._latest_course(candidate, listed[COURSES])
            )
            status = self._course_status(candidate, course_id, absent, reading)
            record.update(status=status, **NO_RESULT)
        return record, sources

    def _records(
        self,
        regs: list[Registration],
        reading: Reading,
        keep: Callable[[dict[str, Any]], bool] | None = None,
        **choose: Any,
    ) -> tuple[list[dict[str, Any]], Sources]:
        """Every registration checked (a tampered row refuses whatever `keep` says)."""
        records, sources = [], {}
        for reg in regs:
            record, used = self._pupil(reg, reading, **choose)
            if keep is None or keep(record):
                records.append(record)
                sources |= used
        return records, sources

    def school_rows(
        self, uai: str, audience: str | None = None
    ) -> tuple[list[dict[str, Any]], Sources]:
        """Every pupil the log registered with `uai`, each checked against its registration;
        `audience` keeps one class (its signed audience)."""
        upto = self._bound()
        regs, roster = self._school_regs(uai, upto)
        keep = (lambda record: record["audience"] == audience) if audience else None
        return self._records(regs, self._reading(roster, upto=upto), keep, school=uai)

    def school_records(self, uai: str, audience: str | None = None) -> dict[str, Any]:
        """Livret scolaire: every pupil of the school (or of one audience), pending ones included."""
        records, sources = self.school_rows(uai, audience)
        body = {"school": uai, **({"audience": audience} if audience else {}), "pupils": records}
        return self.signed("school-records", body, sources)

    # --- admission lookups ---------------------------------------------------------

    def _admission(
        self,
        regs: list[Registration],
        query: dict[str, str],
        reading: Reading | None = None,
        **choose: Any,
    ) -> dict[str, Any]:
        if not regs:
            raise NotFound("no candidate matches this query")
        reading = reading or self._reading()
        records, sources = self._records(regs, reading, **choose)
        return self.signed("admission-results", {"query": query, "results": records}, sources)

    def by_ine(self, ine: str) -> dict[str, Any]:
        """One keyed-hash look-up, then the signed registration decides (the table is a hint)."""
        held = self.external_ids.holder(ine)
        if not held:
            return self._admission([], {"ine": ine})
        reading = self._reading()
        reg = self._registered_with(ine, *held, reading.keys)
        return self._admission([reg] if reg else [], {"ine": ine}, reading)

    def _registered_with(
        self, ine: str, candidate: str, subject: str, keys: KeyHistory
    ) -> Registration | None:
        """The candidate's registration as signed, if it is theirs and holds this INE.

        A row pointing at another candidate (or a stale one) opens to another INE, or
        to nothing once erased: no result rather than someone else's.
        """
        with self.ledger.db.read() as cur:
            projected = registration_of(cur, candidate)
        if projected is None:
            return None
        env = self._registration(projected, keys)
        sealed = env.data.get("external_id")
        opened = self.ledger.vault.open_or_none(sealed)
        if env.data.get("subject") != subject or not _same_id(opened, ine):
            return None
        return projected

    def by_identity(self, uai: str, last: str, first: str, birth: str) -> dict[str, Any]:
        """The school's pupils as the log lists them, then the one with this identity."""
        upto = self._bound()
        regs, roster = self._school_regs(uai, upto)
        wanted = (last.casefold(), first.casefold(), birth)
        found = [r for r in regs if _identity_key(self.ledger.vault.open_or_none(r[2])) == wanted]
        return self._admission(
            found,
            {"school": uai, "last_name": last, "first_name": first, "birth_date": birth},
            self._reading(roster, upto=upto),
            school=uai,
        )

    def by_code(self, code: str) -> dict[str, Any]:
        """The certificate with this code (normalized, as the verify site reads it), never
        another of the same candidate."""
        with self.ledger.db.read() as cur:
            cert = by_code(cur, code)
            profile = registration_of(cur, cert["candidate"]) if cert else None
        if profile is None:
            raise NotFound(f"no certificate {code}")
        return self._admission([profile], {"code": code}, only=lambda row: row["code"] == code)

    # --- CSV ---------------------------------------------------------------------

    def session_rows(self, session: Session) -> list[dict[str, Any]]:
        """One record per enrolled candidate (the session's signed list): their certificate
        from this session, or the status of their course in it (`pending` until the session
        is published)."""
        with self.ledger.db.read() as cur:
            found = {c: registration_of(cur, c) for c in session.enrolled}
        regs = [reg for reg in found.values() if reg is not None]
        self._complete(f"session {session.id}", list(session.enrolled), [r[0] for r in regs])
        session_id = str(session.id)
        return self._records(
            regs,
            self._reading(),
            only=lambda row: row["session"] == session_id,
            course=session.courses.get,
            absent=NOT_CERTIFIED if session.state == PROCESSED else PENDING,
        )[0]


@dataclass
class Reading:
    """What one document is checked against: the trusted keys, the log's lists of each
    candidate's courses and certificates up to `upto`, and the aggregates loaded so far."""

    keys: KeyHistory
    listed: dict[str, dict[str, list[str]]]
    upto: int
    loaded: dict[tuple[str, str], Any] = field(default_factory=dict)


def _same_id(opened: Any, wanted: str) -> bool:
    """As the index compares them: letters and digits, case-insensitive."""
    return isinstance(opened, str) and opened.strip().casefold() == wanted.strip().casefold()


def _identity_key(identity: dict[str, Any] | None) -> tuple[str, str, str] | None:
    if identity is None:
        return None
    return (
        identity["last_name"].casefold(),
        identity["first_name"].casefold(),
        identity["birth_date"],
    )


def safe_cell(value: Any) -> str:
    """A spreadsheet must not run a cell as a formula (CSV injection): prefix those with '."""
    text = "" if value is None else str(value)
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


def results_csv(records: list[dict[str, Any]]) -> bytes:
    """UTF-8 with BOM (spreadsheets read accents right), one row per candidate, a level column
    per competence."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_HEAD + [f"level_{code}" for code in COMPETENCE_CODES])
    for record in records:
        levels = {
            c["code"]: c["level"] for d in record.get("domains") or [] for c in d["competences"]
        }
        row = [record.get(column) for column in CSV_HEAD[:-1]]
        row.append((record.get("centre") or {}).get("name"))
        row += [levels.get(code, "") for code in COMPETENCE_CODES]
        writer.writerow([safe_cell(cell) for cell in row])
    return ("\ufeff" + out.getvalue()).encode("utf-8")
