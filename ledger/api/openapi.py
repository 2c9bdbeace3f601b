"""The OpenAPI document's error responses, declared once for every operation.

Any operation can answer any of these problems (auth, limits, body checks,
faults), so listing them per endpoint would only let the document drift
from what the service does. An apispec plugin adds them all, with the
`application/problem+json` media type and one Problem schema, to every
operation, replacing flask-smorest's `application/json` error defaults.
"""

from __future__ import annotations

import re
from typing import Any

from apispec import APISpec, BasePlugin

from ledger.api.examples import WEBHOOK_PAYLOAD, add_examples
from ledger.api.problems import PROBLEM_JSON, TITLES

PROBLEM_STATUSES = (400, 401, 403, 404, 405, 409, 410, 413, 415, 422, 429, 503)
PROBLEM_SCHEMA = {
    "type": "object",
    "description": "RFC 9457 problem details",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {
            "type": "string",
            "description": "/problems/<code>, a stable slug; GET it for what it means and how to fix it",
        },
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "instance": {"type": ["string", "null"]},
        "errors": {"description": "per-field messages of a 422"},
    },
}

SIGNATURE_HEADERS = {
    "Content-Digest": "RFC 9530 `sha-256=:<base64>:` of the body",
    "Signature-Input": 'RFC 9421 `sig1=("@method" "@target-uri" "content-digest" '
    '"content-type");created=<unix>;keyid="<JWKS kid>";alg="ed25519"`',
    "Signature": "RFC 9421 `sig1=:<base64 Ed25519 signature>:` of the signature base",
}
# OpenAPI 3.1 `webhooks`: what the ledger POSTs to a school's registered URL.
WEBHOOKS = {
    "certificateEvent": {
        "post": {
            "summary": "A publication, cancellation or rescoring of one of the school's pupils",
            "description": "POSTed to each URL the school registered, signed with an RFC 9421 "
            "HTTP Message Signature (Ed25519, key in /.well-known/jwks.json) over the method, "
            "the target URI as sent (scheme, Host, path), Content-Digest and Content-Type. "
            "Retried after 10 s, 1 min, 5 min, 30 min and 2 h until a 2xx answer; at least "
            "once, so drop a `delivery` already processed. See LEDGER_FORMAT, "
            '"Webhook deliveries".',
            "parameters": [
                {
                    "name": name,
                    "in": "header",
                    "required": True,
                    "description": text,
                    "schema": {"type": "string"},
                }
                for name, text in SIGNATURE_HEADERS.items()
            ],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"$ref": "#/components/schemas/WebhookPayload"},
                        "example": WEBHOOK_PAYLOAD,
                    }
                },
            },
            "responses": {
                "2XX": {"description": "received: not sent again"},
                "default": {"description": "not received: retried later"},
            },
        }
    }
}


READS_AFTER_SEQ_KEY = "x-reads-after-seq"
READS_AFTER_SEQ = {READS_AFTER_SEQ_KEY: True}
"""`@blp.doc(**READS_AFTER_SEQ)`: the view reads the read models, so it honours `X-Min-Seq`."""
MIN_SEQ_PARAMETER = {
    "name": "X-Min-Seq",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"},
    "example": "1042",
    "description": "Answer only from read models that include the event at this seq, e.g. the "
    "`seq` a write of yours returned, when another node may serve this read. The read waits up "
    "to LEDGER_READ_MAX_WAIT_MS for them, then answers 503 `projections-behind` with "
    "Retry-After. Without it the read reflects the log as the request began (`?min_seq=` works "
    "too).",
}


def json_doc(status: int, description: str) -> dict[str, Any]:
    """`@blp.doc` responses of a view that returns a JSON object without a schema."""
    content = {"application/json": {"schema": {"type": "object"}}}
    return {"responses": {str(status): {"description": description, "content": content}}}


def _openapi_path(rule: str) -> str:
    """`/courses/<uuid:course_id>` as the document writes it: `/courses/{course_id}`."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def _response_name(status: int | str) -> str:
    return f"Problem{status}"


class ProblemResponses(BasePlugin):
    """apispec plugin: every operation documents every problem it can answer."""

    def init_spec(self, spec: APISpec) -> None:
        spec.components.schema("Problem", PROBLEM_SCHEMA)
        content = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
        for status in PROBLEM_STATUSES:
            description = TITLES[status]
            if status == 429 or status == 503:
                description += " (Retry-After says when to try again)"
            spec.components.response(
                _response_name(status), {"description": description, "content": content}
            )
        spec.components.parameter("MinSeq", "header", MIN_SEQ_PARAMETER)
        spec.components.response(
            _response_name("Default"), {"description": "Server error", "content": content}
        )

    def operation_helper(
        self, path: str | None = None, operations: dict | None = None, **kwargs: Any
    ) -> None:
        for method, operation in (operations or {}).items():
            add_examples(method, _openapi_path(path or ""), operation)
            responses = operation.setdefault("responses", {})
            for status in PROBLEM_STATUSES:
                responses[str(status)] = _response_name(status)
            responses["default"] = _response_name("Default")
            _document_scope(operation)
            if operation.pop(READS_AFTER_SEQ_KEY, False):
                parameters = operation.setdefault("parameters", [])
                parameters.append("MinSeq")  # apispec turns a name into a $ref


SCOPE_NAMES = {
    "centre:*": "centre:<id>",
    "candidate:*": "candidate:<id>",
    "institution:*": "institution:<UAI>",
}
"""How a family of scopes reads: `require` matches any `institution:…`, a token holds its own."""
SCOPE_OWNERS = {
    "centre:<id>": "the centre's own",
    "candidate:<id>": "the candidate's own",
    "institution:<UAI>": "the school's own UAI",
}


def scope_name(scope: str) -> str:
    """A scope as a token holds it: `institution:<UAI>`, never the pattern `institution:*`."""
    return SCOPE_NAMES.get(scope, scope)


def scope_sentence(scopes: list[str]) -> str:
    """What a caller reads about access: the scopes `require` checks, or that none is needed."""
    if not scopes:
        return "Public: no token needed."
    names = [
        f"`{name}`" + (f" ({SCOPE_OWNERS[name]})" if name in SCOPE_OWNERS else "")
        for name in map(scope_name, scopes)
    ]
    return f"Requires a bearer token with scope {' or '.join(names)} (`admin` holds all)."


def _document_scope(operation: dict[str, Any]) -> None:
    """`x-required-scopes` (set by auth.require, empty for public operations) and its sentence.

    Both name scopes as tokens hold them (`institution:<UAI>`), not as the
    patterns `require` matches (`institution:*`), which no token can hold.
    """
    scopes = operation.setdefault("x-required-scopes", [])
    sentence = scope_sentence(scopes)
    operation["x-required-scopes"] = [scope_name(s) for s in scopes]
    description = operation.get("description", "")
    if sentence not in description:
        operation["description"] = f"{description}\n\n{sentence}".strip()
