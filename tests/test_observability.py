"""Observability: request ids, JSON log lines, /metrics and readiness thresholds, on real stores."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from ledger.api import create_app
from ledger.api.state import ApiState
from ledger.cli import main
from ledger.config import Config, ConfigError
from ledger.domain import clock
from ledger.log_redaction import RedactingFilter
from ledger.logs import REQUEST_ID, JsonFormatter, RequestIdFilter, formatter
from ledger.projections.lag import lag_problems, lags
from ledger.projections.runner import catch_up, create_tables
from ledger.store.application import Ledger
from tests.conftest import initialized, make_token
from tests.helpers import register

PROJECTIONS = ("profiles", "sessions", "courses", "certificates")


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """What the root logger writes as JSON lines during the test (as the service's handler does)."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield out
    root.removeHandler(handler)
    root.setLevel(level)


def _lines(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]


def _app(config: Config, **overrides: Any) -> Any:
    initialized(config)
    application = create_app(Config.from_env(**{**config.__dict__, **overrides}))
    application.config["TESTING"] = True
    return application


def _scrape(client: Any, **kwargs: Any) -> dict[str, dict[tuple, float]]:
    """/metrics parsed: sample name -> {sorted labels: value}."""
    response = client.get("/metrics", **kwargs)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/plain"
    samples: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for s in family.samples:
            samples.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return samples


def _one(samples: dict[str, dict[tuple, float]], name: str, **labels: str) -> float:
    return samples.get(name, {}).get(tuple(sorted(labels.items())), 0.0)


# --- request ids and log lines ---------------------------------------------------------


def test_request_id_is_generated_echoed_and_logged(client: Any, json_log: io.StringIO) -> None:
    first = client.get("/api/v1/health")
    second = client.get("/api/v1/health")
    ids = [first.headers["X-Request-Id"], second.headers["X-Request-Id"]]
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids) and ids[0] != ids[1]
    access = [line for line in _lines(json_log) if line["logger"] == "ledger.access"]
    assert [line["request_id"] for line in access[-2:]] == ids
    line = access[-1]
    assert set(line) >= {"time", "level", "logger", "message", "request_id", "route", "status"}
    assert (line["route"], line["method"], line["status"]) == ("/api/v1/health", "GET", 200)
    assert line["level"] == "info" and line["duration_ms"] >= 0


def test_a_sane_request_id_is_propagated_everywhere(client: Any, json_log: io.StringIO) -> None:
    sent = "req-7f3a.b:42_x"
    response = client.get("/api/v1/no-such-thing", headers={"X-Request-Id": sent})
    assert response.status_code == 404 and response.headers["X-Request-Id"] == sent
    assert response.get_json()["request_id"] == sent  # in the problem+json body too
    access = [line for line in _lines(json_log) if line["request_id"] == sent]
    assert access and access[-1]["route"] == "unmatched" and access[-1]["status"] == 404


@pytest.mark.parametrize(
    "junk", ["x" * 65, "<script>alert(1)</script>", "a b", "-leading-dash", "ünïcode", "a\tb"]
)
def test_an_unsafe_request_id_is_replaced(client: Any, json_log: io.StringIO, junk: str) -> None:
    response = client.get("/api/v1/health", headers={"X-Request-Id": junk})
    echoed = response.headers["X-Request-Id"]
    assert echoed != junk and len(echoed) == 32
    assert junk not in json_log.getvalue() and echoed in json_log.getvalue()


def test_json_lines_keep_the_redaction(client: Any, json_log: io.StringIO) -> None:
    """The access line names the route template; werkzeug's lines are redacted before JSON."""
    client.get("/v/Jean-Dupont?t=secret-token")
    record = logging.LogRecord(
        "werkzeug", logging.INFO, __file__, 1, '"%s" %s %s',
        ("GET /v/Jean-Dupont?t=secret-token HTTP/1.1", 200, "-"), None,
    )  # fmt: skip
    RedactingFilter().filter(record)
    logged = json_log.getvalue() + JsonFormatter().format(record)
    assert "Dupont" not in logged and "secret-token" not in logged
    assert any(line.get("route") == "/v/<code>" for line in _lines(json_log))


# --- /metrics ----------------------------------------------------------------------------


def test_metrics_count_requests_appends_lock_waits_and_read_the_log(
    app: Any, client: Any, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    platform = make_token(app, "events:append")
    before = _scrape(client)
    for _ in range(3):
        register(client, platform)
    client.get("/api/v1/ready")  # signs the first checkpoint, catches the read models up
    after = _scrape(client)

    def delta(name: str, **labels: str) -> float:
        return _one(after, name, **labels) - _one(before, name, **labels)

    route = {"route": "/api/v1/candidates", "method": "POST", "status_class": "2xx"}
    assert delta("ledger_http_request_duration_seconds_count", **route) == 3
    assert delta("ledger_http_request_duration_seconds_sum", **route) > 0
    assert delta("ledger_appends_total") >= 3 and delta("ledger_events_appended_total") >= 3
    assert delta("ledger_append_lock_wait_seconds_count") >= 3
    head = _one(after, "ledger_log_head")
    assert head >= 3
    for name in PROJECTIONS:
        assert _one(after, "ledger_projection_lag_events", projection=name) == 0
        assert _one(after, "ledger_projection_lag_seconds", projection=name) == 0
    assert 0 <= _one(after, "ledger_checkpoint_age_seconds") < 60
    assert "ledger_checkpoint_unsigned_events" in after
    assert "ledger_last_audit_ok" not in after  # never audited: no result, not a pass

    monkeypatch.setenv("LEDGER_DATABASE_URL", database_url)
    monkeypatch.setenv("LEDGER_KEYS_DIR", str(tmp_path / "keys"))
    audited = CliRunner().invoke(main, ["audit", "verify", "--workers", "1"])
    assert audited.exit_code == 0, audited.output
    audit = _scrape(client)
    assert _one(audit, "ledger_last_audit_ok") == 1
    assert _one(audit, "ledger_last_audit_events") == _one(audit, "ledger_log_head")
    ran = _one(audit, "ledger_last_audit_timestamp_seconds")
    assert abs(ran - clock.now().timestamp()) < 120


def test_a_failed_audit_is_exposed(app: Any, client: Any) -> None:
    from ledger.store import audit_runs

    audit_runs.record(app.extensions["ledger"].ledger.db, False, 12, "seq 7: bad signature")
    assert _one(_scrape(client), "ledger_last_audit_ok") == 0


def test_metrics_access_loopback_token_or_open(app: Any, client: Any, config: Config) -> None:
    remote = {"environ_base": {"REMOTE_ADDR": "203.0.113.9"}}
    assert client.get("/metrics").status_code == 200  # loopback, no proxy in front
    refused = client.get("/metrics", **remote)
    assert refused.status_code == 401 and refused.mimetype == "application/problem+json"
    relayed = client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
    assert relayed.status_code == 401  # a local proxy relaying someone else
    wrong = make_token(app, "events:append")
    assert client.get("/metrics", headers=wrong, **remote).status_code == 403
    for scope in ("metrics", "admin"):
        assert client.get("/metrics", headers=make_token(app, scope), **remote).status_code == 200
    app.extensions["ledger"].ledger.close()

    tokened = _app(config, metrics_access="token").test_client()
    assert tokened.get("/metrics").status_code == 401
    opened = _app(config, metrics_access="open").test_client()
    assert opened.get("/metrics", **remote).status_code == 200


# --- projection lag and readiness ------------------------------------------------------------


def test_lag_in_events_and_seconds(ledger: Ledger, config: Config) -> None:
    state = ApiState.open(config)
    create_tables(ledger.db, state.projections)
    catch_up(ledger.db, state.projections)
    start = clock.now()
    with clock.frozen_at(start):
        state.candidates.register(
            {"first_name": "Léa", "last_name": "Martin", "birth_date": "2008-01-02",
             "birth_place": "Lyon"}
        )  # fmt: skip
    names = [p.name for p in state.projections]
    latest, found = lags(ledger.db, names, start + timedelta(seconds=90))
    assert latest > 0 and all(lag.events > 0 for lag in found.values())
    assert all(89 <= lag.seconds <= 91 for lag in found.values())
    assert len(lag_problems(found, max_events=10_000, max_seconds=60)) == len(names)
    assert lag_problems(found, max_events=10_000, max_seconds=120) == []
    catch_up(ledger.db, state.projections)
    _, found = lags(ledger.db, names, start + timedelta(seconds=90))
    assert all(lag.events == 0 and lag.seconds == 0 for lag in found.values())
    state.ledger.close()


def _hold_back(app: Any, projection: str, until: str) -> None:
    """The projection waits (as after a failure, with backoff): the log moves on without it."""
    with app.extensions["ledger"].ledger.db.write(lock=None) as cur:
        cur.execute(
            "INSERT INTO projection_stalls (name, seq, error, since, attempts, retry_at)"
            " VALUES (?, 1, 'held back', ?, 1, ?) ON CONFLICT (name) DO UPDATE"
            " SET retry_at = excluded.retry_at",
            (projection, clock.format_time(clock.now()), until),
        )


def test_ready_fails_past_the_lag_threshold_and_recovers(config: Config) -> None:
    app = _app(config, ready_max_lag_events=2)
    client = app.test_client()
    assert client.get("/api/v1/ready").status_code == 200
    _hold_back(app, "courses", clock.format_time(clock.now() + timedelta(hours=1)))
    platform = make_token(app, "events:append")
    for _ in range(4):
        register(client, platform)
    ready = client.get("/api/v1/ready")
    assert ready.status_code == 503 and ready.headers["Retry-After"]
    check = ready.get_json()["checks"]["projections"]
    assert check["ok"] is False and check["lag"] > 2
    assert any(p.startswith("courses is ") and "behind" in p for p in check["problems"])
    _hold_back(app, "courses", clock.format_time(clock.now() - timedelta(seconds=1)))
    recovered = client.get("/api/v1/ready")
    assert recovered.status_code == 200, recovered.get_json()
    assert recovered.get_json()["checks"]["projections"] == {
        "ok": True, "lag": 0, "lag_seconds": 0.0
    }  # fmt: skip
    app.extensions["ledger"].ledger.close()


def test_ready_fails_past_the_checkpoint_age_and_recovers(config: Config) -> None:
    app = _app(config, checkpoint_max_age_s=60)
    client = app.test_client()
    assert client.get("/api/v1/ready").status_code == 200
    register(client, make_token(app, "events:append"))
    with clock.frozen_at(clock.now() + timedelta(seconds=120)):
        stale = client.get("/api/v1/ready")
        assert stale.status_code == 503 and stale.headers["Retry-After"]
        check = stale.get_json()["checks"]["signed_checkpoint"]
        assert any("unsigned for over 60 s" in p for p in check["problems"])
        assert _one(_scrape(client), "ledger_checkpoint_unsigned_events") > 0
        assert _one(_scrape(client), "ledger_checkpoint_age_seconds") >= 120
        app.extensions["ledger"].checkpoints.tick()  # the background loop's next tick
        assert client.get("/api/v1/ready").status_code == 200
    app.extensions["ledger"].ledger.close()


# --- settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [("LEDGER_LOG_FORMAT", "xml"), ("LEDGER_METRICS_ACCESS", "everyone"),
     ("LEDGER_READY_MAX_LAG_EVENTS", "0"), ("LEDGER_READY_MAX_LAG_SECONDS", "soon")],
)  # fmt: skip
def test_bad_observability_settings_are_refused(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        Config.from_env()


def test_text_lines_carry_the_request_id_too() -> None:
    record = logging.LogRecord("ledger.api", logging.WARNING, __file__, 1, "slow: %s", ("x",), None)
    token = REQUEST_ID.set("abc-1")
    try:
        RequestIdFilter().filter(record)
    finally:
        REQUEST_ID.reset(token)
    assert formatter("text").format(record).endswith("WARNING ledger.api [abc-1] slow: x")
    assert json.loads(formatter("json").format(record))["request_id"] == "abc-1"
