"""Results for schools and the admission platform, signed; CSV downloads for centres and schools.

Scopes: `institution:<UAI>` reads that school's pupils only; `admission-platform`
looks results up one candidate at a time (by INE, by school and identity, or by
verification code). The admin creates both kinds of token.
"""

from __future__ import annotations

from typing import Any

from flask import Response
from flask_smorest import Blueprint

from ledger.api import schemas
from ledger.api.auth import SECURED, current_principal, idempotent, require, scoped_token
from ledger.api.certification import centres_allowed
from ledger.api.examples import CSV_DOC
from ledger.api.openapi import READS_AFTER_SEQ
from ledger.api.problems import ApiProblem
from ledger.api.state import state
from ledger.domain.institution import ADMISSION_SCOPE, UAI_FORMAT, institution_scope, is_uai
from ledger.services.institutions import results_csv
from ledger.services.webhook_targets import TargetRefused
from ledger.services.webhooks import WebhookExists, WebhookLimit

blp = Blueprint(
    "institutions",
    __name__,
    url_prefix="/api/v1",
    description="Results for schools (livret scolaire) and higher-education admission",
)
CSV_TYPE = "text/csv; charset=utf-8"


def _uai(uai: str) -> str:
    """A path that is not a UAI names no school: 404, saying what a UAI looks like."""
    if not is_uai(uai):
        raise ApiProblem(404, "not-found", f"uai: expected {UAI_FORMAT}, got {uai!r}")
    return uai


def _own_school(uai: str) -> str:
    """A school token reads its own pupils only; the operator reads any school."""
    principal = current_principal()
    uai = _uai(uai)  # the operator too: a path that is not a UAI names no school
    if not principal.is_admin and institution_scope(uai) not in principal.scopes:
        raise ApiProblem(403, "insufficient-scope", f"this call needs scope institution:{uai}")
    return uai


@blp.route("/institutions/<uai>/tokens", methods=["POST"])
@require("admin")
@idempotent
@blp.arguments(schemas.InstitutionTokenIn, required=False)
@blp.response(201, schemas.StaffTokenOut)
@blp.doc(security=SECURED)
def create_institution_token(body: dict[str, Any], uai: str) -> dict[str, Any]:
    """A token for one school (scope `institution:<UAI>`); shown once."""
    return scoped_token(institution_scope(_uai(uai)), body["label"])


@blp.route("/admission/tokens", methods=["POST"])
@require("admin")
@idempotent
@blp.arguments(schemas.InstitutionTokenIn, required=False)
@blp.response(201, schemas.StaffTokenOut)
@blp.doc(security=SECURED)
def create_admission_token(body: dict[str, Any]) -> dict[str, Any]:
    """A token for the admission platform (scope `admission-platform`); shown once."""
    return scoped_token(ADMISSION_SCOPE, body["label"])


@blp.route("/institutions/<uai>/results", methods=["GET"])
@require("institution:*")
@blp.arguments(schemas.ClassQuery, location="query")
@blp.response(200, schemas.SignedDocumentOut)
@blp.doc(security=SECURED)
@blp.doc(**READS_AFTER_SEQ)
def school_results(query: dict[str, Any], uai: str) -> dict[str, Any]:
    """Each pupil of the school (or of one audience): `pending` until published, then the
    certificate's status or `not-certified`; pix score and levels only when valid or expired.

    Built from verified events only: 503 `integrity-failure` if the read model disagrees."""
    st = state()
    st.fresh()
    return st.institutions.school_records(_own_school(uai), query.get("audience"))


@blp.route("/institutions/<uai>/results.csv", methods=["GET"])
@require("institution:*")
@blp.arguments(schemas.ClassQuery, location="query")
@blp.doc(security=SECURED, **CSV_DOC)
@blp.doc(**READS_AFTER_SEQ)
def school_results_csv(query: dict[str, Any], uai: str) -> Response:
    """The school's pupils (or one audience's: a class) as CSV, a level column per competence."""
    st = state()
    st.fresh()
    records, _ = st.institutions.school_rows(_own_school(uai), query.get("audience"))
    return _csv(records, f"results-{uai}.csv")


@blp.route("/sessions/<uuid:session_id>/results.csv", methods=["GET"])
@require("centre:*")
@blp.doc(security=SECURED, **CSV_DOC)
@blp.doc(**READS_AFTER_SEQ)
def session_results_csv(session_id: Any) -> Response:
    """A session's candidates as CSV (its centre's staff): each one's certificate from this
    session, else `pending` until published and `not-certified` after."""
    st = state()
    st.fresh()
    session = st.certification.session(str(session_id), centres_allowed())
    records = st.institutions.session_rows(session)
    return _csv(records, f"session-{session_id}.csv")


@blp.route("/admission/results", methods=["GET"])
@require(ADMISSION_SCOPE)
@blp.arguments(schemas.AdmissionQuery, location="query")
@blp.response(200, schemas.SignedDocumentOut)
@blp.doc(security=SECURED)
@blp.doc(**READS_AFTER_SEQ)
def admission_results(query: dict[str, Any]) -> dict[str, Any]:
    """A candidate's result for admission, by INE, by code, or by school and identity."""
    st = state()
    st.fresh()
    service = st.institutions
    if query.get("ine"):
        return service.by_ine(query["ine"])
    if query.get("code"):
        return service.by_code(query["code"])
    return service.by_identity(
        query["school"],
        query["last_name"],
        query["first_name"],
        query["birth_date"].isoformat(),
    )


@blp.route("/institutions/<uai>/webhooks", methods=["POST"])
@require("institution:*")
@blp.arguments(schemas.WebhookIn)
@blp.response(201, schemas.WebhookOut)
@blp.doc(security=SECURED)
def register_webhook(body: dict[str, Any], uai: str) -> dict[str, Any]:
    """Register a URL told of each later publication, cancellation and rescoring of pupils.

    The URL must be https and resolve to public addresses only (422 `webhook-target-refused`);
    it is kept in normal form (lower-case host, no default port, `/` for an empty path; user
    info and fragments refused). Each URL once per school (409 `webhook-exists`), at most
    LEDGER_WEBHOOK_MAX_PER_SCHOOL webhooks (409 `webhook-limit`). Each event is POSTed as a
    `WebhookPayload` (see `webhooks` in this document), signed with RFC 9421.
    """
    school = _own_school(uai)
    try:
        return state().webhooks.register(school, body["url"])
    except TargetRefused as exc:
        raise ApiProblem(422, "webhook-target-refused", str(exc)) from exc
    except WebhookExists as exc:
        raise ApiProblem(409, "webhook-exists", str(exc)) from exc
    except WebhookLimit as exc:
        raise ApiProblem(409, "webhook-limit", str(exc)) from exc


@blp.route("/institutions/<uai>/webhooks", methods=["GET"])
@require("institution:*")
@blp.response(200, schemas.WebhookListOut)
@blp.doc(security=SECURED)
def list_webhooks(uai: str) -> dict[str, Any]:
    """The school's webhooks, oldest first."""
    return {"webhooks": state().webhooks.hooks(_own_school(uai))}


@blp.route("/institutions/<uai>/webhooks/<uuid:webhook_id>", methods=["DELETE"])
@require("institution:*")
@blp.response(200, schemas.WebhookDeletedOut)
@blp.doc(security=SECURED)
def delete_webhook(uai: str, webhook_id: Any) -> dict[str, Any]:
    """Stop a webhook: its pending deliveries are dropped and its delivery log removed."""
    dropped = state().webhooks.delete(_own_school(uai), str(webhook_id))
    if dropped is None:
        raise ApiProblem(404, "not-found", f"webhook_id: this school has no webhook {webhook_id}")
    return {"deleted": str(webhook_id), "dropped_deliveries": dropped}


@blp.route("/institutions/<uai>/webhooks/deliveries", methods=["GET"])
@require("institution:*")
@blp.response(200, schemas.DeliveryLogOut)
@blp.doc(security=SECURED)
def webhook_deliveries(uai: str) -> dict[str, Any]:
    """Each delivery, oldest event first: event, attempts, status, last error."""
    return {"deliveries": state().webhooks.deliveries(_own_school(uai))}


@blp.route("/webhooks/deliveries", methods=["POST"])
@require("admin")
@blp.response(200, schemas.DispatchOut)
@blp.doc(security=SECURED)
def deliver_webhooks() -> dict[str, Any]:
    """Queue new events and send due deliveries now (each serving process also does it)."""
    return state().dispatch_webhooks()


def _csv(records: list[dict[str, Any]], filename: str) -> Response:
    response = Response(results_csv(records), content_type=CSV_TYPE)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
