"""Certificates: the public lookup by code, and operator cancellation and rescoring."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from ledger.api import schemas
from ledger.api.auth import idempotent, require
from ledger.api.certification import appended
from ledger.api.problems import ApiProblem
from ledger.api.state import state
from ledger.domain.certificate import normalize_code
from ledger.services.verification import public_certificate

blp = Blueprint("certificates", __name__, url_prefix="/api/v1", description="Certificates")
SECURED = [{"bearer": []}]
UNKNOWN = "no certificate has this verification code"


def _code(text: str) -> str:
    code = normalize_code(text)
    if code is None:
        raise ApiProblem(404, "unknown-certificate", UNKNOWN)
    return code


@blp.route("/certificates/<string:code>", methods=["GET"])
@blp.response(200, schemas.PublicCertificateOut)
def get_certificate(code: str) -> dict[str, Any]:
    """Public: what the verify page shows, with the issuing event's signature checked."""
    st = state()
    st.fresh()
    found = public_certificate(st.ledger, st.referential, _code(code))
    if found is None:
        raise ApiProblem(404, "unknown-certificate", UNKNOWN)
    return found


@blp.route("/certificates/<string:code>/cancellation", methods=["POST"])
@require("admin")
@idempotent
@blp.arguments(schemas.ReasonIn)
@blp.response(201, schemas.AppendedOut)
@blp.doc(security=SECURED)
def cancel(body: dict[str, Any], code: str) -> dict[str, Any]:
    """Cancel a published certificate (e.g. fraud, invalid session): a new fact with a reason."""
    return appended(state().certification.cancel_certificate(_code(code), body["reason"]))


@blp.route("/certificates/<string:code>/rescoring", methods=["POST"])
@require("admin")
@idempotent
@blp.arguments(schemas.RescoringIn)
@blp.doc(security=SECURED)
def rescore(body: dict[str, Any], code: str) -> tuple[dict[str, Any], int]:
    """A late issue report neutralizes challenges: the course is rescored, the certificate follows."""
    result = state().certification.rescore_certificate(
        _code(code), body["neutralize"], body["reason"]
    )
    return {"result": result}, 201
