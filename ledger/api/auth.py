"""Bearer-token authentication with scopes, and idempotent POSTs.

`require(scope)` wraps a view: no or bad token is 401, a token without the
scope is 403. `Idempotency-Key` on a POST stores the first response for that
key and principal; a retry replays it byte for byte, and the same key with a
different body is refused, so a retried request never writes twice.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import Response, g, request

from ledger import crypto
from ledger.api.problems import ApiProblem, from_api, from_domain
from ledger.api.state import state
from ledger.domain import clock
from ledger.domain.base import DomainError
from ledger.store.db import UniqueViolation
from ledger.store.tokens import Principal

MAX_KEY_LENGTH = 200
SECURED = [{"bearer": []}]  # OpenAPI security requirement of token-protected operations


def _principal() -> Principal:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    challenge = {"WWW-Authenticate": 'Bearer realm="ledger"'}
    if not header:
        raise ApiProblem(401, "missing-token", "send Authorization: Bearer <token>", challenge)
    principal = state().tokens.authenticate(token.strip()) if scheme.lower() == "bearer" else None
    if principal is None:
        raise ApiProblem(
            401, "invalid-token", "the bearer token is unknown, revoked or malformed", challenge
        )
    return principal


def require(*scopes: str) -> Callable:
    """Allow the view to a token holding any of `scopes` (admin holds all)."""

    def decorate(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            principal = _principal()
            if not any(principal.has(scope) for scope in scopes):
                raise ApiProblem(
                    403, "insufficient-scope", f"this call needs scope {' or '.join(scopes)}"
                )
            g.principal = principal
            return view(*args, **kwargs)

        wrapper._scopes = scopes  # type: ignore[attr-defined]
        return wrapper

    return decorate


def current_principal() -> Principal:
    return g.principal


def _request_fingerprint() -> str:
    return crypto.sha256_hex(request.method.encode() + request.path.encode() + request.get_data())


def idempotent(view: Callable) -> Callable:
    """Claim the `Idempotency-Key` first, run the view once, store its response for replays."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        key = request.headers.get("Idempotency-Key")
        if key is None:
            return view(*args, **kwargs)
        if not key.strip() or len(key) > MAX_KEY_LENGTH:
            raise ApiProblem(400, "invalid-idempotency-key", "Idempotency-Key must be 1-200 chars")
        principal = g.principal.token_id
        fingerprint = _request_fingerprint()
        if not _claim(principal, key, fingerprint):
            return _replay(principal, key, fingerprint)
        try:
            response = view(*args, **kwargs)
        except (DomainError, ApiProblem) as error:
            response = from_domain(error) if isinstance(error, DomainError) else from_api(error)
        except BaseException:
            _release(principal, key)
            raise
        _store(principal, key, response)
        return response

    return wrapper


def _claim(principal: str, key: str, fingerprint: str) -> bool:
    """True when this request now owns the key; False when it was seen before."""
    try:
        with state().ledger.db.write(lock=None) as cur:
            cur.execute(
                "INSERT INTO idempotency_keys (principal, key, request_hash, status, body, created)"
                " VALUES (?, ?, ?, 0, '', ?)",
                (principal, key, fingerprint, clock.format_time(clock.now())),
            )
    except UniqueViolation:
        return False
    return True


def _release(principal: str, key: str) -> None:
    with state().ledger.db.write(lock=None) as cur:
        cur.execute(
            "DELETE FROM idempotency_keys WHERE principal = ? AND key = ?", (principal, key)
        )


def _store(principal: str, key: str, response: Response) -> None:
    with state().ledger.db.write(lock=None) as cur:
        cur.execute(
            "UPDATE idempotency_keys SET status = ?, body = ? WHERE principal = ? AND key = ?",
            (response.status_code, response.get_data(as_text=True), principal, key),
        )


def _replay(principal: str, key: str, fingerprint: str) -> Response:
    with state().ledger.db.read() as cur:
        cur.execute(
            "SELECT request_hash, status, body FROM idempotency_keys WHERE principal = ? AND key = ?",
            (principal, key),
        )
        row = cur.fetchone()
    if row is None:
        raise ApiProblem(409, "idempotency-retry", "the first request with this key failed; retry")
    request_hash, status, body = row
    if request_hash != fingerprint:
        raise ApiProblem(
            422, "idempotency-key-reused", "this Idempotency-Key was used for a different request"
        )
    if status == 0:
        raise ApiProblem(
            409,
            "idempotency-in-progress",
            "a request with this Idempotency-Key is still running",
            {"Retry-After": "1"},
        )
    mimetype = "application/problem+json" if status >= 400 else "application/json"
    response = Response(body, status=status, mimetype=mimetype)
    response.headers["Idempotent-Replayed"] = "true"
    return response
