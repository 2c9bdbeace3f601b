"""`ledger serve` with two gunicorn workers: one /metrics sums both, JSON log lines carry ids."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from ledger.config import Config
from ledger.store.application import Ledger
from ledger.store.tokens import TokenStore
from tests.helpers import IDENTITY
from tests.served import serve

HEALTH = (("method", "GET"), ("route", "/api/v1/health"), ("status_class", "2xx"))


def _get(url: str, request_id: str | None = None) -> bytes:
    request = urllib.request.Request(url)
    if request_id:
        request.add_header("X-Request-Id", request_id)
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.read()


def _post(url: str, token: str, body: dict) -> int:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    request.add_header("Authorization", f"Bearer {token}")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status


def _scrape(base: str) -> dict[tuple, float]:
    found = {}
    for family in text_string_to_metric_families(_get(f"{base}/metrics").decode()):
        for s in family.samples:
            found[(s.name, *sorted(s.labels.items()))] = s.value
    return found


def _workers(folder: Path) -> set[str]:
    """The worker pids that wrote metrics files into the shared directory."""
    return {f.stem.rsplit("_", 1)[1] for f in folder.glob("*.db")}


def test_two_workers_counters_aggregate_and_logs_are_json(
    database_url: str, tmp_path: Path, runtime_dir: Path
) -> None:
    ledger = Ledger(Config.from_env(database_url=database_url, keys_dir=tmp_path / "keys"))
    ledger.init()
    _, token = TokenStore(ledger.db).create(["events:append"], "metrics test")
    ledger.close()
    log = tmp_path / "serve.log"
    with (
        log.open("wb") as out,
        serve(database_url, tmp_path / "keys", workers=2, stdout=out) as (
            base,
            _,
        ),
    ):
        before = _scrape(base)
        folder = runtime_dir / f"metrics-127.0.0.1-{base.rsplit(':', 1)[1]}"
        sent = 0
        while sent < 40 or (len(_workers(folder)) < 2 and sent < 2000):
            _get(f"{base}/api/v1/health", request_id=f"served-{sent}")  # a new connection each
            sent += 1
        for i in range(6):
            body = {**IDENTITY, "external_id": f"INE{i:012d}"}
            assert _post(f"{base}/api/v1/candidates", token, body) == 201
        after = _scrape(base)
        pids = _workers(folder)
    assert len(pids) >= 2, pids  # both workers counted into the shared directory
    count = ("ledger_http_request_duration_seconds_count", *HEALTH)
    assert after[count] - before.get(count, 0) == sent
    assert after[("ledger_appends_total",)] - before.get(("ledger_appends_total",), 0) >= 6
    assert after[("ledger_events_appended_total",)] >= 6
    assert after[("ledger_append_lock_wait_seconds_count",)] >= 6
    assert after[("ledger_log_head",)] >= 6

    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    access = {line["request_id"]: line for line in lines if line["logger"] == "ledger.access"}
    assert {f"served-{i}" for i in range(40)} <= set(access)
    assert access["served-0"]["route"] == "/api/v1/health" and access["served-0"]["status"] == 200
    assert all(line["level"] in {"debug", "info", "warning", "error"} for line in lines)
