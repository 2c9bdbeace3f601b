"""A poisoned event can stall one projection, never wedge the service.

The poison is written the way a buggy older version or someone with database
access would: a properly signed and chained row that did not pass through the
domain's payload check.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import pytest

from ledger import crypto
from ledger.api import create_app
from ledger.domain import clock
from ledger.projections.runner import (
    ProjectionStalled,
    catch_up,
    dump,
    head,
    position,
    rebuild,
    stalls,
)
from ledger.store.mapper import LedgerStoredEvent
from tests.helpers import register


def _poison(st: Any, topic: str, data: dict[str, Any]) -> int:
    """Append a signed, chained event that skipped the payload check; return its seq."""
    stored = LedgerStoredEvent(
        originator_id=uuid.uuid4(),
        originator_version=1,
        topic=topic,
        state=json.dumps(data).encode(),
        time=clock.format_time(clock.now()),
        event_id=str(uuid.uuid4()),
    )
    (seq,) = st.ledger.recorder.insert_events([stored])
    return seq


def _centre(client: Any, admin: dict[str, str], name: str) -> str:
    response = client.post(
        "/api/v1/centres", json={"name": name, "kind": "school", "city": "Brest"}, headers=admin
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def _centre_names(st: Any) -> set[str]:
    with st.ledger.db.read() as cur:
        cur.execute("SELECT name FROM proj_centres")
        return {r[0] for r in cur.fetchall()}


def _shadows(db: Any) -> list[str]:
    """Tables and indexes with the rebuild's suffix, in the ledger's schema."""
    if db.kind == "sqlite":
        sql = "SELECT name FROM sqlite_master WHERE name LIKE '%rebuild%'"
    else:
        sql = (
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = current_schema() AND strpos(c.relname, 'rebuild') > 0"
        )
    with db.read() as cur:
        cur.execute(sql)
        return sorted(r[0] for r in cur.fetchall())


@pytest.fixture
def poisoned(app, client, admin) -> dict[str, Any]:
    """Centre A, then a CentreCreated without a name, then centre B and a candidate."""
    st = app.extensions["ledger"]
    _centre(client, admin, "Centre A")
    bad = _poison(st, "certification.CentreCreated", {"kind": "school", "city": "Brest"})
    centre_b = _centre(client, admin, "Centre B")
    candidate = register(client, admin)
    return {"st": st, "bad": bad, "centre_b": centre_b, "candidate": candidate}


def test_a_bad_event_stalls_one_projection_at_its_seq(poisoned, client, admin) -> None:
    st, bad = poisoned["st"], poisoned["bad"]
    assert catch_up(st.ledger.db, st.projections) == {"sessions"}
    stall = stalls(st.ledger.db)["sessions"]
    assert stall["seq"] == bad and "KeyError" in stall["error"]
    assert position(st.ledger.db, "sessions") == bad - 1  # every event before it applied
    assert _centre_names(st) == {"Centre A"}  # the last good state
    latest = head(st.ledger.db)
    for other in ("profiles", "courses", "certificates"):
        assert position(st.ledger.db, other) == latest  # the others went on
    profile = client.get(f"/api/v1/candidates/{poisoned['candidate']['id']}/profile", headers=admin)
    assert profile.status_code == 200, profile.get_json()  # registered after the poison
    sessions = client.get(f"/api/v1/centres/{poisoned['centre_b']}/sessions", headers=admin)
    assert sessions.status_code == 200, sessions.get_json()
    ready = client.get("/api/v1/ready")  # a stalled read model is reported, with its seq
    assert ready.status_code == 503
    assert ready.get_json()["checks"]["projections"]["stalled"]["sessions"]["seq"] == bad


def test_a_stall_is_retried_with_backoff_and_clears_once_fixed(poisoned) -> None:
    st, bad = poisoned["st"], poisoned["bad"]
    catch_up(st.ledger.db, st.projections)
    first = stalls(st.ledger.db)["sessions"]
    catch_up(st.ledger.db, st.projections)  # within the backoff: not retried
    assert stalls(st.ledger.db)["sessions"]["attempts"] == first["attempts"] == 1
    later = clock.parse_time(first["retry_at"]) + timedelta(seconds=1)
    with clock.frozen_at(later):
        catch_up(st.ledger.db, st.projections)
    second = stalls(st.ledger.db)["sessions"]
    assert second["attempts"] == 2 and second["seq"] == bad and second["since"] == first["since"]
    assert clock.parse_time(second["retry_at"]) - later == timedelta(seconds=4)

    sessions = next(p for p in st.projections if p.name == "sessions")
    broken = sessions.apply

    def fixed(cur: Any, env: Any) -> None:  # a release that tolerates the bad event
        if env.seq != bad:
            broken(cur, env)

    sessions.apply = fixed
    with clock.frozen_at(later + timedelta(minutes=10)):
        assert catch_up(st.ledger.db, st.projections) == set()
    assert "sessions" not in stalls(st.ledger.db)
    assert _centre_names(st) == {"Centre A", "Centre B"}


def test_a_failing_rebuild_leaves_the_read_models_intact(poisoned) -> None:
    st, bad = poisoned["st"], poisoned["bad"]
    catch_up(st.ledger.db, st.projections)
    before = dump(st.ledger.db, st.projections)
    assert before["proj_centres"] and before["proj_candidates"]
    positions = {p.name: position(st.ledger.db, p.name) for p in st.projections}
    with pytest.raises(ProjectionStalled) as caught:
        rebuild(st.ledger.db, st.projections)
    assert caught.value.seq == bad and caught.value.name == "sessions"
    assert dump(st.ledger.db, st.projections) == before
    assert {p.name: position(st.ledger.db, p.name) for p in st.projections} == positions
    assert stalls(st.ledger.db)["sessions"]["seq"] == bad
    assert _shadows(st.ledger.db) == []  # the half-built shadow tables are gone


def test_the_server_starts_with_a_stalled_projection(poisoned, config) -> None:
    catch_up(poisoned["st"].ledger.db, poisoned["st"].projections)
    second = create_app(config)
    try:
        health = second.test_client().get("/api/v1/health")
        assert health.status_code == 200
    finally:
        second.extensions["ledger"].ledger.close()


def test_a_nul_the_read_model_cannot_store_does_not_wedge(app, client, admin, database_url) -> None:
    """PostgreSQL refuses NUL in text: the write fails, is reported, nothing else breaks."""
    st = app.extensions["ledger"]
    centre = _centre(client, admin, "Centre A")
    data = {"centre": centre, "audience": "adult", "date": "2026-12-01", "time": "09:00",
            "address": "1 rue\x00", "room": "B1", "examiner": {"sealed": "x", "subject": "y"}}  # fmt: skip
    bad = _poison(st, "certification.SessionCreated", data)
    assert crypto.canonical_json(data)  # a valid JSON value: only the read model objects
    candidate = register(client, admin)
    stalled = catch_up(st.ledger.db, st.projections)
    if database_url.startswith("postgresql"):
        assert stalled == {"sessions"}
        assert stalls(st.ledger.db)["sessions"]["seq"] == bad
    profile = client.get(f"/api/v1/candidates/{candidate['id']}/profile", headers=admin)
    assert profile.status_code == 200
    assert client.get(f"/api/v1/centres/{centre}/sessions", headers=admin).status_code == 200
