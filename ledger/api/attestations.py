"""Attestation PDFs: the holder's own, a centre's candidates' (one by one or a session's zip).

Authorization follows the verified certificate, not the read model: the holder
(`candidate:<id>` token, created here by the platform), the centre that
examined them (`centre:<id>`), or an operator (`admin`).
"""

from __future__ import annotations

import itertools
from typing import Any

from flask import Blueprint as FlaskBlueprint
from flask import Response, current_app, stream_with_context
from flask_smorest import Blueprint

from ledger.api import schemas
from ledger.api.auth import SECURED, current_principal, idempotent, require, scoped_token
from ledger.api.certification import centres_allowed
from ledger.api.openapi import READS_AFTER_SEQ
from ledger.api.problems import RETRY_AFTER_S, ApiProblem
from ledger.api.state import state
from ledger.attestation.ca import AttestationKeyError
from ledger.attestation.service import AttestationRefused, Attestations
from ledger.attestation.signing import TimestampUnavailable
from ledger.domain.certificate import normalize_code
from ledger.services.candidates import registration

blp = Blueprint(
    "attestations", __name__, url_prefix="/api/v1", description="Attestations (signed PDFs)"
)
well_known = FlaskBlueprint("attestation_ca", __name__)
PDF = "application/pdf"


def attestations() -> Attestations:
    return state().attestations


def _refused(exc: AttestationRefused) -> ApiProblem:
    return ApiProblem(exc.status, exc.kind, exc.detail)


def _unavailable(exc: AttestationKeyError | TimestampUnavailable) -> ApiProblem:
    """Missing signing files or an unreachable timestamp authority: a fault, not bad input."""
    current_app.logger.error("attestations cannot be signed: %s", exc)
    wait = RETRY_AFTER_S * (5 if isinstance(exc, TimestampUnavailable) else 60)
    return ApiProblem(
        503,
        "attestation-signing-unavailable",
        "attestations cannot be signed right now",
        {"Retry-After": str(wait)},
    )


def _pdf_doc() -> dict[str, Any]:
    return {
        "security": SECURED,
        "responses": {
            "200": {
                "description": "The attestation, PAdES-signed",
                "content": {PDF: {"schema": {"type": "string", "format": "binary"}}},
            }
        },
    }


@blp.route("/candidates/<uuid:candidate_id>/tokens", methods=["POST"])
@require("events:append")
@idempotent
@blp.arguments(schemas.CandidateTokenIn, required=False)
@blp.response(201, schemas.StaffTokenOut)
@blp.doc(security=SECURED)
def create_candidate_token(body: dict[str, Any], candidate_id: Any) -> dict[str, Any]:
    """A token for the candidate: downloads their own attestations and nothing else; shown once."""
    st = state()
    registration(st.ledger, str(candidate_id))
    return scoped_token(f"candidate:{candidate_id}", body["label"])


@blp.route("/certificates/<string:code>/attestation.pdf", methods=["GET"])
@require("admin", "centre:*", "candidate:*")
@blp.arguments(schemas.AttestationQuery, location="query")
@blp.doc(**_pdf_doc())
@blp.doc(**READS_AFTER_SEQ)
def attestation_pdf(query: dict[str, str], code: str) -> Response:
    """The certificate's attestation as it stands now; cancelled: 410; failed integrity: 409."""
    normalized = normalize_code(code)
    if normalized is None:
        raise ApiProblem(404, "unknown-certificate", "no certificate has this code")
    state().fresh()
    try:
        pdf = attestations().for_principal(current_principal(), normalized, query["lang"])
    except AttestationRefused as exc:
        raise _refused(exc) from None
    except (AttestationKeyError, TimestampUnavailable) as exc:
        raise _unavailable(exc) from None
    name = f"attestation-{normalized}-{query['lang']}.pdf"
    return Response(pdf, mimetype=PDF, headers=_download(name))


def _download(name: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"}


@blp.route("/sessions/<uuid:session_id>/attestations.zip", methods=["GET"])
@require("centre:*")
@blp.arguments(schemas.AttestationQuery, location="query")
@blp.doc(
    security=SECURED,
    responses={"200": {"description": "One PDF per certificate, cancelled ones left out",
                       "content": {"application/zip": {}}}},
)  # fmt: skip
@blp.doc(**READS_AFTER_SEQ)
def session_attestations(query: dict[str, str], session_id: Any) -> Response:
    """Every attestation of the session's certificates, as one zip streamed file by file."""
    st = state()
    session = st.certification.session(str(session_id), centres_allowed())
    st.fresh()
    with st.ledger.db.read() as cur:
        cur.execute(
            "SELECT code FROM proj_certificates WHERE session = ? ORDER BY code",
            (str(session_id),),
        )
        codes = [row[0] for row in cur.fetchall()]
    chunks = attestations().session_zip(str(session_id), session.centre, codes, query["lang"])
    try:  # the first PDF before the 200: a signing fault is still a clean 503
        first = next(chunks)
    except (AttestationKeyError, TimestampUnavailable) as exc:
        raise _unavailable(exc) from None
    name = f"attestations-{session_id}-{query['lang']}.zip"
    return Response(
        stream_with_context(itertools.chain([first], chunks)),
        mimetype="application/zip",
        headers=_download(name),
    )


@well_known.route("/.well-known/attestation-ca.pem")
def attestation_ca() -> Response:
    """The CA that issues the attestation-signing certificate: trust it to check PDFs."""
    try:
        identity = attestations().identity()
    except AttestationKeyError as exc:
        raise _unavailable(exc) from None
    response = Response(identity.ca_pem, mimetype="application/x-pem-file")
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response
