"""Candidates, positioning answers, competence profiles and erasure."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify, request
from flask_smorest import Blueprint

from ledger.api import schemas
from ledger.api.auth import SECURED, idempotent, require
from ledger.api.body import PARSED
from ledger.api.openapi import READS_AFTER_SEQ
from ledger.api.problems import ApiProblem
from ledger.api.state import appended, state
from ledger.domain.base import NotFound
from ledger.domain.candidate import derive_answer
from ledger.projections.profiles import read_profile

# Built once: a marshmallow schema's construction costs more than loading one answer.
ANSWER_IN = schemas.AnswerIn()
ANSWER_BATCH_IN = schemas.AnswerBatchIn()

blp = Blueprint(
    "candidates", __name__, url_prefix="/api/v1", description="Candidates and positioning"
)


@blp.route("/candidates", methods=["POST"])
@require("events:append")
@idempotent
@blp.arguments(schemas.CandidateIn)
@blp.response(201, schemas.CandidateOut)
@blp.doc(security=SECURED)
def register_candidate(body: dict[str, Any]) -> dict[str, Any]:
    """Register a candidate; identity is sealed for a fresh subject before it is logged."""
    identity = {
        "first_name": body["first_name"],
        "last_name": body["last_name"],
        "birth_date": body["birth_date"].isoformat(),
        "birth_place": body["birth_place"],
    }
    if body.get("email"):
        identity["email"] = body["email"]
    candidate, seq = state().candidates.register(
        identity, body["audience"], body["external_id"], body["school"]
    )
    return {"id": str(candidate.id), "subject": candidate.subject, **appended(seq)}


def _batch_body() -> list[dict[str, Any]]:
    """Accept one answer object or {"answers": [...]}; refuse oversize batches up front."""
    payload = request.environ.get(PARSED)  # checked before the view (ledger/api/body.py)
    if payload is None:  # only an empty body is not parsed there
        if not request.is_json:
            raise ApiProblem(415, "unsupported-media-type", "send Content-Type: application/json")
        raise ApiProblem(400, "malformed-json", "the request body is not valid JSON")
    if isinstance(payload, dict) and "answers" in payload:
        answers = payload["answers"]
        limit = state().config.max_batch
        if isinstance(answers, list) and len(answers) > limit:
            raise ApiProblem(
                413, "batch-too-large", f"a batch holds at most {limit} answers, got {len(answers)}"
            )
        return ANSWER_BATCH_IN.load(payload)["answers"]
    return [ANSWER_IN.load(payload)]


@blp.route("/answers", methods=["POST"])
@require("events:append")
@idempotent
@blp.response(201, schemas.AnswerBatchOut)
@blp.doc(
    security=SECURED,
    requestBody={
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {"$ref": "#/components/schemas/AnswerBatchIn"},
                        {"$ref": "#/components/schemas/AnswerIn"},
                    ]
                }
            }
        },
    },
)
def record_answers() -> tuple[Response, int]:
    """Record positioning answers: one object, or a batch of up to LEDGER_MAX_BATCH.

    `skill` and `competence` may be left out: they are derived from `challenge`
    (see GET /api/v1/referential); when sent, a mismatch is a 422 naming the field.
    An answer for an erased candidate is a 409.

    Each answer is idempotent by its `answer_id` for its candidate: resending it is
    reported as `duplicate` and writes nothing. A batch is atomic: any invalid answer
    rejects the whole batch and nothing is written.
    """
    items = _batch_body()
    ref = state().referential
    answers = [
        (
            str(item["candidate"]),
            derive_answer(ref, **{k: v for k, v in item.items() if k != "candidate"}),
        )
        for item in items
    ]
    outcomes = state().candidates.record_answers(answers)
    recorded = sum(1 for o in outcomes if o.status == "recorded")
    body = {
        "recorded": recorded,
        "duplicates": len(outcomes) - recorded,
        "results": [o.__dict__ for o in outcomes],
    }
    return jsonify(body), 201  # already AnswerBatchOut's shape: the hot path skips its dump


@blp.route("/candidates/<uuid:candidate_id>/profile", methods=["GET"])
@require("events:append", "audit:read")
@blp.response(200, schemas.ProfileOut)
@blp.doc(security=SECURED)
@blp.doc(**READS_AFTER_SEQ)
def get_profile(candidate_id: Any) -> dict[str, Any]:
    """The candidate's competence profile: pix and level per competence, eligibility."""
    st = state()
    st.fresh()
    with st.ledger.db.read() as cur:
        found = read_profile(cur, str(candidate_id))
    if found is None:
        raise NotFound(f"no candidate {candidate_id}")
    identity = st.ledger.vault.open_or_none(found["identity"])
    titles = {c.code: c.title for c in st.referential.competences}
    return {
        **found,
        "identity": identity,
        "erased": identity is None,
        "max_level": st.config.max_level,
        "competences": [{**c, "title": titles[c["code"]]} for c in found["competences"]],
    }


@blp.route("/subjects/<uuid:subject>/erasure", methods=["POST"])
@require("admin")
@idempotent
@blp.arguments(schemas.ErasureIn)
@blp.response(201, schemas.ErasureOut)
@blp.doc(security=SECURED)
def erase_subject(body: dict[str, Any], subject: Any) -> dict[str, Any]:
    """Erase a person (GDPR): their data key is deleted; the log still verifies."""
    seq = state().candidates.erase(str(subject), body["reason"])
    return {"subject": str(subject), "erased": True, **appended(seq)}
