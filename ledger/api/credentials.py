"""Verifiable credentials: a certificate's Open Badges 3.0 credential, status lists, did.json.

The credential is personal (the holder's name): a token is needed, and
`may_download` (the attestations' own rule) decides whose. Status lists and the DID document are public:
verifiers fetch them.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint as FlaskBlueprint
from flask import Response, jsonify
from flask_smorest import Blueprint

from ledger.api.auth import SECURED, current_principal, require
from ledger.api.certificates import _view
from ledger.api.limits import lookups
from ledger.api.openapi import READS_AFTER_SEQ
from ledger.api.problems import ApiProblem
from ledger.api.state import state
from ledger.attestation.service import may_download
from ledger.services.credentials import CredentialIssuer, StatusUnsound
from ledger.services.verification import INTEGRITY_FAILURE

blp = Blueprint("credentials", __name__, url_prefix="/api/v1", description="Verifiable credentials")
did_site = FlaskBlueprint("did", __name__)
VC_MEDIA = "application/vc+ld+json"


def issuer() -> CredentialIssuer:
    return state().credentials


def _unsound(exc: StatusUnsound) -> ApiProblem:
    """No list can be vouched for: readiness fails (an alarm) and the answer is 409."""
    state().raise_alarm({"status_list": str(exc)})
    return ApiProblem(409, "integrity-failure", f"the status lists do not verify: {exc}")


def _json(document: dict[str, Any], media_type: str, cache: str) -> Response:
    response = jsonify(document)
    response.mimetype = media_type
    response.headers["Cache-Control"] = cache
    return response


def _doc(description: str, media_type: str) -> dict[str, Any]:
    return {"responses": {"200": {"description": description, "content": {media_type: {}}}}}


@blp.route("/certificates/<string:code>/credential", methods=["GET"])
@require("centre:*", "candidate:*")
@lookups
@blp.doc(
    security=SECURED, **_doc("Open Badges 3.0 credential with a Data Integrity proof", VC_MEDIA)
)
@blp.doc(**READS_AFTER_SEQ)
def get_credential(code: str) -> Response:
    """The certificate as a signed Open Badges 3.0 / W3C VC 2.0 credential (eddsa-rdfc-2022)."""
    view = _view(code)
    if not may_download(current_principal(), view):
        raise ApiProblem(
            403, "not-your-certificate", "this token may not download this certificate"
        )
    if view["status"] == INTEGRITY_FAILURE:
        raise ApiProblem(
            409,
            "integrity-failure",
            "this certificate's stored events do not verify; no credential",
        )
    if view["holder"] is None:
        raise ApiProblem(410, "holder-erased", "the holder's data was erased; no credential")
    if view["status"] == "cancelled":
        raise ApiProblem(410, "certificate-cancelled", "a cancelled certificate gets no credential")
    try:
        vc = issuer().credential(view)
    except StatusUnsound as exc:
        raise _unsound(exc) from exc
    return _json(vc, VC_MEDIA, "private, no-store")


@blp.route("/status/<int:number>", methods=["GET"])
@lookups
@blp.doc(**_doc("Signed BitstringStatusListCredential (purpose revocation)", VC_MEDIA))
def get_status_list(number: int) -> Response:
    """A revocation status list: bit i set when the certificate at index i is cancelled."""
    try:
        found = issuer().status_list(number)
    except StatusUnsound as exc:
        raise _unsound(exc) from exc
    if found is None:
        raise ApiProblem(404, "unknown-status-list", f"there is no status list {number}")
    return _json(found, VC_MEDIA, "public, max-age=60")


@did_site.route("/.well-known/did.json")
@did_site.route("/did.json")
def did_json() -> Response:
    """The issuer's DID document (did:web): the ledger's trusted keys as Multikeys."""
    return _json(issuer().did_document(), "application/did+json", "public, max-age=300")
