"""RFC 9457 problem details: every error the API returns, in one shape.

Domain errors carry a stable `code` (the problem type slug) and a status;
HTTP errors from Flask/webargs are mapped here too, so no client ever sees an
HTML error page or a stack trace.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Response, json, request
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException

from ledger.api.observe import current_request_id
from ledger.domain.base import DomainError
from ledger.log_redaction import redact_path
from ledger.projections.lag import ProjectionsBehind
from ledger.store.db import StoreUnavailable

PROBLEM_JSON = "application/problem+json"
RETRY_AFTER_S = 1  # a database fault is usually short: retry soon
log = logging.getLogger("ledger.api")

TITLES = {
    400: "Bad request",
    401: "Authentication required",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    410: "Gone",
    413: "Content too large",
    414: "URI too long",
    415: "Unsupported media type",
    417: "Expectation failed",
    422: "Unprocessable content",
    429: "Too many requests",
    431: "Request header fields too large",
    500: "Internal server error",
    501: "Not implemented",
    503: "Service unavailable",
}


def problem(
    status: int, code: str, detail: str, headers: dict[str, str] | None = None, **extra: Any
) -> Response:
    body = {
        "type": f"/problems/{code}",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "instance": request.path if request else None,
        **{k: v for k, v in extra.items() if v is not None},
    }
    if rid := current_request_id():  # the id the response header echoes
        body["request_id"] = rid
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM_JSON)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


class ApiProblem(Exception):
    """Raised by API code for an error that is not a domain rule (auth, limits, input)."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ):
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail
        self.headers = headers or {}
        self.extra = extra


def from_domain(error: DomainError) -> Response:
    return problem(error.status, error.code, error.detail, **error.extra)


def from_api(error: ApiProblem) -> Response:
    return problem(error.status, error.code, error.detail, error.headers, **error.extra)


HTTP_CODES = {
    400: "malformed-request",
    404: "not-found",
    405: "method-not-allowed",
    413: "content-too-large",
    415: "unsupported-media-type",
    422: "validation-failed",
}


def from_http(error: HTTPException) -> Response:
    status = error.code or 500
    data = getattr(error, "data", None) or {}
    errors = data.get("errors") or data.get("messages")
    if isinstance(errors, dict) and set(errors) <= {"json", "query", "headers", "files", "form"}:
        parts = [part for part in errors.values() if isinstance(part, dict)]
        errors = {k: v for part in parts for k, v in part.items()} or errors
    detail = data.get("message") or error.description or TITLES.get(status, "Error")
    if status == 400 and "json" in f"{detail} {errors}".lower():
        return problem(400, "malformed-json", "the request body is not valid JSON")
    if status == 422 and errors:
        detail = schema_mismatch(errors)
    headers = dict(data.get("headers") or {})
    if getattr(error, "valid_methods", None):  # 405 names what is allowed
        headers["Allow"] = ", ".join(error.valid_methods)  # type: ignore[attr-defined]
    if getattr(error, "retry_after", None):
        headers["Retry-After"] = str(error.retry_after)  # type: ignore[attr-defined]
    return problem(
        status, HTTP_CODES.get(status, "http-error"), str(detail), headers, errors=errors
    )


def schema_mismatch(errors: object) -> str:
    """A 422's detail names the fields at fault, so a log line alone says what to fix."""
    names = ", ".join(sorted(map(str, errors))) if isinstance(errors, dict) else ""
    suffix = f" ({names})" if names else ""
    return f"the request does not match the schema; see errors{suffix}"


def from_validation(error: ValidationError) -> Response:
    return problem(
        422,
        "validation-failed",
        schema_mismatch(error.messages),
        errors=error.messages,
    )


def from_unavailable(error: StoreUnavailable) -> Response:
    """Database down, locked or too slow: 503 now rather than a hang, retry shortly."""
    log.warning("%s %s: %s", request.method, request.path, error)
    if isinstance(error, ProjectionsBehind):
        return from_behind(error)
    return problem(
        503,
        "service-unavailable",
        "the service cannot reach its database right now; retry shortly",
        {"Retry-After": str(RETRY_AFTER_S)},
    )


def from_behind(error: ProjectionsBehind) -> Response:
    """Read models older than the read needs (runner stopped or far behind): stale, so 503."""
    return problem(
        503,
        "projections-behind",
        f"the read models have not reached seq {error.required} yet; retry shortly",
        {"Retry-After": str(RETRY_AFTER_S)},
        required_seq=error.required,
        applied_seq=error.applied,
    )


def from_unexpected(error: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, redact_path(request.path))
    return problem(500, "internal-error", "an unexpected error occurred; it has been logged")
