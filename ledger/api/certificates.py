"""Certificates: the public lookup by code, and operator cancellation and rescoring."""

from __future__ import annotations

import json
from typing import Any

from flask import Response
from flask_smorest import Blueprint

from ledger.api import schemas
from ledger.api.auth import SECURED, idempotent, optional_scopes, require
from ledger.api.examples import CERTIFICATE_EXAMPLES, COURSE_UP_TO_DATE
from ledger.api.limits import lookups
from ledger.api.log import shared_tree as log_tree
from ledger.api.openapi import READS_AFTER_SEQ
from ledger.api.problems import ApiProblem
from ledger.api.state import appended, state
from ledger.domain.certificate import normalize_code
from ledger.qr_image import qr_png
from ledger.qr_image import qr_svg as qr_svg_image
from ledger.services.history import HistoryUnavailable, certificate_history, proof_target
from ledger.services.qr import token_url
from ledger.services.verification import INTEGRITY_FAILURE, audience_of, for_audience

blp = Blueprint("certificates", __name__, url_prefix="/api/v1", description="Certificates")
UNKNOWN = "no certificate has this verification code"
HISTORY_EXAMPLE = {
    "code": "P-7QD8XVGF",
    "status": "cancelled",
    "checkpoint": {
        "note": "crcn.example/ledger\n57\nq2Pv0mQ1w6q9GQ0V7n7bWmHj8y1m0Yb8iQm0ZQd9x8s=\n\n"
        "\u2014 crcn.example/ledger Ab12Cd34…\n\u2014 witness.example/univ Ef56…\n",
        "size": 57,
        "root": "q2Pv0mQ1w6q9GQ0V7n7bWmHj8y1m0Yb8iQm0ZQd9x8s=",
        "witnessed": True,
        "cosigners": {"witness.example/univ": 1795000000},
        "quorum": 1,
    },
    "log_keys": ["crcn.example/ledger+1a2b3c4d+AXc…"],
    "witness_keys": ["witness.example/univ+5e6f7a8b+BNn…"],
    "events": [
        {
            "seq": 51, "version": 1, "type": "certification.CertificateIssued",
            "time": "2026-12-01T10:00:00.000000Z", "hash": "3f1c…", "prev": "9a0b…",
            "kid": "yLq3…", "sig": "Tq8…",
            "inclusion": {"leaf_index": 50, "tree_size": 57, "hashes": ["mJ0…", "x4Q…"]},
        },
        {
            "seq": 58, "version": 2, "type": "certification.CertificateCancelled",
            "time": "2026-12-02T09:00:00.000000Z", "hash": "c0de…", "prev": "77aa…",
            "kid": "yLq3…", "sig": "Zk1…", "inclusion": None, "reason": "not-yet-in-checkpoint",
        },
    ],
}  # fmt: skip
CERTIFICATE_DOC = {
    "responses": {
        "200": {
            "description": "The certificate as the caller may read it (`audience`)",
            "content": {
                "application/json": {
                    "schema": schemas.PublicCertificateOut,
                    "examples": CERTIFICATE_EXAMPLES,
                }
            },
        }
    }
}
HISTORY_DOC = {
    "responses": {
        "200": {
            "description": "The certificate's events (no payload), each with an RFC 9162 "
            "inclusion proof to the checkpoint given, its note and the keys that verify it",
            "content": {
                "application/json": {"schema": {"type": "object"}, "example": HISTORY_EXAMPLE}
            },
        }
    }
}


def _code(text: str) -> str:
    code = normalize_code(text)
    if code is None:
        raise ApiProblem(404, "unknown-certificate", UNKNOWN)
    return code


def _view(code: str) -> dict[str, Any]:
    found = state().views.get(_code(code))
    if found is None:
        raise ApiProblem(404, "unknown-certificate", UNKNOWN)
    return found


@blp.route("/certificates/<string:code>", methods=["GET"])
@lookups
@blp.response(200, schemas.PublicCertificateOut)
@blp.doc(**CERTIFICATE_DOC)
@blp.doc(**READS_AFTER_SEQ)
def get_certificate(code: str) -> Response:
    """Public: what the verify page shows, with the issuing event's signature checked.

    Anybody gets the public view: a cancellation or rescoring gives its neutral
    `category` (a cancellation for fraud reads `issuer-decision`), never its
    free-text reason. Optionally send `Authorization: Bearer` with the holder's
    own token (scope `candidate:<id>` of this certificate's holder) or an `admin`
    token: the same answer then carries the signed category and the free-text
    reasons, and `audience` says `holder` or `operator`. Any other valid token
    gets the public view; an unknown or revoked token is 401.
    """
    view = _view(code)
    audience = audience_of(optional_scopes(), view)
    pages = state().views.pages
    key = ("json", view["code"], audience)
    body = pages.get(key)
    if body is None:  # serialized once per state of the log and audience, like the HTML page
        shaped = for_audience(view, audience)
        body = pages[key] = json.dumps(schemas.PublicCertificateOut().dump(shaped))
    response = Response(body, mimetype="application/json")
    response.vary.add("Authorization")  # never cached anyway (no-store, ledger/api/headers.py)
    return response


@blp.route("/certificates/<string:code>/history", methods=["GET"])
@lookups
@blp.doc(**HISTORY_DOC)
@blp.doc(**READS_AFTER_SEQ)
def get_history(code: str) -> Response:
    """Public: every event of the certificate with an RFC 9162 inclusion proof to a checkpoint.

    Proofs lead to the latest witnessed checkpoint (the latest signed one when no
    witness is configured: `checkpoint.witnessed` is then false); events appended
    after it have `inclusion: null` and a `reason`.
    """
    view = _view(code)
    pages = state().views.pages
    key = ("history", view["code"])
    body = pages.get(key)
    if body is None:  # cached like the public view; dropped whenever the log moves (proofs)
        body = pages[key] = json.dumps(_history(view))
    return Response(body, mimetype="application/json")


def _history(view: dict[str, Any]) -> dict[str, Any]:
    """The history JSON; a checkpoint that cannot back proofs is an alarm and a 503."""
    st = state()
    try:
        target = proof_target(st.ledger)
        return certificate_history(st.ledger, log_tree(), view["code"], view["status"], target)
    except HistoryUnavailable as exc:
        st.raise_alarm({"check": "checkpoint", "problem": str(exc)})
        raise ApiProblem(
            503, "checkpoint-unavailable", "no checkpoint can back the proofs right now"
        ) from exc


def _qr_text(code: str) -> str:
    view = _view(code)
    if view["status"] == INTEGRITY_FAILURE:
        raise ApiProblem(
            409, "integrity-failure", "this certificate's stored events do not verify; no QR code"
        )
    if view["holder"] is None:
        raise ApiProblem(410, "holder-erased", "the holder's data was erased; no QR code is issued")
    if view["status"] == "cancelled":
        raise ApiProblem(
            410, "certificate-cancelled", "a cancelled certificate gets no new QR code"
        )
    return token_url(state().ledger, view)


def _qr_doc(media_type: str) -> dict[str, Any]:
    description = "QR code of <public URL>/v/<code>?t=<signed token>"
    return {"responses": {"200": {"description": description, "content": {media_type: {}}}}}


@blp.route("/certificates/<string:code>/qr.png", methods=["GET"])
@lookups
@blp.doc(**_qr_doc("image/png"))
@blp.doc(**READS_AFTER_SEQ)
def qr_png_view(code: str) -> Response:
    """PNG QR code holding the verify URL with a signed token (format section 7)."""
    return Response(qr_png(_qr_text(code)), mimetype="image/png")


@blp.route("/certificates/<string:code>/qr.svg", methods=["GET"])
@lookups
@blp.doc(**_qr_doc("image/svg+xml"))
@blp.doc(**READS_AFTER_SEQ)
def qr_svg(code: str) -> Response:
    """SVG QR code holding the verify URL with a signed token (format section 7)."""
    return Response(qr_svg_image(_qr_text(code)), mimetype="image/svg+xml")


@blp.route("/certificates/<string:code>/cancellation", methods=["POST"])
@require("admin")
@idempotent
@blp.arguments(schemas.CancellationIn)
@blp.response(201, schemas.AppendedOut)
@blp.doc(security=SECURED)
def cancel(body: dict[str, Any], code: str) -> dict[str, Any]:
    """Cancel a published certificate: a new fact with a private reason and a public category."""
    cert = state().certification
    return appended(cert.cancel_certificate(_code(code), body["reason"], body["category"]))


@blp.route("/certificates/<string:code>/rescoring", methods=["POST"])
@require("admin")
@idempotent
@blp.arguments(schemas.RescoringIn)
@blp.response(201, schemas.RescoringOut)
@blp.doc(security=SECURED)
def rescore(body: dict[str, Any], code: str) -> dict[str, Any]:
    """A late issue report: only wrong or skipped answers are neutralized, correct ones kept.

    The certificate follows (cause `late-issue-report`) only when something changed.
    """
    return state().certification.rescore_certificate(
        _code(code), body["neutralize"], body["reason"], body["category"]
    )


@blp.route("/courses/<uuid:course_id>/rescoring", methods=["POST"])
@require("admin")
@idempotent
@blp.arguments(schemas.ReasonIn)
@blp.response(201, schemas.CourseRescoringOut)
@blp.alt_response(
    200,
    schema=schemas.CourseRescoringOut,
    description="never rescored and already under the current rules: nothing recorded",
    example=COURSE_UP_TO_DATE,
)
@blp.doc(security=SECURED)
def rescore_course(body: dict[str, Any], course_id: Any) -> tuple[dict[str, Any], int]:
    """Rescore a course's facts under the current scoring rules; its certificate follows.

    Idempotent: repeating it records nothing and gives the first answer again (201, rebuilt
    from the log); a course never rescored and already under these rules answers
    `rescored: false` (200).
    """
    answer = state().certification.rescore_course(str(course_id), body["reason"])
    return answer, 201 if answer["rescored"] else 200
