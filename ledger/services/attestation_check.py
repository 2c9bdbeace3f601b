"""Check an attestation PDF someone hands in: signature, CA, QR token, certificate status now.

Used by the verify site's /scan page, `POST /api/v1/attestations/check` and
`ledger verify-pdf`. Four findings, each with a stable `reason` slug (pages
translate it) and an English sentence:

- signature: the one PAdES signature is intact and covers the whole file;
- chain: the signer's certificate chains to a CA whose fingerprint the ledger
  logged in a signed, trusted `attestation.CaPublished` event (the CA
  certificate itself travels inside the signature; the log says which to trust);
- qr: the QR code printed on the first page links to this site and its token
  verifies under the trusted keys;
- certificate: the ledger's verified view of the certificate now (valid,
  expired, cancelled, rescored since the PDF was made, integrity failure).

Nothing personal is reported: the code, the statuses and a link to the public
page, which shows what it always shows.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from asn1crypto import pem

from ledger import crypto
from ledger.attestation import ca, signing
from ledger.qr_image import ImageUnreadable, decode_qr
from ledger.qr_token import TokenInvalid, parse_qr_url, verify_token
from ledger.services.pdf_sandbox import LimitsExceeded, run_isolated
from ledger.services.qr import INVALID, OTHER, check_token
from ledger.services.verification import (
    INTEGRITY_FAILURE,
    check_envelope,
    failed_checks,
    trusted_jwks,
    trusted_keys,
)
from ledger.store.application import Ledger

PDF_MAGIC = b"%PDF-"
ViewOf = Callable[[str], "dict[str, Any] | None"]


class NotAPdf(ValueError):
    """The bytes are not a PDF at all: a 422 (or the page's message), not a report."""


@dataclass(frozen=True)
class Finding:
    """One check's outcome: `reason` is '' when it passed."""

    ok: bool
    reason: str = ""
    detail: str = ""


@dataclass
class Report:
    """Every finding about one PDF; `ok` only when all pass and the certificate is valid."""

    signature: Finding
    chain: Finding
    qr: Finding
    certificate: Finding
    code: str | None = None
    status: str | None = None  # valid expired cancelled rescored integrity-failure unknown other
    link: str | None = None  # the public page the QR code points to (path and token)
    signer: str = ""
    ca_fingerprint: str | None = None
    ca_seq: int | None = None
    signed_at: datetime | None = None  # when the PDF was made, from its signature

    @property
    def ok(self) -> bool:
        findings = (self.signature, self.chain, self.qr, self.certificate)
        return all(f.ok for f in findings)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "code": self.code,
            "status": self.status,
            "link": self.link,
            "signature": {**asdict(self.signature), "signer": self.signer or None},
            "chain": {
                **asdict(self.chain),
                "ca_fingerprint": self.ca_fingerprint,
                "ca_seq": self.ca_seq,
            },
            "signed_at": self.signed_at.isoformat() if self.signed_at else None,
            "qr": asdict(self.qr),
            "certificate": asdict(self.certificate),
        }


def require_pdf(data: bytes) -> None:
    if not data.lstrip(b"\r\n\t ")[:5] == PDF_MAGIC:
        raise NotAPdf("the file is not a PDF")


# --- signature and chain ---------------------------------------------------------


def logged_cas(ledger: Ledger) -> dict[str, int]:
    """Fingerprint -> seq of each CA whose CaPublished event verifies (hash, key, chain link).

    The database is untrusted: a CA event someone inserted without a trusted
    signature does not make its CA trusted.
    """
    keys = trusted_keys(ledger)
    trusted = {}
    for fingerprint, seqs in ca.published_seqs(ledger.recorder).items():
        sound = next((seq for seq in seqs if ca_event_sound(ledger, seq, keys)), None)
        if sound is not None:
            trusted[fingerprint] = sound
    return trusted


def ca_event_sound(ledger: Ledger, seq: int, keys: Any = None) -> bool:
    """The stored event at `seq` has its hash, a trusted signature and its chain link."""
    env = ledger.recorder.envelope(seq)
    if env is None:
        return False
    check = check_envelope(ledger, env, keys if keys is not None else trusted_keys(ledger))
    return not failed_checks(check)


@dataclass(frozen=True)
class Carried:
    """What the one signature carries: its CA chain, the signer's certificate, its time.

    The time is the signed `signingTime` attribute: covered by the signature,
    so trustworthy once the signature and its chain are.
    """

    chain: list[bytes]
    signer: bytes | None = None
    signed_at: datetime | None = None


def carried_by(pdf: bytes) -> Carried:
    """PEM certificates and signing time of the PDF's one signature (empty when unreadable)."""
    from pyhanko.pdf_utils.reader import PdfFileReader

    try:
        embedded = PdfFileReader(io.BytesIO(pdf), strict=False).embedded_signatures
        if len(embedded) != 1:
            return Carried([])
        signature = embedded[0]
        chain = [pem.armor("CERTIFICATE", c.dump()) for c in signature.other_embedded_certs]
        signer = signature.signer_cert
        return Carried(
            chain,
            pem.armor("CERTIFICATE", signer.dump()) if signer is not None else None,
            signature.self_reported_timestamp,
        )
    except Exception:  # pyHanko raises many kinds on garbage; validate() reports it
        return Carried([])


PENDING = Finding(False, "not-checked", "not checked")
NO_SIGNATURE = Finding(False, "no-signature", "no readable signature to follow")
FOREIGN_CA = Finding(
    False, "ca-not-published", "the signer's CA is not one this ledger published in its log"
)
BROKEN_CHAIN = Finding(
    False, "chain-broken", "the signer's certificate does not chain to the published attestation CA"
)
UNSIGNED = ("unreadable", "signature-count", "unreadable-signature")


def check_signature(pdf: bytes, published: dict[str, int]) -> Report:
    """A report with the signature and chain findings, the signer, the CA and the time."""
    carried = carried_by(pdf)
    root = next(((c, f) for c in carried.chain if (f := _fingerprint(c)) in published), None)
    # Without a logged CA, integrity is still judged, against the carried chain.
    anchor = root[0] if root else next(iter(carried.chain), carried.signer)
    try:  # no certificate at all: validate() still says how many signatures there are
        validated = signing.validate(pdf, anchor or b"")
    except crypto.CryptoError:
        validated = signing.SignatureReport(
            False, False, False, "the signature carries no certificate", "", "unreadable-signature"
        )
    signature = _signature_finding(validated)
    report = Report(signature, PENDING, PENDING, PENDING, signed_at=carried.signed_at)
    report.signer = validated.signer.split(",")[0].removeprefix("Common Name: ")
    if validated.problem in UNSIGNED:
        report.chain = NO_SIGNATURE
    elif root is None:
        report.chain = FOREIGN_CA
    else:
        report.ca_fingerprint, report.ca_seq = root[1], published[root[1]]
        # An altered document fails pyHanko's path validation too: judge the chain apart.
        chained = validated.trusted or (
            not signature.ok and carried.signer is not None and _issued_by(carried.signer, root[0])
        )
        report.chain = Finding(True) if chained else BROKEN_CHAIN
    return report


def _issued_by(signer_pem: bytes, ca_pem: bytes) -> bool:
    """The signer's certificate bears the CA's signature."""
    try:
        crypto.load_certificate(signer_pem).verify_directly_issued_by(
            crypto.load_certificate(ca_pem)
        )
    except (ValueError, TypeError, crypto.InvalidSignature, crypto.CryptoError):
        return False
    return True


def _fingerprint(ca_pem: bytes) -> str:
    try:
        return crypto.certificate_fingerprint(crypto.load_certificate(ca_pem))
    except crypto.CryptoError:
        return ""


def _signature_finding(report: signing.SignatureReport) -> Finding:
    if report.problem in ("", "untrusted"):  # trust is the chain finding's business
        return Finding(True)
    return Finding(False, report.problem, report.reason)


# --- QR code and certificate ------------------------------------------------------


def read_qr(pdf: bytes, jwks: dict[str, Any], public_url: str | None) -> tuple[Finding, Any]:
    """(finding, (code, token, claims) or None) for the first page's QR code.

    `public_url` None accepts a link to any site (offline checks); the server
    passes its own, so a QR code pointing elsewhere is reported as foreign.
    """
    try:
        found = decode_qr(pdf)
    except ImageUnreadable:
        return Finding(False, "unreadable", "the first page could not be rendered"), None
    if not found:
        return Finding(False, "no-qr", "no QR code was found on the first page"), None
    try:
        code, token = parse_qr_url(found[0], public_url)
    except TokenInvalid:
        return Finding(False, "foreign", "the QR code does not link to this verify site"), None
    try:
        claims = verify_token(token, jwks).to_payload()
    except TokenInvalid as exc:
        return Finding(False, exc.reason, f"the QR code's token does not verify: {exc}"), None
    return Finding(True), (code, token, claims)


STATUS_WORDS = {
    "valid": "the certificate is valid",
    "expired": "the certificate has expired",
    "cancelled": "the certificate was cancelled after this PDF was made",
    "rescored": "the certificate was rescored since this PDF was made: its levels changed",
    INTEGRITY_FAILURE: "the ledger's events for this certificate do not verify",
    "unknown": "no certificate in this ledger has this code",
    "other": "the QR code names another issue of this certificate than the ledger holds",
}


def certificate_finding(
    ledger: Ledger, view: dict[str, Any] | None, token: str, signed_at: datetime | None = None
) -> Finding:
    """The certificate's status now, from its verified view, against the PDF's token.

    Rescored since: the results the token states differ from today's, or a
    rescoring was logged in a later second than the PDF's signature (a rescoring
    may leave the results as they were; the PDF then misses its mention). Both
    times count in whole seconds: within the second of signing, results decide.
    """
    if view is None:
        return _status("unknown")
    if view["status"] == INTEGRITY_FAILURE:
        return _status(INTEGRITY_FAILURE)
    check = check_token(ledger, view, token)
    if check.state == INVALID:
        return Finding(False, "qr-invalid", "the QR code's token does not verify")
    if check.state == OTHER:
        return _status("other")
    if "cancelled" in check.differences or view["status"] == "cancelled":
        return _status("cancelled")
    if "rescored" in check.differences or _rescored_after(ledger, view, signed_at):
        return _status("rescored")
    if view["status"] == "expired":
        return _status("expired")
    return Finding(True, "", STATUS_WORDS["valid"])


def _rescored_after(ledger: Ledger, view: dict[str, Any], signed_at: datetime | None) -> bool:
    if signed_at is None:
        return False
    for entry in view["history"]:
        env = ledger.recorder.envelope(entry["seq"]) if entry.get("event") == "rescored" else None
        if env is not None and _second(env.time) > signed_at.replace(microsecond=0):
            return True
    return False


def _second(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).replace(microsecond=0)


def _status(reason: str) -> Finding:
    return Finding(False, reason, STATUS_WORDS[reason])


class TooComplex(NotAPdf):
    """The file exceeded what checking a genuine attestation ever takes."""


def parse_untrusted(
    pdf: bytes, published: dict[str, int], jwks: dict[str, Any], public_url: str | None
) -> tuple[Report, Finding, Any]:
    """Everything that parses or renders the uploaded file: run in the sandbox."""
    return (check_signature(pdf, published), *read_qr(pdf, jwks, public_url))


def check_pdf(ledger: Ledger, pdf: bytes, view_of: ViewOf) -> Report:
    """Every finding about `pdf` against this ledger; NotAPdf if it is not a readable PDF.

    The file is parsed only in a limited child process (pdf_sandbox): TooComplex
    when it exceeds the limits, SandboxBusy when every check slot is taken.
    """
    require_pdf(pdf)
    published, jwks = logged_cas(ledger), trusted_jwks(ledger)
    try:
        report, qr, found = run_isolated(
            parse_untrusted, pdf, published, jwks, ledger.config.public_url
        )
    except LimitsExceeded as exc:
        raise TooComplex(f"the PDF is too complex to check: {exc}") from None
    signature = report.signature
    if signature.reason == "unreadable" and qr.reason == "unreadable":
        raise NotAPdf("the file is not a readable PDF")  # nothing in it could be checked
    report.qr = qr
    if found is None:
        report.certificate = Finding(False, "no-qr", "without a valid QR code, no certificate")
        return report
    code, token, _ = found
    report.code, report.link = code, f"/v/{code}?t={token}"
    signed_at = report.signed_at if signature.ok and report.chain.ok else None
    report.certificate = certificate_finding(ledger, view_of(code), token, signed_at)
    report.status = report.certificate.reason or "valid"
    if report.status not in STATUS_WORDS:
        report.status = None
    return report
