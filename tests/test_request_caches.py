"""What the answer request keeps between requests, and the bounds on each (SQLite and PostgreSQL).

A checked bearer token is trusted for LEDGER_TOKEN_CACHE_S: revoked by this process,
it is refused at once; revoked by another, within that bound. A candidate's subject
is remembered (a registration never changes), never whether they were erased.
SQLite writers of several processes queue on a file lock, whose wait stays bounded.
"""

from __future__ import annotations

import fcntl
import os
from typing import Any

import pytest

from ledger.domain.base import Conflict, NotFound
from ledger.domain.referential import load_referential
from ledger.services.candidates import CandidateService
from ledger.store.application import Ledger
from ledger.store.db import StoreUnavailable, Timeouts, connect
from ledger.store.tokens import TokenStore
from tests.test_streams import nth

REF = load_referential()


class Clock:
    """A monotonic clock the test moves: the token cache's bound without sleeping."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    moved = Clock()
    monkeypatch.setattr("ledger.store.tokens.time.monotonic", moved)
    return moved


def test_a_token_revoked_by_this_process_is_refused_at_once(ledger: Ledger, clock: Clock) -> None:
    store = TokenStore(ledger.db, cache_s=60)
    token_id, token = store.create(["events:append"], "client")
    assert store.authenticate(token) is not None  # now remembered
    assert store.revoke(token_id)
    assert store.authenticate(token) is None


def test_a_token_revoked_elsewhere_is_refused_within_the_bound(
    ledger: Ledger, clock: Clock
) -> None:
    serving, other = TokenStore(ledger.db, cache_s=2), TokenStore(ledger.db)
    token_id, token = other.create(["events:append"], "client")
    assert serving.authenticate(token).scopes == frozenset({"events:append"})
    other.revoke(token_id)  # e.g. `ledger tokens revoke`, another process
    clock.now += 1.9
    assert serving.authenticate(token) is not None  # trusted for at most 2 s
    clock.now += 0.2
    assert serving.authenticate(token) is None
    assert serving.authenticate(token) is None  # a refusal is never remembered as valid


def test_without_a_cache_every_request_reads_the_token(ledger: Ledger, clock: Clock) -> None:
    serving, other = TokenStore(ledger.db, cache_s=0), TokenStore(ledger.db)
    token_id, token = other.create(["admin"], "client")
    assert serving.authenticate(token) is not None
    other.revoke(token_id)
    assert serving.authenticate(token) is None


def test_a_wrong_secret_is_refused_even_after_the_right_one_was_cached(
    ledger: Ledger, clock: Clock
) -> None:
    store = TokenStore(ledger.db, cache_s=60)
    _, token = store.create(["events:append"], "client")
    assert store.authenticate(token) is not None
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert store.authenticate(forged) is None


def test_an_erased_candidate_is_refused_though_their_subject_is_remembered(
    ledger: Ledger,
) -> None:
    service = CandidateService(ledger, REF)
    candidate, _ = service.register({"first_name": "Inès", "last_name": "Morel"})
    cid = str(candidate.id)
    assert service.record_answers([(cid, nth(0))])[0].status == "recorded"
    service.erase(candidate.subject, "data-subject-request")
    with pytest.raises(Conflict, match="erased"):
        service.record_answers([(cid, nth(1))])


def test_an_unknown_candidate_is_not_remembered(ledger: Ledger) -> None:
    service = CandidateService(ledger, REF)
    missing = "00000000-0000-4000-8000-000000000000"
    for _ in range(2):
        with pytest.raises(NotFound):
            service.record_answers([(missing, nth(0))])


def test_a_sqlite_writer_waits_for_another_process_s_turn_at_most_the_busy_timeout(
    tmp_path: Any,
) -> None:
    db = connect(f"sqlite:///{tmp_path / 'q.db'}", Timeouts(busy_ms=200))
    with db.write(lock=None) as cur:
        cur.execute("CREATE TABLE t (x INTEGER)")
    holder = os.open(f"{tmp_path / 'q.db'}.writer", os.O_RDWR)  # another process's turn
    fcntl.flock(holder, fcntl.LOCK_EX)
    try:
        with pytest.raises(StoreUnavailable), db.write(lock=None) as cur:
            cur.execute("INSERT INTO t VALUES (1)")
    finally:
        os.close(holder)  # the turn ends: the next writer goes through
    with db.write(lock=None) as cur:
        cur.execute("INSERT INTO t VALUES (2)")
    assert db.rows("SELECT x FROM t") == [(2,)]
    db.close()
