"""Issue an attestation PDF from the certificate's verified, signed events.

Only a certificate whose events verify (hash, trusted signature, chain link,
agreement with the read model) gets a PDF; the PDF shows its current state
(a rescored certificate its new levels), and a cancelled one gets none. Who
may download is decided here too, from the same verified events: the holder
(`candidate:<id>` token), the centre that examined them (`centre:<id>`), or
an operator (`admin`).
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

from ledger.attestation import ca, signing
from ledger.attestation.pdf import Attestation, render
from ledger.domain.referential import Referential
from ledger.qr_token import qr_url
from ledger.services.attestation_check import ca_event_sound
from ledger.services.qr import issue_token
from ledger.services.verification import INTEGRITY_FAILURE, verified_certificate
from ledger.store.application import Ledger
from ledger.store.tokens import Principal


class AttestationRefused(Exception):
    """No attestation for this request: `status` and `kind` say how the API answers."""

    def __init__(self, status: int, kind: str, detail: str):
        super().__init__(detail)
        self.status, self.kind, self.detail = status, kind, detail


@dataclass(frozen=True)
class Verified:
    """A certificate whose events verified: its public view and the row they fold to."""

    view: dict[str, Any]
    row: dict[str, Any]


def verified(ledger: Ledger, ref: Referential, code: str, tail: Any = None) -> Verified:
    """The certificate re-verified now (with the process's own log audit, `tail`, if given)."""
    found = verified_certificate(ledger, ref, code, tail=tail)
    if found is None:
        raise AttestationRefused(404, "unknown-certificate", "no certificate has this code")
    view, row = found
    if view["status"] == INTEGRITY_FAILURE or row is None:
        raise AttestationRefused(
            409, "integrity-failure", "this certificate's stored events do not verify; no PDF"
        )
    return Verified(view, row)


def may_download(principal: Principal, row: dict[str, Any]) -> bool:
    """The holder, the centre that examined them, or an operator."""
    return (
        principal.is_admin
        or f"candidate:{row['candidate']}" in principal.scopes
        or f"centre:{row['centre_id']}" in principal.scopes
    )


def authorize(principal: Principal, cert: Verified) -> None:
    if not may_download(principal, cert.row):
        raise AttestationRefused(
            403,
            "not-your-attestation",
            "this token may not download this certificate's attestation",
        )


def content(ledger: Ledger, cert: Verified) -> Attestation:
    """What the PDF states, from the verified view; 410 when there is nothing to attest."""
    view, row = cert.view, cert.row
    if view["status"] == "cancelled":
        raise AttestationRefused(
            410, "certificate-cancelled", "a cancelled certificate gets no attestation"
        )
    identity = ledger.vault.open_or_none(row["holder"])
    if identity is None or view["holder"] is None:
        raise AttestationRefused(
            410, "holder-erased", "the holder's data was erased; no attestation is issued"
        )
    issuing = view["proof"]
    rescorings = [h for h in view["history"] if h["event"] == "rescored"]
    public_url = ledger.config.public_url
    return Attestation(
        code=view["code"],
        first_name=identity["first_name"],
        last_name=identity["last_name"],
        birth_date=identity["birth_date"],
        birth_place=str(identity.get("birth_place") or "—"),
        centre=row["centre_name"],
        centre_city=row["centre_city"],
        passed_on=view["passed_on"],
        issued_on=view["issued_on"],
        valid_until=view["valid_until"],
        pix_score=view["pix_score"],
        max_level=view["max_level"],
        domains=view["domains"],
        qr_url=qr_url(public_url, view["code"], issue_token(ledger, view)),
        verify_url=f"{public_url}/v/{view['code']}",
        issued_seq=issuing["seq"],
        issued_hash=issuing["hash"],
        rescored_on=rescorings[-1]["on"] if rescorings else None,
    )


class Attestations:
    """Signed attestation PDFs for one process; the signing identity is loaded once."""

    def __init__(self, ledger: Ledger, ref: Referential, tail: Any = None):
        self.ledger, self.ref, self.tail = ledger, ref, tail
        self._identity: ca.AttestationIdentity | None = None

    def identity(self) -> ca.AttestationIdentity:
        """The signing identity, its CA logged in the ledger before its first use."""
        if self._identity is None:
            identity = ca.load(self.ledger.config)
            ledger = self.ledger
            ca.ensure_published(ledger.recorder, identity, partial(ca_event_sound, ledger))
            self._identity = identity
        return self._identity

    def pdf(self, cert: Verified, lang: str = "fr") -> bytes:
        identity = self.identity()
        stamper = signing.timestamper(self.ledger.config.tsa_url)
        return signing.sign(render(content(self.ledger, cert), lang), identity, lang, stamper)

    def for_principal(self, principal: Principal, code: str, lang: str = "fr") -> bytes:
        cert = verified(self.ledger, self.ref, code, self.tail)
        authorize(principal, cert)
        return self.pdf(cert, lang)

    def session_zip(
        self, session_id: str, centre: str, codes: list[str], lang: str
    ) -> Iterator[bytes]:
        """A zip of the session's attestations, yielded file by file (cancelled ones skipped).

        Each certificate is verified on its own and must belong to this session
        and centre: the list of codes comes from a read model, which is untrusted.
        """
        self.identity()  # a missing signing identity fails before the first byte
        buffer = _ZipBuffer()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
            for code in codes:
                try:
                    cert = verified(self.ledger, self.ref, code, self.tail)
                    if cert.row["session"] != session_id or cert.row["centre_id"] != centre:
                        continue
                    pdf = self.pdf(cert, lang)
                except AttestationRefused:
                    continue
                archive.writestr(f"attestation-{code}-{lang}.pdf", pdf)
                yield buffer.take()
        yield buffer.take()


class _ZipBuffer(io.RawIOBase):
    """A write-only stream whose bytes are taken as they come: the zip never sits in memory."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._chunks.append(chunk)
        self._size += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self._size

    def take(self) -> bytes:
        out, self._chunks = b"".join(self._chunks), []
        return out
