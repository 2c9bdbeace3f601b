"""Checkpoint routes, readiness and the `ledger checkpoint` command (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ledger.api import create_app
from ledger.api import log as log_api
from ledger.audit.checkpoint import parse_checkpoint
from ledger.audit.cosignature import parse_vkey, verified_cosigners
from ledger.cli import main
from ledger.config import Config
from ledger.domain import clock
from ledger.services.checkpoints import latest_note
from ledger.store.application import Ledger
from ledger.store.checkpoints import COSIGNED_SIZES, CheckpointStore, Cosignature
from tests.conftest import initialized
from tests.test_checkpoints import add_events, with_settings
from tests.test_history_api import cosign_latest


def _state(app: Any) -> Any:
    return app.extensions["ledger"]


def test_tlog_checkpoint_is_the_stored_note(app: Any, client: Any) -> None:
    response = client.get("/tlog/checkpoint")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert response.headers["Cache-Control"] == "public, max-age=5"
    stored = _state(app).checkpoints.store.latest()
    assert response.get_data(as_text=True) == stored.note  # no witness: no cosignature
    assert client.get("/api/v1/log/checkpoint").get_data(as_text=True) == stored.note
    add_events(_state(app).ledger, 2)  # not due yet (1000 events or 60 s): the same note
    assert client.get("/tlog/checkpoint").get_data(as_text=True) == stored.note


def test_checkpoints_are_listed_after_a_size(app: Any, client: Any) -> None:
    st = _state(app)
    with_settings(st.ledger, checkpoint_events=1)
    st.checkpoints.schedule = type(st.checkpoints.schedule)(1, 60)
    sizes = []
    for _ in range(3):
        add_events(st.ledger, 1)
        sizes.append(st.checkpoints.tick())
    listed = client.get("/api/v1/log/checkpoints").get_json()["checkpoints"]
    assert [c["size"] for c in listed] == sizes
    first = listed[0]
    assert set(first) == {"size", "root", "created_at", "note", "cosigners"}
    assert parse_checkpoint(first["note"])[0].size == first["size"] and first["cosigners"] == {}
    after = client.get(f"/api/v1/log/checkpoints?after={sizes[0]}&limit=1").get_json()
    assert [c["size"] for c in after["checkpoints"]] == [sizes[1]]


@pytest.mark.parametrize(
    "query", ["after=-1", "after=x", "limit=0", "limit=101", "after=9007199254740992"]
)
def test_bad_listing_queries_are_problems(client: Any, query: str) -> None:
    response = client.get(f"/api/v1/log/checkpoints?{query}")
    assert response.status_code == 422
    assert response.headers["Content-Type"] == "application/problem+json"


def test_ready_reports_the_checkpoint_and_its_age(app: Any, client: Any) -> None:
    body = client.get("/api/v1/ready").get_json()
    check = body["checks"]["signed_checkpoint"]
    assert check["ok"] and check["quorum"] == 0 and check["cosigners"] == []
    add_events(_state(app).ledger, 1)
    with clock.frozen_at(clock.now() + timedelta(seconds=301)):
        response = client.get("/api/v1/ready")
    assert response.status_code == 503
    stale = response.get_json()["checks"]["signed_checkpoint"]
    assert not stale["ok"] and "unsigned for over 300 s" in stale["problems"][0]


def test_ledger_checkpoint_for_cron(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEDGER_DATABASE_URL", database_url)
    monkeypatch.setenv("LEDGER_KEYS_DIR", str(tmp_path / "keys"))
    monkeypatch.setenv("LEDGER_CHECKPOINT_EVENTS", "1")
    runner = CliRunner()
    assert runner.invoke(main, ["init"]).exit_code == 0
    first = runner.invoke(main, ["checkpoint"])
    assert first.exit_code == 0 and first.output.startswith("signed checkpoint 0,"), first.output
    again = runner.invoke(main, ["checkpoint"])
    assert again.output.startswith("nothing due: latest checkpoint 0"), again.output
    monkeypatch.setenv("LEDGER_WITNESSES", "not-a-vkey http://127.0.0.1:1")
    bad = runner.invoke(main, ["checkpoint"])
    assert bad.exit_code == 1 and bad.output.startswith("error: LEDGER_WITNESSES"), bad.output


@pytest.fixture
def limited_app(database_url: str, tmp_path: Path) -> Iterator[Any]:
    """An app allowing 4 anonymous lookups per hour and client."""
    config = Config.from_env(
        database_url=database_url,
        keys_dir=tmp_path / "keys",
        master_key="",
        lookup_rate_limit="4/hour",
        ratelimit_storage="memory://",
    )
    initialized(config)
    application = create_app(config)
    application.config["TESTING"] = True
    yield application
    application.extensions["ledger"].ledger.close()


def test_the_listing_is_rate_limited_and_verifies_each_cosignature_once(
    limited_app: Any, monkeypatch: Any
) -> None:
    ledger = _state(limited_app).ledger
    calls: list[int] = []
    real = log_api.cosigned_note
    monkeypatch.setattr(
        log_api, "cosigned_note", lambda lg, cp: calls.append(cp.size) or real(lg, cp)
    )
    client = limited_app.test_client()
    latest_note(ledger)  # the first checkpoint, no cosignature yet
    listed = client.get("/api/v1/log/checkpoints").get_json()["checkpoints"]
    assert [c["cosigners"] for c in listed] == [{}] and len(calls) == 1
    vkey = cosign_latest(ledger)  # a witness cosigns it later: verified again, once
    for _ in range(2):
        again = client.get("/api/v1/log/checkpoints").get_json()["checkpoints"]
        assert again[0]["cosigners"] == {"witness.example/univ": 1_795_000_000}
        assert verified_cosigners(again[0]["note"], [parse_vkey(vkey)]) == again[0]["cosigners"]
    assert len(calls) == 2
    assert {k: again[0][k] for k in ("size", "root", "created_at")} == {
        k: listed[0][k] for k in ("size", "root", "created_at")
    }
    assert client.get("/api/v1/log/checkpoints").status_code == 200  # the 4th of 4
    refused = client.get("/api/v1/log/checkpoints")
    assert refused.status_code == 429
    assert refused.mimetype == "application/problem+json"
    assert 0 < int(refused.headers["Retry-After"]) <= 3600
    assert refused.get_json()["status"] == 429


UNBOUNDED = (
    "SELECT size FROM tlog_cosignatures GROUP BY size HAVING COUNT(*) >= ?"
    " ORDER BY size DESC LIMIT ?"
)


def test_sizes_cosigned_reads_only_the_newest_checkpoints(ledger: Ledger) -> None:
    """Same answers as the unbounded GROUP BY over the window, through the size index."""
    store = CheckpointStore(ledger.db)
    with ledger.db.write(lock=None) as cur:
        for size in range(1, 61):
            cur.execute(
                "INSERT INTO tlog_checkpoints (size, root, note, created_at) VALUES (?, ?, ?, ?)",
                (size, "00" * 32, "-", "-"),
            )
    for size in range(1, 61):  # 0 to 3 cosignatures, a pattern with gaps
        count = (size * 7) % 4
        store.add_cosignatures(size, [Cosignature(f"w{i}", "l\n", 1) for i in range(count)])

    def unbounded(at_least: int, limit: int) -> list[int]:
        with ledger.db.read() as cur:
            cur.execute(UNBOUNDED, (at_least, limit))
            return [int(row[0]) for row in cur.fetchall()]

    for at_least, limit in ((1, 20), (2, 5), (3, 100), (4, 10)):
        assert store.sizes_cosigned(at_least, limit) == unbounded(at_least, limit)
        newest = [s for s in unbounded(at_least, 100) if s > 40][:limit]
        assert store.sizes_cosigned(at_least, limit, within=20) == newest
    assert store.sizes_cosigned(0, 3) == [60, 59, 58]
    if ledger.db.kind == "sqlite":  # the window is a range on the primary key's size
        with ledger.db.read() as cur:
            cur.execute(f"EXPLAIN QUERY PLAN {COSIGNED_SIZES}", (20, 1, 5))
            plan = " | ".join(str(row[-1]) for row in cur.fetchall())
        assert "SEARCH tlog_cosignatures USING" in plan and "(size>?)" in plan, plan
