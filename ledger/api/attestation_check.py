"""`POST /api/v1/attestations/check`: anyone may hand in an attestation PDF and learn if it holds.

Public like the verify page, and counted in the same `uploads` bucket as the
page's uploads. The body is the PDF itself (`application/pdf`) or a multipart
form with a `file` field, up to LEDGER_MAX_UPLOAD_BYTES. The answer is 200 with
every finding whenever the file is a PDF (a failed check is a result, not an
error); problem+json 413, 415 or 422 when there is nothing to check.
"""

from __future__ import annotations

from typing import Any

from flask import Request, request
from flask_smorest import Blueprint

from ledger.api.body import TOO_LARGE
from ledger.api.limits import uploads
from ledger.api.problems import RETRY_AFTER_S, ApiProblem
from ledger.api.state import state
from ledger.services.attestation_check import NotAPdf, check_pdf
from ledger.services.pdf_sandbox import SandboxBusy

PATH = "/api/v1/attestations/check"
PDF = "application/pdf"
blp = Blueprint(
    "attestation_check", __name__, url_prefix="/api/v1", description="Check an attestation PDF"
)

_FINDING = {
    "type": "object",
    "properties": {
        "ok": {"type": "boolean"},
        "reason": {"type": "string", "description": "stable slug, empty when ok"},
        "detail": {"type": "string", "description": "why, in English"},
    },
}
_REPORT = {
    "type": "object",
    "properties": {
        "ok": {"type": "boolean", "description": "every check passed and the certificate is valid"},
        "code": {"type": "string", "nullable": True},
        "status": {
            "type": "string",
            "nullable": True,
            "enum": [
                "valid",
                "expired",
                "cancelled",
                "rescored",
                "integrity-failure",
                "unknown",
                "other",
                None,
            ],
        },
        "link": {"type": "string", "nullable": True, "description": "the public page"},
        "signed_at": {
            "type": "string",
            "format": "date-time",
            "nullable": True,
            "description": "the PDF's signing time, from its signature",
        },
        "signature": {
            "allOf": [_FINDING],
            "description": "reasons: altered, not-covered, unreadable, signature-count, "
            "unreadable-signature",
        },
        "chain": {
            "allOf": [_FINDING],
            "description": "reasons: ca-not-published, chain-broken, no-signature; "
            "ca_fingerprint and ca_seq name the logged CA",
        },
        "qr": {
            "allOf": [_FINDING],
            "description": "reasons: no-qr, unreadable, foreign, malformed, unknown-key, "
            "bad-signature, bad-claims",
        },
        "certificate": {"allOf": [_FINDING], "description": "reason: the status when not valid"},
    },
}


def uploaded_pdf(req: Request, limit: int) -> bytes:
    """The PDF's bytes from a raw or multipart body, or the problem saying why not."""
    if req.environ.get(TOO_LARGE) or (req.content_length or 0) > limit:
        raise ApiProblem(413, "content-too-large", f"attestation PDFs are limited to {limit} bytes")
    if req.mimetype == PDF:
        return req.get_data(cache=False)
    if req.mimetype == "multipart/form-data":
        upload = req.files.get("file")
        if upload is None:
            raise ApiProblem(422, "no-file", "send the PDF in a multipart field named `file`")
        data = upload.read(limit + 1)
        if len(data) > limit:
            raise ApiProblem(
                413, "content-too-large", f"attestation PDFs are limited to {limit} bytes"
            )
        return data
    raise ApiProblem(
        415, "unsupported-media-type", "send the PDF as application/pdf or multipart/form-data"
    )


def checked(data: bytes) -> dict[str, Any]:
    """The report on `data`, NotAPdf as a 422."""
    st = state()
    st.fresh()
    try:
        return check_pdf(st.ledger, data, st.views.get).to_json()
    except NotAPdf as exc:
        raise ApiProblem(422, "not-a-pdf", str(exc)) from None
    except SandboxBusy as exc:
        raise ApiProblem(503, "busy", str(exc), {"Retry-After": str(RETRY_AFTER_S)}) from None


@blp.route("/attestations/check", methods=["POST"])
@uploads
@blp.doc(
    security=[],
    requestBody={
        "required": True,
        "content": {
            PDF: {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                },
                "example": {"file": "(the attestation PDF, attestation-P-7KQ9MXR4.pdf)"},
            },
        },
    },
    responses={"200": {"description": "What holds and what does not, each with its reason",
                       "content": {"application/json": {"schema": _REPORT}}}},
)  # fmt: skip
def check_attestation() -> Any:
    """Check an attestation PDF: signature, chain to the logged CA, QR token, status now."""
    return checked(uploaded_pdf(request, state().config.max_upload_bytes))
