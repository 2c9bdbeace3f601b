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
signs a false document. Lookups never scan the log: by INE through the
keyed-hash index, by school through the read model's index on the UAI, then a
few events per pupil.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
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
from ledger.services.verification import check_envelope, trusted_keys, verified_certificate
from ledger.store.application import Ledger
from ledger.store.external_ids import ExternalIds
from ledger.trust import KeyHistory

if TYPE_CHECKING:
    from ledger.audit.tail import TailVerifier

DOCUMENT_TYPE = "results+jws"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CSV_HEAD = ["ine", "last_name", "first_name", "birth_date", "status", "pix_score", "code",
            "passed_on", "issued_on", "valid_until", "centre"]  # fmt: skip
Registration = tuple[str, str, dict[str, Any], Any, int]
REGISTERED = Candidate.Registered.TYPE
ENVELOPE_CHECKS = ("hash_valid", "key_trusted", "signature_valid", "chain_link_valid")
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
        tail: TailVerifier | None = None,
        alarm: Callable[[dict[str, object]], None] | None = None,
    ):
        self.ledger = ledger
        self.ref = ref
        self.tail = tail
        self.alarm = alarm
        self.external_ids = ExternalIds(ledger.db, ledger.keyring)

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
        if self.alarm is not None:
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
        failed = [name for name in ENVELOPE_CHECKS if not check[name]]
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

    # --- a pupil's certificates, verified -----------------------------------------

    def _certificates(
        self, candidate: str, keys: KeyHistory
    ) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """(public view, signed row) of each of the candidate's certificates, by issued seq."""
        with self.ledger.db.read() as cur:
            codes = [row["code"] for row in by_candidate(cur, candidate)]
        found = []
        for code in codes:
            checked = verified_certificate(self.ledger, self.ref, code, keys, self.tail)
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

    def _course_status(self, candidate: str, course_id: str | None, absent: str) -> str:
        """`not-certified` once the course's session is published, `pending` before.

        A validated result in a published session has a certificate: its absence
        means the read model lost it, so the document is refused.
        """
        if course_id is None:
            return absent
        try:
            course = load_aggregate(self.ledger, Course, course_id, "course")
            session = load_aggregate(self.ledger, Session, course.session, "session")
        except NotFound:  # the read model names a course the log does not hold
            raise self._refuse(f"course {course_id}", [{"check": "missing", "seq": None}]) from None
        if course.candidate != candidate or session.courses.get(candidate) != course_id:
            raise self._refuse(f"course {course_id}", [{"check": "read-model", "seq": None}])
        if session.state != PROCESSED:
            return PENDING
        if (course.latest_result or {}).get("status") == VALIDATED:
            raise self._refuse(f"course {course_id}", [{"check": "missing", "seq": None}])
        return NOT_CERTIFIED

    def _latest_course(self, candidate: str) -> str | None:
        with self.ledger.db.read() as cur:
            courses = history_of(cur, candidate)
        return courses[-1]["course"] if courses else None

    # --- a pupil's record --------------------------------------------------------

    def _pupil(
        self,
        reg: Registration,
        keys: KeyHistory,
        school: str | None = None,
        only: Callable[[dict[str, Any]], bool] | None = None,
        course: Callable[[str], str | None] | None = None,
        absent: str = PENDING,
    ) -> tuple[dict[str, Any], Sources]:
        """One pupil's record from signed events: the latest certificate `only` keeps, or
        the status of the `course` (default: their latest; `absent` without one)."""
        env = self._registration(reg, keys, school)
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
        certificates = [
            (view, row)
            for view, row in self._certificates(candidate, keys)
            if not only or only(row)
        ]
        if certificates:
            view, row = certificates[-1]
            record.update(self._result(view, row))
            sources |= {check["seq"]: check["hash"] for check in view["events"]}
        else:
            course_id = (course or self._latest_course)(candidate)
            status = self._course_status(candidate, course_id, absent)
            record.update(status=status, **NO_RESULT)
        return record, sources

    def _records(
        self,
        regs: list[Registration],
        keep: Callable[[dict[str, Any]], bool] | None = None,
        **choose: Any,
    ) -> tuple[list[dict[str, Any]], Sources]:
        """Every registration checked (a tampered row refuses whatever `keep` says)."""
        keys = trusted_keys(self.ledger)
        records, sources = [], {}
        for reg in regs:
            record, used = self._pupil(reg, keys, **choose)
            if keep is None or keep(record):
                records.append(record)
                sources |= used
        return records, sources

    def school_rows(
        self, uai: str, audience: str | None = None
    ) -> tuple[list[dict[str, Any]], Sources]:
        """Every pupil the read model files under `uai`, each checked against its registration;
        `audience` keeps one class (its signed audience)."""
        with self.ledger.db.read() as cur:
            regs = pupils_of(cur, uai)
        keep = (lambda record: record["audience"] == audience) if audience else None
        return self._records(regs, keep, school=uai)

    def school_records(self, uai: str, audience: str | None = None) -> dict[str, Any]:
        """Livret scolaire: every pupil of the school (or of one audience), pending ones included."""
        records, sources = self.school_rows(uai, audience)
        body = {"school": uai, **({"audience": audience} if audience else {}), "pupils": records}
        return self.signed("school-records", body, sources)

    # --- admission lookups ---------------------------------------------------------

    def _admission(
        self, regs: list[Registration], query: dict[str, str], **choose: Any
    ) -> dict[str, Any]:
        if not regs:
            raise NotFound("no candidate matches this query")
        records, sources = self._records(regs, **choose)
        return self.signed("admission-results", {"query": query, "results": records}, sources)

    def by_ine(self, ine: str) -> dict[str, Any]:
        """One keyed-hash look-up, then the signed registration decides (the table is a hint)."""
        held = self.external_ids.holder(ine)
        reg = self._registered_with(ine, *held) if held else None
        return self._admission([reg] if reg else [], {"ine": ine})

    def _registered_with(self, ine: str, candidate: str, subject: str) -> Registration | None:
        """The candidate's registration as signed, if it is theirs and holds this INE.

        A row pointing at another candidate (or a stale one) opens to another INE, or
        to nothing once erased: no result rather than someone else's.
        """
        with self.ledger.db.read() as cur:
            projected = registration_of(cur, candidate)
        if projected is None:
            return None
        env = self._registration(projected, trusted_keys(self.ledger))
        sealed = env.data.get("external_id")
        opened = self.ledger.vault.open_or_none(sealed)
        if env.data.get("subject") != subject or not _same_id(opened, ine):
            return None
        return projected

    def by_identity(self, uai: str, last: str, first: str, birth: str) -> dict[str, Any]:
        with self.ledger.db.read() as cur:
            regs = pupils_of(cur, uai)
        wanted = (last.casefold(), first.casefold(), birth)
        found = [r for r in regs if _identity_key(self.ledger.vault.open_or_none(r[2])) == wanted]
        return self._admission(
            found,
            {"school": uai, "last_name": last, "first_name": first, "birth_date": birth},
            school=uai,
        )

    def by_code(self, code: str) -> dict[str, Any]:
        """The certificate with this code, never another of the same candidate."""
        with self.ledger.db.read() as cur:
            cert = by_code(cur, code)
            profile = registration_of(cur, cert["candidate"]) if cert else None
        if profile is None:
            raise NotFound(f"no certificate {code}")
        return self._admission([profile], {"code": code}, only=lambda row: row["code"] == code)

    # --- CSV ---------------------------------------------------------------------

    def session_rows(self, session: Session) -> list[dict[str, Any]]:
        """One record per enrolled candidate: their certificate from this session, or the
        status of their course in it (`pending` until the session is published)."""
        with self.ledger.db.read() as cur:
            regs = [r for c in session.enrolled if (r := registration_of(cur, c)) is not None]
        session_id = str(session.id)
        return self._records(
            regs,
            only=lambda row: row["session"] == session_id,
            course=session.courses.get,
            absent=NOT_CERTIFIED if session.state == PROCESSED else PENDING,
        )[0]


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
