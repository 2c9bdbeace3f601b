"""The CRCN referential as published data, so a platform integrates from the API alone.

Public: the referential is the framework the certificates refer to, not personal
data, and a verifier may want it as much as a platform. Each shipped version is
immutable, so its ETag is the version's content hash and clients can cache it.
"""

from __future__ import annotations

import hashlib
import json

from flask import Response, jsonify, request
from flask_smorest import Blueprint

from ledger.api.state import state
from ledger.domain.base import NotFound
from ledger.domain.referential import Referential, ReferentialError, load_referential

blp = Blueprint(
    "referential",
    __name__,
    url_prefix="/api/v1",
    description="The competence referential: domains, competences, tubes, skills, challenges",
)

REFERENTIAL_OK = {
    "200": {
        "description": "The referential version: domains, competences (with `domain`), tubes"
        " (with `competence`), skills (`id`, `tube`, `difficulty`) and challenges (`id`,"
        " `skill`); cacheable: send the ETag back in `If-None-Match` for a 304",
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/ReferentialOut"}}
        },
        "headers": {"ETag": {"schema": {"type": "string"}}},
    },
    "304": {"description": "Not modified (the `If-None-Match` ETag matches)"},
}


def _cached(ref: Referential) -> Response:
    """The JSON with a strong ETag over its bytes; 304 when the client already holds it."""
    document = ref.to_dict()
    body = json.dumps(document, sort_keys=True, ensure_ascii=False)
    tag = hashlib.sha256(body.encode()).hexdigest()[:32]
    response = jsonify(document)
    response.set_etag(tag)
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response.make_conditional(request)


@blp.route("/referential", methods=["GET"])
@blp.doc(responses=REFERENTIAL_OK)
def current_referential() -> Response:
    """The referential version answers are recorded under now (public)."""
    return _cached(state().referential)


@blp.route("/referential/<string:version>", methods=["GET"])
@blp.doc(responses=REFERENTIAL_OK)
def referential_version(version: str) -> Response:
    """One shipped referential version by name (public); 404 problem for an unknown one."""
    if version == state().referential.version:
        return _cached(state().referential)
    try:
        return _cached(load_referential(version))
    except ReferentialError:
        raise NotFound(f"no referential version {version!r}") from None
