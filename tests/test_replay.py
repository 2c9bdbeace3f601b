"""`ledger audit replay`: the read models as they stood at a seq or a time, in a scratch database.

The live log runs on SQLite and PostgreSQL (the `app` fixture); the scratch is SQLite.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ledger.cli import main
from ledger.domain import clock
from ledger.projections.certificates import by_code
from ledger.store.db import connect
from tests.certification_flow import Flow


@pytest.fixture
def history(app: Any, client: Any, admin: dict[str, str], config: Any, monkeypatch) -> dict:
    """A certificate issued then cancelled; the seqs and times around the cancellation."""
    flow = Flow(app, client, admin)
    _, code, _ = flow.certified()
    ledger = app.extensions["ledger"].ledger
    before = _head(ledger)
    with clock.frozen_at(datetime(2026, 12, 2, 9, tzinfo=UTC)):  # after the flow's publication
        flow.post(f"/api/v1/certificates/{code}/cancellation", {"reason": "fraude avérée"}, admin)
    monkeypatch.setenv("LEDGER_DATABASE_URL", config.database_url)
    monkeypatch.setenv("LEDGER_KEYS_DIR", str(config.keys_dir))
    return {"code": code, "before": before, "after": _head(ledger), "ledger": ledger}


def _head(ledger: Any) -> int:
    return ledger.db.scalar("SELECT MAX(seq) FROM ledger_events")


def _replay(*args: str) -> Any:
    return CliRunner().invoke(main, ["audit", "replay", *args], catch_exceptions=False)


def _status(url: str, code: str) -> str | None:
    db = connect(url)
    try:
        with db.read() as cur:
            row = by_code(cur, code)
    finally:
        db.close()
    return row["status"] if row else None


def test_replay_before_and_after_a_cancellation(history: dict, tmp_path: Path) -> None:
    code, before, after = history["code"], history["before"], history["after"]
    first = f"sqlite:///{tmp_path / 'before.db'}"
    result = _replay("--until", str(before), "--into", first)
    assert result.exit_code == 0, result.output + result.stderr
    assert f"replayed {before} verified events" in result.stdout
    assert "proj_certificates 1" in result.stdout
    assert _status(first, code) == "issued"
    second = f"sqlite:///{tmp_path / 'after.db'}"
    assert _replay("--until", str(after), "--into", second).exit_code == 0
    assert _status(second, code) == "cancelled"


def test_replay_until_a_time(history: dict, tmp_path: Path) -> None:
    ledger = history["ledger"]
    cancelled = ledger.recorder.envelope(history["after"])
    last_before = ledger.recorder.envelope(history["before"])
    scratch = f"sqlite:///{tmp_path / 'time.db'}"
    assert last_before.time < cancelled.time
    result = _replay("--until", last_before.time, "--into", scratch)
    assert result.exit_code == 0, result.stderr
    assert f"replayed {history['before']} verified events" in result.stdout
    assert _status(scratch, history["code"]) == "issued"
    late = f"sqlite:///{tmp_path / 'late.db'}"
    assert _replay("--until", cancelled.time, "--into", late).exit_code == 0
    assert _status(late, history["code"]) == "cancelled"


def test_refuses_the_live_database_a_used_scratch_and_a_bad_until(
    history: dict, tmp_path: Path, database_url: str
) -> None:
    live = _replay("--until", "1", "--into", database_url)
    assert live.exit_code == 1
    assert live.stderr.startswith("error: --into is the live database")
    scratch = f"sqlite:///{tmp_path / 'scratch.db'}"
    assert _replay("--until", "3", "--into", scratch).exit_code == 0
    again = _replay("--until", "3", "--into", scratch)
    assert again.exit_code == 1 and "already holds replayed read models" in again.stderr
    for bad in ("0", "yesterday", "2026-01-01T00:00:00Z", "2026-02-30T00:00:00.000000Z"):
        result = _replay("--until", bad, "--into", f"sqlite:///{tmp_path / 'x.db'}")
        assert result.exit_code == 1 and result.stderr.startswith("error: --until"), bad
        assert "Traceback" not in result.output


def test_stops_at_the_first_bad_event(history: dict, tmp_path: Path) -> None:
    ledger, after = history["ledger"], history["after"]
    env = ledger.recorder.envelope(after)
    data = json.loads(env.data_json)
    data["reason"] = "altered"
    with ledger.db.write(lock=None) as cur:
        cur.execute(
            "UPDATE ledger_events SET data = ? WHERE seq = ?",
            (json.dumps(data, separators=(",", ":"), sort_keys=True), after),
        )
    scratch = f"sqlite:///{tmp_path / 'bad.db'}"
    result = _replay("--until", str(after), "--into", scratch)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"FAILED at seq {after}: hash does not match")
    assert f"up to seq {after - 1}" in result.stderr
    assert _status(scratch, history["code"]) == "issued"


def test_replays_a_bundle_against_its_anchor(history: dict, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    assert CliRunner().invoke(main, ["export", str(bundle)]).exit_code == 0
    anchor = history["ledger"].trust_anchor().to_string()
    scratch = f"sqlite:///{tmp_path / 'bundle.db'}"
    result = _replay("--bundle", str(bundle), "--trust-anchor", anchor, "--until",
                     str(history["before"]), "--into", scratch)  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert _status(scratch, history["code"]) == "issued"
    bare = _replay("--bundle", str(bundle), "--until", "1", "--into", scratch)
    assert bare.exit_code == 1 and "--trust-anchor" in bare.stderr


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # live SQLite, scratch PG
def test_replays_into_a_postgresql_scratch(history: dict, pg_schema: str) -> None:
    result = _replay("--until", str(history["after"]), "--into", pg_schema)
    assert result.exit_code == 0, result.stderr
    assert _status(pg_schema, history["code"]) == "cancelled"
