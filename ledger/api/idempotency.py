"""Idempotent POSTs: `Idempotency-Key` claims that survive crashes and keep no secret.

The first request with a key claims it (a row with status 0), runs once and
stores its response; a retry with the same key and body replays that response
byte for byte, and the same key with another body is refused, so a retried
request never writes twice.

A claim whose request never finished (its worker was killed) expires after
`LEDGER_IDEMPOTENCY_CLAIM_TTL_S`: the next retry takes it over with one
conditional UPDATE, so of several concurrent retries exactly one runs. Each
claim is identified by its claim time; a request only stores or releases its
own claim, never one a retry took over.

Stored responses are sealed (AES-256-GCM) under a key derived with HKDF from
the caller's bearer token, which the database never holds: a created API token
or a person's data in a response is unreadable in the idempotency table, and
only the same caller, retrying with the same token, can replay it. The request
fingerprint is an HMAC under a key derived the same way, so the table cannot
confirm a guessed body either (a body may hold a person's identity).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Response, g, request

from ledger import crypto
from ledger.api.problems import PROBLEM_JSON, ApiProblem, from_api, from_domain
from ledger.api.state import state
from ledger.domain import clock
from ledger.domain.base import DomainError
from ledger.store.db import UniqueViolation

MAX_KEY_LENGTH = 200
IN_PROGRESS = 0  # status of a claimed key whose response is not stored yet


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
        fingerprint = request_fingerprint(
            _bearer(), principal, key, request.method + " " + request.path, request.get_data()
        )
        claim = _claim(principal, key, fingerprint)
        if claim is None:
            return _replay(principal, key, fingerprint)
        try:
            response = view(*args, **kwargs)
        except (DomainError, ApiProblem) as error:
            response = from_domain(error) if isinstance(error, DomainError) else from_api(error)
        except BaseException:
            _release(principal, key, claim)
            raise
        _store(principal, key, claim, response)
        return response

    return wrapper


def request_fingerprint(token: str, principal: str, key: str, target: str, body: bytes) -> str:
    """HMAC of the request under a key only the caller's bearer token gives."""
    mac_key = crypto.derive_key(
        token.encode(), f"ledger idempotency fingerprint v1\0{principal}\0{key}".encode()
    )
    return crypto.hmac_sha256_hex(mac_key, target.encode() + b"\0" + body)


def _bearer() -> str:
    return request.headers.get("Authorization", "").partition(" ")[2].strip()


def _now() -> str:
    """Wall-clock time (not the domain clock, which tests move): claims expire in real time."""
    return clock.format_time(datetime.now(UTC))


def _claim(principal: str, key: str, fingerprint: str) -> str | None:
    """This request's claim time when it now owns the key; None when the key is taken."""
    claimed = _now()
    try:
        with state().ledger.db.write(lock=None) as cur:
            cur.execute(
                "INSERT INTO idempotency_keys (principal, key, request_hash, status, body, created)"
                " VALUES (?, ?, ?, ?, '', ?)",
                (principal, key, fingerprint, IN_PROGRESS, claimed),
            )
        return claimed
    except UniqueViolation:
        return _take_over(principal, key, fingerprint, claimed)


def _take_over(principal: str, key: str, fingerprint: str, claimed: str) -> str | None:
    """Take an expired claim of the same request: one conditional UPDATE, so one winner."""
    ttl = timedelta(seconds=state().config.idempotency_claim_ttl_s)
    expired_before = clock.format_time(datetime.now(UTC) - ttl)
    with state().ledger.db.write(lock=None) as cur:
        cur.execute(
            "UPDATE idempotency_keys SET created = ? WHERE principal = ? AND key = ?"
            " AND request_hash = ? AND status = ? AND created < ?",
            (claimed, principal, key, fingerprint, IN_PROGRESS, expired_before),
        )
        return claimed if cur.rowcount == 1 else None


def _release(principal: str, key: str, claim: str) -> None:
    with state().ledger.db.write(lock=None) as cur:
        cur.execute(
            "DELETE FROM idempotency_keys WHERE principal = ? AND key = ? AND status = ?"
            " AND created = ?",
            (principal, key, IN_PROGRESS, claim),
        )


def _sealing_key(principal: str, key: str) -> bytes:
    """Derived from the caller's bearer token, which only the caller holds."""
    return crypto.derive_key(
        _bearer().encode(), f"ledger idempotency v1\0{principal}\0{key}".encode()
    )


def _store(principal: str, key: str, claim: str, response: Response) -> None:
    sealed = crypto.seal(_sealing_key(principal, key), response.get_data())
    with state().ledger.db.write(lock=None) as cur:
        cur.execute(
            "UPDATE idempotency_keys SET status = ?, body = ? WHERE principal = ? AND key = ?"
            " AND status = ? AND created = ?",
            (response.status_code, crypto.b64url(sealed), principal, key, IN_PROGRESS, claim),
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
    if status == IN_PROGRESS:
        raise ApiProblem(
            409,
            "idempotency-in-progress",
            "a request with this Idempotency-Key is still running",
            {"Retry-After": "1"},
        )
    try:
        data = crypto.unseal(_sealing_key(principal, key), crypto.b64url_decode(body))
    except crypto.CryptoError as exc:
        raise ApiProblem(
            409, "idempotency-retry", "the stored response cannot be replayed; use a new key"
        ) from exc
    mimetype = PROBLEM_JSON if status >= 400 else "application/json"
    response = Response(data, status=status, mimetype=mimetype)
    response.headers["Idempotent-Replayed"] = "true"
    return response
