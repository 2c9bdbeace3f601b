"""Idempotency keys survive crashed workers and never keep a secret (issue 8, point 5)."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from functools import partial
from pathlib import Path
from typing import Any

from ledger import crypto
from ledger.api.idempotency import request_fingerprint
from ledger.config import Config
from ledger.store.application import Ledger
from ledger.store.tokens import TokenStore
from tests.conftest import append_lock_held
from tests.helpers import IDENTITY
from tests.served import serve

BODY = json.dumps(IDENTITY).encode()
REGISTERED = "candidates.CandidateRegistered"


def _idempotency_rows(ledger: Ledger) -> list[tuple]:
    with ledger.db.read() as cur:
        cur.execute(
            "SELECT principal, key, request_hash, status, body, created FROM idempotency_keys"
        )
        return cur.fetchall()


def _claimed(ledger: Ledger, key: str) -> bool:
    return any(row[1] == key for row in _idempotency_rows(ledger))


def _fingerprint(headers: dict[str, str], principal: str, key: str) -> str:
    """What a claim of POST /api/v1/candidates with BODY records."""
    token = headers["Authorization"].split()[1]
    return request_fingerprint(token, principal, key, "POST /api/v1/candidates", BODY)


def _registrations(ledger: Ledger) -> int:
    return len(ledger.recorder.iter_envelopes_of_type(REGISTERED))


def _post(client: Any, headers: dict[str, str], key: str) -> Any:
    return client.post(
        "/api/v1/candidates",
        data=BODY,
        content_type="application/json",
        headers={**headers, "Idempotency-Key": key},
    )


def test_the_stored_fingerprint_cannot_confirm_a_guessed_body(app, client, appender) -> None:
    """A body holds a person's identity: only an HMAC keyed by the caller's token is kept."""
    assert _post(client, appender, "guess-1").status_code == 201
    st = app.extensions["ledger"]
    principal = st.tokens.authenticate(appender["Authorization"].split()[1]).token_id
    (row,) = _idempotency_rows(st.ledger)
    guesses = [crypto.sha256_hex(b"POST/api/v1/candidates" + BODY), crypto.sha256_hex(BODY)]
    assert row[2] not in guesses
    assert row[2] == _fingerprint(appender, principal, "guess-1")
    assert _post(client, appender, "guess-1").headers["Idempotent-Replayed"] == "true"


def test_a_created_token_is_replayed_but_never_stored_in_clear(app, client, admin) -> None:
    centre = client.post(
        "/api/v1/centres", json={"name": "Lycée", "kind": "school", "city": "Brest"}, headers=admin
    ).get_json()["id"]
    headers = {**admin, "Idempotency-Key": "staff-1"}
    url = f"/api/v1/centres/{centre}/tokens"
    first = client.post(url, json={"label": "accueil"}, headers=headers)
    assert first.status_code == 201
    token = first.get_json()["token"]
    ledger = app.extensions["ledger"].ledger
    stored = " ".join(str(value) for row in _idempotency_rows(ledger) for value in row)
    assert "staff-1" in stored and token not in stored
    secret = token.split("_", 2)[2]  # lt_<id>_<secret>: the secret may hold "_" itself
    assert len(secret) >= 40 and secret not in stored  # not even the secret part
    again = client.post(url, json={"label": "accueil"}, headers=headers)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json()["token"] == token
    listing = client.get(
        f"/api/v1/centres/{centre}/sessions", headers={"Authorization": f"Bearer {token}"}
    )
    assert listing.status_code == 200


def test_a_claim_left_by_a_dead_worker_expires_and_one_retry_wins(app, appender) -> None:
    st = app.extensions["ledger"]
    st.config = dataclasses.replace(st.config, idempotency_claim_ttl_s=1)
    principal = st.tokens.authenticate(appender["Authorization"].split()[1]).token_id
    with st.ledger.db.write(lock=None) as cur:  # exactly what a worker killed mid-request leaves
        cur.execute(
            "INSERT INTO idempotency_keys (principal, key, request_hash, status, body, created)"
            " VALUES (?, 'dead-1', ?, 0, '', ?)",
            (principal, _fingerprint(appender, principal, "dead-1"), "2020-01-01T00:00:00.000000Z"),
        )
    # A different body under the same key is still refused.
    other = app.test_client().post(
        "/api/v1/candidates",
        json={**IDENTITY, "first_name": "Zoé"},
        headers={**appender, "Idempotency-Key": "dead-1"},
    )
    assert other.status_code == 422
    barrier = threading.Barrier(4)

    def retry(_: int) -> Any:
        barrier.wait()
        return _post(app.test_client(), appender, "dead-1")

    with ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(retry, range(4)))
    fresh = [
        r for r in responses if r.status_code == 201 and "Idempotent-Replayed" not in r.headers
    ]
    assert len(fresh) == 1, [(r.status_code, r.get_json()) for r in responses]
    assert all(r.status_code in (201, 409) for r in responses)
    assert _registrations(st.ledger) == 1
    replay = _post(app.test_client(), appender, "dead-1")
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.get_json() == fresh[0].get_json()
    assert _registrations(st.ledger) == 1


def test_a_running_claim_is_not_taken_over_before_it_expires(app, client, appender) -> None:
    st = app.extensions["ledger"]
    principal = st.tokens.authenticate(appender["Authorization"].split()[1]).token_id
    with st.ledger.db.write(lock=None) as cur:
        cur.execute(
            "INSERT INTO idempotency_keys (principal, key, request_hash, status, body, created)"
            " VALUES (?, 'busy-1', ?, 0, '', ?)",
            (principal, _fingerprint(appender, principal, "busy-1"), "2999-01-01T00:00:00.000000Z"),
        )  # fmt: skip
    response = _post(client, appender, "busy-1")
    assert response.status_code == 409 and response.headers["Retry-After"] == "1"
    assert response.get_json()["type"] == "/problems/idempotency-in-progress"
    assert _registrations(st.ledger) == 0


# --- a real worker, really killed --------------------------------------------------


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


@contextmanager
def _blocked_after_claim(
    database_url: str, key: str, send: Callable[[], Future]
) -> Iterator[Future]:
    """Send a request and hold the ledger's write lock so it blocks right after its claim.

    PostgreSQL: the append lock is an advisory lock the claim does not take, so it
    is held first. SQLite has one write lock for both: wait for the claim row, then
    take it (the request is still registering the person's data key by then).
    """
    if database_url.startswith("sqlite:///"):
        pending = send()
        conn = sqlite3.connect(database_url[len("sqlite:///") :], isolation_level=None)
        claimed = "SELECT COUNT(*) FROM idempotency_keys WHERE key = ?"
        try:
            while not conn.execute(claimed, (key,)).fetchone()[0]:
                time.sleep(0.0002)
        finally:
            conn.close()
        with append_lock_held(database_url):
            yield pending
        return
    with append_lock_held(database_url):
        yield send()


def _http_post(url: str, token: str, key: str) -> tuple[int, dict, dict]:
    request = urllib.request.Request(url, data=BODY, method="POST")
    request.add_header("Authorization", f"Bearer {token}")
    request.add_header("Content-Type", "application/json")
    request.add_header("Idempotency-Key", key)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read())


def _kill_after_claim(
    server: int, ledger: Ledger, database_url: str, url: str, token: str
) -> tuple[str, int]:
    """SIGKILL the worker while a request is blocked after its claim, before its append:
    (its key, the registrations logged before it).

    On SQLite the lock can only be taken once the claim is seen, so the request may
    finish first, or append and then wait to store its response; such an attempt
    does not test a kill before the append, and another key is tried.
    """
    for attempt in range(10):
        key = f"kill-{attempt}"
        before = _registrations(ledger)
        with (
            ThreadPoolExecutor(1) as pool,
            _blocked_after_claim(
                database_url, key, partial(pool.submit, _http_post, url, token, key)
            ) as pending,
        ):
            deadline = time.monotonic() + 20
            while not _claimed(ledger, key) and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(0.3)
            if pending.done():
                assert pending.result()[0] == 201
                continue
            (worker,) = _children(server)
            os.kill(worker, signal.SIGKILL)
            with suppress(OSError):  # the connection died with the worker
                pending.result(timeout=20)
            if _registrations(ledger) == before:
                return key, before
    raise AssertionError("no request could be blocked after its claim in 10 attempts")


def test_a_killed_workers_claim_expires_and_the_retry_succeeds_once(
    database_url: str, tmp_path: Path
) -> None:
    config = Config.from_env(database_url=database_url, keys_dir=tmp_path / "keys")
    ledger = Ledger(config)
    ledger.init()
    _, token = TokenStore(ledger.db).create(["events:append"], "kill test")
    with serve(database_url, tmp_path / "keys", env={"LEDGER_IDEMPOTENCY_CLAIM_TTL_S": "2"}) as (
        base,
        server,
    ):
        url = f"{base}/api/v1/candidates"
        key, logged_before = _kill_after_claim(server.pid, ledger, database_url, url, token)
        assert [row[3] for row in _idempotency_rows(ledger) if row[1] == key] == [0]
        assert _registrations(ledger) == logged_before  # the killed request wrote nothing
        for _ in range(100):  # gunicorn starts a new worker; the claim is still fresh
            try:
                status, _, body = _http_post(url, token, key)
                break
            except OSError:
                time.sleep(0.2)
        if status == 409:
            assert body["type"] == "/problems/idempotency-in-progress"
            time.sleep(2.2)
            status, _, body = _http_post(url, token, key)
        assert status == 201, body
        replay = _http_post(url, token, key)
        assert replay[0] == 201 and replay[1].get("Idempotent-Replayed") == "true"
        assert replay[2] == body
    assert _registrations(ledger) == logged_before + 1
    ledger.close()
