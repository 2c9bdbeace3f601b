"""Bearer-token authentication with scopes (idempotent POSTs: ledger/api/idempotency.py).

`require(scope)` wraps a view: no or bad token is 401, a token without the
scope is 403.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from copy import deepcopy
from typing import Any

from flask import g, request

from ledger.api.idempotency import idempotent  # noqa: F401 - views import it from here
from ledger.api.problems import ApiProblem
from ledger.api.state import state
from ledger.store.tokens import Principal

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


def optional_scopes() -> frozenset[str] | None:
    """The caller's scopes on a public operation that tells some tokens more.

    No Authorization header: None (the public answer); a bad token is still 401,
    so a client learns its token is wrong rather than silently reading less.
    """
    if not request.headers.get("Authorization"):
        return None
    return _principal().scopes


def authorize(*scopes: str) -> Principal:
    """The caller, if its token holds any of `scopes` (admin holds all); else 401 or 403."""
    principal = _principal()
    if not any(principal.has(scope) for scope in scopes):
        raise ApiProblem(403, "insufficient-scope", f"this call needs scope {' or '.join(scopes)}")
    g.principal = principal
    return principal


def require(*scopes: str) -> Callable:
    """Allow the view to a token holding any of `scopes` (admin holds all)."""

    def decorate(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            authorize(*scopes)
            return view(*args, **kwargs)

        wrapper._scopes = scopes  # type: ignore[attr-defined]
        _document_scopes(wrapper, scopes)
        return wrapper

    return decorate


def _document_scopes(view: Callable, scopes: tuple[str, ...]) -> None:
    """Let the OpenAPI document say what `require` enforces, so the two cannot drift.

    flask-smorest reads `_apidoc["manual_doc"]` into the operation; the
    ProblemResponses plugin turns `x-required-scopes` into a sentence.
    """
    apidoc = deepcopy(getattr(view, "_apidoc", {}))
    manual = apidoc.setdefault("manual_doc", {})
    manual["x-required-scopes"] = list(scopes)
    manual["security"] = SECURED
    view._apidoc = apidoc  # type: ignore[attr-defined]


def current_principal() -> Principal:
    return g.principal


def scoped_token(scope: str, label: str) -> dict[str, Any]:
    """Create a token holding only `scope`: what the API returns, once (the store keeps a hash)."""
    token_id, token = state().tokens.create([scope], label)
    return {"token_id": token_id, "token": token, "scopes": [scope]}
