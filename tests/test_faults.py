"""Faults get 503 with Retry-After, fast, and the service recovers alone (issue 8, point 4).

The database really breaks: PostgreSQL sits behind a TCP forwarder the test
cuts (connections refused) or black-holes (never answers) and restores; SQLite
is really locked by another connection. A ledger that `ledger init` did not
create is refused, on both backends.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ledger.api import create_app
from ledger.cli import main
from ledger.config import Config, ConfigError
from ledger.store.application import Ledger
from ledger.store.db import LedgerMissing, Timeouts
from tests.conftest import append_lock_held, initialized, make_token
from tests.forwarder import Forwarder
from tests.helpers import IDENTITY


def _app(config: Config) -> Any:
    """The app on `config`, its schema and read models set up first under default timeouts.

    Set-up takes locks other tests' set-ups (other schemas, same database) may hold
    a while on a loaded machine: only the app under test gets the tight timeouts.
    """
    relaxed = replace(config, db_timeouts=Timeouts())
    initialized(relaxed)
    create_app(relaxed).extensions["ledger"].ledger.close()
    app = create_app(config)
    app.config["TESTING"] = True
    return app


def _timed(call: Any) -> tuple[Any, float]:
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def _assert_503(response: Any, elapsed: float) -> None:
    assert response.status_code == 503, response.get_data(as_text=True)[:300]
    assert response.headers["Retry-After"] == "1"
    assert elapsed < 1.0, f"answered in {elapsed:.2f} s"


@pytest.fixture
def forwarded(pg_schema: str, tmp_path: Path) -> Iterator[tuple[Forwarder, Any]]:
    """An app on PostgreSQL reached only through a forwarder the test controls."""
    parts = urllib.parse.urlsplit(pg_schema)
    forwarder = Forwarder((parts.hostname or "127.0.0.1", parts.port or 5432))
    url = parts._replace(netloc=f"{parts.username}@127.0.0.1:{forwarder.port}").geturl()
    app = _app(Config.from_env(database_url=url, keys_dir=tmp_path / "keys", master_key=""))
    yield forwarder, app
    app.extensions["ledger"].ledger.close()
    forwarder.close()


@pytest.mark.parametrize("outage", ["cut", "blackhole"])
def test_postgres_outage_is_503_within_a_second_and_recovers_without_restart(
    forwarded: tuple[Forwarder, Any], outage: str
) -> None:
    forwarder, app = forwarded
    client, token = app.test_client(), make_token(app, "events:append", "audit:read")
    assert client.post("/api/v1/candidates", json=IDENTITY, headers=token).status_code == 201
    getattr(forwarder, outage)()
    time.sleep(0.06)  # past the public views' 50 ms freshness window
    for call in (
        lambda: client.post("/api/v1/candidates", json=IDENTITY, headers=token),
        lambda: client.get("/api/v1/events?after=0", headers=token),
        lambda: client.get("/api/v1/certificates/P-BCDFGHJK"),
        lambda: client.get("/api/v1/ready"),
    ):
        response, elapsed = _timed(call)
        _assert_503(response, elapsed)
        assert response.mimetype == "application/problem+json"
    page, elapsed = _timed(lambda: client.get("/v/P-BCDFGHJK"))
    _assert_503(page, elapsed)
    assert page.mimetype == "text/html"
    health, elapsed = _timed(lambda: client.get("/api/v1/health"))
    assert health.status_code == 200 and elapsed < 0.5  # liveness never touches the database
    forwarder.restore()
    assert client.post("/api/v1/candidates", json=IDENTITY, headers=token).status_code == 201
    assert client.get("/api/v1/ready").status_code == 200


def test_postgres_statement_timeout_bounds_a_stuck_append(pg_schema: str, tmp_path: Path) -> None:
    config = Config.from_env(
        database_url=pg_schema,
        keys_dir=tmp_path / "keys",
        master_key="",
        db_timeouts=Timeouts(statement_ms=300),
    )
    app = _app(config)
    client, token = app.test_client(), make_token(app, "events:append")
    with append_lock_held(pg_schema):  # a writer that hangs
        response, elapsed = _timed(
            lambda: client.post("/api/v1/candidates", json=IDENTITY, headers=token)
        )
    _assert_503(response, elapsed)
    assert client.post("/api/v1/candidates", json=IDENTITY, headers=token).status_code == 201
    app.extensions["ledger"].ledger.close()


def test_a_locked_sqlite_database_is_503_after_the_busy_timeout(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    config = Config.from_env(
        database_url=f"sqlite:///{path}",
        keys_dir=tmp_path / "keys",
        master_key="",
        db_timeouts=Timeouts(busy_ms=300),
    )
    app = _app(config)
    client, token = app.test_client(), make_token(app, "events:append")
    with append_lock_held(config.database_url):  # another process holds the write lock
        response, elapsed = _timed(
            lambda: client.post("/api/v1/candidates", json=IDENTITY, headers=token)
        )
    _assert_503(response, elapsed)
    assert elapsed >= 0.3  # it did wait for the lock, up to the busy timeout
    assert response.get_json()["type"] == "/problems/service-unavailable"
    assert client.post("/api/v1/candidates", json=IDENTITY, headers=token).status_code == 201
    app.extensions["ledger"].ledger.close()


def test_a_missing_ledger_is_refused_not_created(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = Config.from_env(database_url=database_url, keys_dir=tmp_path / "keys", master_key="")
    with pytest.raises(LedgerMissing, match="ledger init"):
        Ledger.open_existing(config)
    with pytest.raises(LedgerMissing):
        create_app(config)
    monkeypatch.setenv("LEDGER_DATABASE_URL", database_url)
    monkeypatch.setenv("LEDGER_KEYS_DIR", str(tmp_path / "keys"))
    for command in (["serve"], ["tokens", "list"], ["demo", "--if-empty"], ["audit", "verify"]):
        result = CliRunner().invoke(main, command)
        assert result.exit_code == 1, command
        message = result.stderr.strip()  # (audit's progress bar may leave a blank line)
        assert message.startswith("error: no ledger at ") and "\n" not in message, command
    assert not (tmp_path / "ledger.db").exists()
    assert not (tmp_path / "keys").exists()  # and no production key minted for it
    assert CliRunner().invoke(main, ["init"]).exit_code == 0
    Ledger.open_existing(config).close()


def test_health_is_liveness_and_ready_checks_database_projections_and_log(
    client: Any, app: Any, appender: dict[str, str]
) -> None:
    assert client.get("/api/v1/health").get_json() == {"status": "ok"}
    assert client.post("/api/v1/candidates", json=IDENTITY, headers=appender).status_code == 201
    ready = client.get("/api/v1/ready")
    assert ready.status_code == 200
    checks = ready.get_json()["checks"]
    head = checks["database"]["head"]
    assert head > 0 and checks["projections"] == {"ok": True, "lag": 0, "lag_seconds": 0.0}
    assert checks["checkpoint"]["ok"] and checks["checkpoint"]["size"] == head
    st = app.extensions["ledger"]
    st.raise_alarm({"code": "P-BCDFGHJK", "problems": [{"check": "read-model"}]})
    not_ready = client.get("/api/v1/ready")
    assert not_ready.status_code == 503 and not_ready.headers["Retry-After"] == "1"
    assert not_ready.mimetype == "application/problem+json"
    assert not_ready.get_json()["checks"]["integrity"]["alarms"] == st.integrity_alarms
    st.integrity_alarms.clear()
    assert client.get("/api/v1/ready").status_code == 200


def test_ready_fails_when_an_appended_event_does_not_verify(
    client: Any, app: Any, appender: dict[str, str]
) -> None:
    assert client.get("/api/v1/ready").status_code == 200
    assert client.post("/api/v1/candidates", json=IDENTITY, headers=appender).status_code == 201
    db = app.extensions["ledger"].ledger.db
    with db.write(lock=None) as cur:  # someone with database access edits the newest event
        cur.execute("SELECT MAX(seq) FROM ledger_events")
        (last,) = cur.fetchone()
        cur.execute(
            "UPDATE ledger_events SET time = ? WHERE seq = ?", ("2020-01-01T00:00:00.000000Z", last)
        )
    response = client.get("/api/v1/ready")
    assert response.status_code == 503
    checks = response.get_json()["checks"]
    assert not checks["checkpoint"]["ok"] and checks["checkpoint"]["size"] == last - 1
    assert f"seq {last}" in checks["integrity"]["alarms"][0]["problems"][0]


@pytest.mark.parametrize(
    "name",
    [
        "LEDGER_DB_CONNECT_TIMEOUT_MS",
        "LEDGER_DB_STATEMENT_TIMEOUT_MS",
        "LEDGER_DB_BUSY_TIMEOUT_MS",
        "LEDGER_IDEMPOTENCY_CLAIM_TTL_S",
    ],
)
def test_fault_settings_must_be_positive(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(name, "0")
    with pytest.raises(ConfigError, match=name):
        Config.from_env()
    monkeypatch.setenv(name, "250")
    config = Config.from_env()
    assert 250 in (
        config.db_timeouts.connect_ms,
        config.db_timeouts.statement_ms,
        config.db_timeouts.busy_ms,
        config.idempotency_claim_ttl_s,
    )
