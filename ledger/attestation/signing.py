"""PAdES signature of attestation PDFs (pyHanko): B-B, or B-T with a timestamp authority.

The signature is visible (a stamp in the box the layout leaves free) and covers
the whole file: a byte changed afterwards makes every PDF reader report the
document as altered. The signer's certificate chain (signer, then CA) is
embedded, so a verifier needs only the published CA certificate.
"""

from __future__ import annotations

import io
import logging
from typing import TYPE_CHECKING, Any

from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import serialization

from ledger import crypto
from ledger.attestation.ca import AttestationIdentity
from ledger.attestation.pdf import SIGNATURE_BOX
from ledger.attestation.words import WORDS

if TYPE_CHECKING:  # pyHanko (and the HTTP clients it pulls in) loads when a PDF is signed
    from pyhanko.sign.timestamps import TimeStamper
    from pyhanko.stamp import TextStampStyle

FIELD = "Signature-CRCN"
TSA_TIMEOUT_S = 10

log = logging.getLogger("ledger.attestation")


class TimestampUnavailable(Exception):
    """The timestamp authority did not answer usefully: a fault, retry later (503)."""


def _asn1_cert(cert: Any) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


def _asn1_key(key: Any) -> asn1_keys.PrivateKeyInfo:
    der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return asn1_keys.PrivateKeyInfo.load(der)


def timestamper(url: str) -> TimeStamper | None:
    """An RFC 3161 client for LEDGER_TSA_URL, or None (B-B) when it is not set."""
    from pyhanko.sign.timestamps.requests_client import HTTPTimeStamper

    return HTTPTimeStamper(url, timeout=TSA_TIMEOUT_S) if url else None


def _stamp(lang: str) -> TextStampStyle:
    """The visible stamp: who signed and when, framed in the page's navy."""
    from pyhanko.pdf_utils.font.basic import SimpleFontEngineFactory
    from pyhanko.pdf_utils.text import TextBoxStyle
    from pyhanko.stamp import TextStampStyle

    label = WORDS[lang]["signed_by"]
    return TextStampStyle(
        stamp_text=f"{label}\n%(signer)s\n%(ts)s",
        timestamp_format="%d/%m/%Y %H:%M:%S UTC",
        border_width=1,
        border_color=(0.07, 0.16, 0.36),
        text_box_style=TextBoxStyle(font=SimpleFontEngineFactory("Helvetica", 0.5), font_size=8),
    )


def sign(
    pdf: bytes,
    identity: AttestationIdentity,
    lang: str = "fr",
    stamper: TimeStamper | None = None,
) -> bytes:
    """The PDF with a visible PAdES signature; B-T when `stamper` is given."""
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers
    from pyhanko.sign.timestamps.common_utils import TimestampRequestError
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    signer = signers.SimpleSigner(
        signing_cert=_asn1_cert(identity.cert),
        signing_key=_asn1_key(identity.key),
        cert_registry=SimpleCertificateStore.from_certs([_asn1_cert(identity.ca)]),
    )
    x, y, w, h = SIGNATURE_BOX
    meta = signers.PdfSignatureMetadata(
        field_name=FIELD,
        md_algorithm="sha256",
        subfilter=fields.SigSeedSubFilter.PADES,
        reason=WORDS[lang]["signature_reason"],
        location="France",
        certify=True,
    )
    spec = fields.SigFieldSpec(FIELD, on_page=0, box=(int(x), int(y), int(x + w), int(y + h)))
    out = io.BytesIO()
    pdf_signer = signers.PdfSigner(
        meta, signer, timestamper=stamper, stamp_style=_stamp(lang), new_field_spec=spec
    )
    try:
        pdf_signer.sign_pdf(IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False), output=out)
    except TimestampRequestError as exc:  # also what requests raises, wrapped by pyHanko
        raise TimestampUnavailable(f"timestamp authority: {exc}") from exc
    return out.getvalue()


class SignatureReport:
    """What a validator says of a PDF's signature, with a human reason when it fails."""

    def __init__(
        self,
        valid: bool,
        trusted: bool,
        intact: bool,
        reason: str,
        signer: str = "",
        problem: str = "",
    ):
        self.valid, self.trusted, self.intact = valid, trusted, intact
        self.reason, self.signer = reason, signer
        self.problem = problem  # a stable slug for `reason`, for pages that translate it

    @property
    def ok(self) -> bool:
        return self.valid and self.trusted and self.intact


def validate(pdf: bytes, ca_pem: bytes) -> SignatureReport:
    """Check the one signature of `pdf` with the CA in `ca_pem` as the only trust root."""
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext

    try:
        reader = PdfFileReader(io.BytesIO(pdf), strict=False)
        embedded = reader.embedded_signatures
    except Exception:  # pyHanko raises many kinds on garbage: all mean "not a signed PDF"
        return SignatureReport(
            False, False, False, "the file is not a readable PDF", "", "unreadable"
        )
    if len(embedded) != 1:
        reason = f"{len(embedded)} signatures, expected 1"
        return SignatureReport(False, False, False, reason, "", "signature-count")
    root = _asn1_cert(crypto.load_certificate(ca_pem))
    context = ValidationContext(trust_roots=[root], allow_fetching=False)
    try:
        status = validate_pdf_signature(embedded[0], context)
    except Exception:  # a malformed signature dictionary or CMS structure
        log.info("unreadable PDF signature", exc_info=True)  # never echoed to the uploader
        reason = "the signature cannot be read"
        return SignatureReport(False, False, False, reason, "", "unreadable-signature")
    intact = status.intact and status.coverage.name == "ENTIRE_FILE"
    signer = status.signing_cert.subject.human_friendly if status.signing_cert else ""
    if not status.intact or not status.valid:
        problem, reason = "altered", "the document was changed after it was signed"
    elif not intact:
        problem = "not-covered"
        reason = "the signature does not cover the whole file (content added after signing)"
    elif not status.trusted:
        problem = "untrusted"
        reason = "the signer's certificate does not chain to the published attestation CA"
    else:
        problem, reason = "", ""
    return SignatureReport(status.valid, status.trusted, intact, reason, signer, problem)
