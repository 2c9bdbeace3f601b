"""Results for institutions: school records, higher-education admission, CSV downloads.

Schools (livret scolaire) and the admission platform (Parcoursup) receive results
without anyone retyping them (docs/domain.md, "Institutions"). Every answer
is a signed document: a compact JWS by the ledger's current key over the JSON,
which lists the `seq`s of the events it derives from, so the receiving system
keeps a proof it can check later with the public JWKS alone.

A pupil belongs to a school when the platform registered them with that
school's UAI (`school` in `CandidateRegistered`); older registrations have none.
Lookups never scan every candidate: by INE through the keyed-hash index of
external ids, by school through the read model's index on the UAI.
"""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import Any

from ledger import crypto
from ledger.domain import clock
from ledger.domain.base import DomainError, NotFound
from ledger.domain.candidate import Candidate
from ledger.domain.referential import COMPETENCE_CODES, Referential
from ledger.projections.certificates import by_candidate, by_code, public_status
from ledger.projections.profiles import pupils_of, registration_of
from ledger.services.verification import check_envelope, grouped_levels, trusted_keys
from ledger.store.application import Ledger
from ledger.store.external_ids import ExternalIds

DOCUMENT_TYPE = "results+jws"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CSV_HEAD = ["ine", "last_name", "first_name", "birth_date", "status", "pix_score", "code",
            "passed_on", "issued_on", "valid_until", "centre"]  # fmt: skip
Registration = tuple[str, str, dict[str, Any], Any, int]
REGISTERED = Candidate.Registered.TYPE
ENVELOPE_CHECKS = ("hash_valid", "key_trusted", "signature_valid", "chain_link_valid")


class RegistrationUnsound(DomainError):
    """The signed registration an index row leads to does not verify: nothing is shown."""

    code = "integrity-failure"
    status = 503


class InstitutionService:
    def __init__(self, ledger: Ledger, ref: Referential):
        self.ledger = ledger
        self.ref = ref
        self.external_ids = ExternalIds(ledger.db, ledger.keyring)

    # --- signed documents ------------------------------------------------------

    def signed(self, kind: str, body: dict[str, Any], seqs: set[int]) -> dict[str, Any]:
        """The document and its JWS; `seqs` are the events it derives from."""
        document = {
            "kind": kind,
            "issued_at": clock.now().isoformat(timespec="seconds"),
            "derived_from_seqs": sorted(seqs),
            **body,
        }
        jws = crypto.compact_jws(document, self.ledger.signing_key(), DOCUMENT_TYPE)
        return {"document": document, "jws": jws}

    # --- reading pupils --------------------------------------------------------

    def _pupil(self, reg: Registration, today: date) -> tuple[dict[str, Any], set[int]]:
        """One pupil's record: `pending` until a certificate is published for them."""
        candidate, _subject, identity, external, seq = reg
        opened = self.ledger.vault.open_or_none(identity) or {}
        ine = self.ledger.vault.open_or_none(external) if external else None
        record: dict[str, Any] = {
            "candidate": candidate,
            "ine": ine,
            "last_name": opened.get("last_name"),
            "first_name": opened.get("first_name"),
            "birth_date": opened.get("birth_date"),
            "status": "pending",
        }
        seqs = {seq}
        with self.ledger.db.read() as cur:
            certificates = by_candidate(cur, candidate)
        if certificates:
            cert = certificates[-1]
            record.update(self._result(cert, today))
            seqs |= {entry["seq"] for entry in cert["history"]}
        return record, seqs

    def _result(self, cert: dict[str, Any], today: date) -> dict[str, Any]:
        """Status and levels; the pix score only while the certificate is validated."""
        status = public_status(cert, today)["status"]
        validated = status in ("valid", "expired")
        return {
            "status": status,
            "pix_score": cert["pix_score"] if validated else None,
            "code": cert["code"],
            "passed_on": cert["passed_on"],
            "issued_on": cert["issued_on"],
            "valid_until": cert["valid_until"],
            "centre": {"name": cert["centre_name"], "city": cert["centre_city"]},
            "domains": grouped_levels(self.ref, cert["competences"] if validated else []),
        }

    def _records(self, regs: list[Registration]) -> tuple[list[dict[str, Any]], set[int]]:
        today = clock.now().date()
        records, seqs = [], set()
        for reg in regs:
            record, used = self._pupil(reg, today)
            records.append(record)
            seqs |= used
        return records, seqs

    def school_rows(self, uai: str) -> tuple[list[dict[str, Any]], set[int]]:
        with self.ledger.db.read() as cur:
            regs = pupils_of(cur, uai)
        return self._records(regs)

    def school_records(self, uai: str) -> dict[str, Any]:
        """Livret scolaire: every pupil of the school, pending ones included."""
        records, seqs = self.school_rows(uai)
        return self.signed("school-records", {"school": uai, "pupils": records}, seqs)

    # --- admission lookups ---------------------------------------------------------

    def _admission(self, regs: list[Registration], query: dict[str, str]) -> dict[str, Any]:
        if not regs:
            raise NotFound("no candidate matches this query")
        records, seqs = self._records(regs)
        return self.signed("admission-results", {"query": query, "results": records}, seqs)

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
        env = self.ledger.recorder.envelope(projected[4]) if projected else None
        if env is None or (env.type, env.stream) != (REGISTERED, candidate):
            return None
        check = check_envelope(self.ledger, env, trusted_keys(self.ledger))
        if not all(check[name] for name in ENVELOPE_CHECKS):
            raise RegistrationUnsound(f"the registration at seq {env.seq} does not verify")
        sealed = env.data.get("external_id")
        opened = self.ledger.vault.open_or_none(sealed)
        if env.data.get("subject") != subject or not _same_id(opened, ine):
            return None
        return candidate, subject, env.data["identity"], sealed, env.seq

    def by_identity(self, uai: str, last: str, first: str, birth: str) -> dict[str, Any]:
        with self.ledger.db.read() as cur:
            regs = pupils_of(cur, uai)
        wanted = (last.casefold(), first.casefold(), birth)
        found = [r for r in regs if _identity_key(self.ledger.vault.open_or_none(r[2])) == wanted]
        return self._admission(
            found, {"school": uai, "last_name": last, "first_name": first, "birth_date": birth}
        )

    def by_code(self, code: str) -> dict[str, Any]:
        with self.ledger.db.read() as cur:
            cert = by_code(cur, code)
            profile = registration_of(cur, cert["candidate"]) if cert else None
        if profile is None:
            raise NotFound(f"no certificate {code}")
        return self._admission([profile], {"code": code})

    # --- CSV ---------------------------------------------------------------------

    def session_rows(self, enrolled: list[str]) -> list[dict[str, Any]]:
        """One record per enrolled candidate, `pending` until the session is published."""
        with self.ledger.db.read() as cur:
            regs = [r for c in enrolled if (r := registration_of(cur, c)) is not None]
        return self._records(regs)[0]


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
            c["code"]: c["level"] for d in record.get("domains", []) for c in d["competences"]
        }
        row = [record.get(column) for column in CSV_HEAD[:-1]]
        row.append((record.get("centre") or {}).get("name"))
        row += [levels.get(code, "") for code in COMPETENCE_CODES]
        writer.writerow([safe_cell(cell) for cell in row])
    return ("\ufeff" + out.getvalue()).encode("utf-8")
