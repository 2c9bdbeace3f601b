"""Backup -> restore -> audit, on SQLite and PostgreSQL: the restore is proved by a full audit.

A real history (candidates, sessions, published certificates, an erasure) is
backed up while the service runs, restored into a fresh database, audited with
`ledger audit verify` (chain, signatures, checkpoints, tiles), and served: the
same certificates verify. A tampered backup restores but fails the audit; an
erasure, logged before or after the backup, stays erased.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ledger.api import create_app
from ledger.cli import main
from ledger.config import Config
from ledger.store.db import connect
from tests.certification_flow import Flow
from tests.conftest import scratch_schema
from tests.helpers import answer, register


@pytest.fixture
def flow(app: Any, client: Any, admin: dict[str, str]) -> Flow:
    return Flow(app, client, admin)


def _empty(sqlite: bool, tmp_path: Path) -> Iterator[str]:
    if sqlite:
        yield f"sqlite:///{tmp_path / 'restored.db'}"
        return
    with scratch_schema("r") as url:
        yield url


def _backup(cli: Any, tmp_path: Path) -> Path:
    """`ledger backup` of the live ledger; the file it wrote."""
    out = tmp_path / "ledger.backup.gz"
    cli("backup", "--out", str(out))
    return out


@pytest.fixture
def fresh_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    """An empty database of the same backend to restore into."""
    yield from _empty(database_url.startswith("sqlite"), tmp_path)


@pytest.fixture
def other_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    """An empty database of the other backend."""
    yield from _empty(not database_url.startswith("sqlite"), tmp_path)


@pytest.fixture
def cli(config: Config, monkeypatch: pytest.MonkeyPatch):
    """Run `ledger ...` against a database (the live one unless told), with the live keys."""
    monkeypatch.setenv("LEDGER_KEYS_DIR", str(config.keys_dir))

    def invoke(*args: str, url: str = config.database_url, ok: bool = True) -> Any:
        monkeypatch.setenv("LEDGER_DATABASE_URL", url)
        result = CliRunner().invoke(main, list(args), catch_exceptions=False)
        assert (result.exit_code == 0) == ok, result.output + result.stderr
        return result

    return invoke


def _history(flow: Flow) -> tuple[list[str], str]:
    """Two published certificates and one person erased: (codes, erased subject)."""
    codes = [flow.certified()[1], flow.certified()[1]]
    person = register(flow.client, flow.platform)
    erase(flow, person["subject"])
    flow.client.get("/api/v1/ready")  # a checkpoint is signed over the history
    return codes, person["subject"]


def erase(flow: Flow, subject: str) -> None:
    flow.post(f"/api/v1/subjects/{subject}/erasure", {"reason": "objection"}, flow.admin)


def _served(config: Config, url: str) -> Any:
    app = create_app(replace(config, database_url=url))
    return app


def test_a_restored_backup_passes_the_full_audit_and_verifies_the_same_certificates(
    flow: Flow, config: Config, cli, fresh_url: str, tmp_path: Path
) -> None:
    codes, erased = _history(flow)
    before = {code: flow.client.get(f"/api/v1/certificates/{code}").get_json() for code in codes}
    flow.app.extensions["ledger"].webhooks.resolver = lambda host, port: ["93.184.215.14"]
    hook = {"url": "https://school.example/hooks/pix"}
    flow.post("/api/v1/institutions/0350022K/webhooks", hook, flow.admin)
    out = tmp_path / "ledger.backup.gz"
    assert "backed up" in cli("backup", "--out", str(out)).stdout
    assert out.stat().st_mode & 0o777 == 0o600

    rows = [json.loads(line) for line in gzip.decompress(out.read_bytes()).splitlines()]
    keys = {
        row[1][0]: row[1][1] for row in rows if isinstance(row, list) and row[0] == "subject_keys"
    }
    assert keys[erased] is None and len(keys) > 1  # an erased key is not in the backup

    restored = cli("restore", str(out), "--into", fresh_url).stdout
    assert "read models rebuilt" in restored
    audit = cli("audit", "verify", url=fresh_url).stdout
    assert audit.startswith("OK:") and "stored checkpoint(s) match" in audit

    app = _served(config, fresh_url)
    try:
        client = app.test_client()
        for code, page in before.items():
            after = client.get(f"/api/v1/certificates/{code}").get_json()
            assert after == page and after["status"] == "valid"
        assert app.extensions["ledger"].ledger.vault.is_erased(erased)
        hosts = app.extensions["ledger"].ledger.db.rows("SELECT url, host FROM webhooks")
        assert [tuple(row) for row in hosts] == [(hook["url"], "school.example")]
    finally:
        app.extensions["ledger"].ledger.close()


def test_a_backup_restores_into_the_other_backend_and_passes_the_audit(
    flow: Flow, cli, other_url: str, tmp_path: Path
) -> None:
    _history(flow)
    out = _backup(cli, tmp_path)
    cli("restore", str(out), "--into", other_url)
    assert cli("audit", "verify", url=other_url).stdout.startswith("OK:")


def test_a_tampered_backup_restores_but_fails_the_audit_naming_the_event(
    flow: Flow, cli, fresh_url: str, tmp_path: Path
) -> None:
    _history(flow)
    out = _backup(cli, tmp_path)
    lines = gzip.decompress(out.read_bytes()).decode().splitlines()
    target = next(i for i, line in enumerate(lines) if '"certification.CourseScored"' in line)
    table, row = json.loads(lines[target])
    data = json.loads(row[6])
    data["result"]["pix_score"] = data["result"].get("pix_score", 0) + 100
    row[6] = json.dumps(data, separators=(",", ":"))
    lines[target] = json.dumps([table, row])
    tampered = tmp_path / "tampered.backup.gz"
    tampered.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))

    cli("restore", str(tampered), "--into", fresh_url)
    failed = cli("audit", "verify", url=fresh_url, ok=False)
    assert f"seq {row[0]}" in failed.output + failed.stderr


def test_an_erasure_after_the_backup_is_reapplied_from_a_later_export(
    flow: Flow, cli, fresh_url: str, tmp_path: Path, config: Config
) -> None:
    person = register(flow.client, flow.platform)
    out = _backup(cli, tmp_path)
    erase(flow, person["subject"])  # after the backup: the backup still holds the key
    cli("export", str(tmp_path / "later"))

    events = tmp_path / "later" / "events.ndjson"
    restored = cli("restore", str(out), "--into", fresh_url, "--erasures-from", str(events))
    assert "1 erasures re-applied" in restored.stdout
    db = connect(fresh_url)
    try:
        row = db.scalar("SELECT wrapped FROM subject_keys WHERE subject = ?", (person["subject"],))
        assert row is None  # the key is gone, not merely flagged
    finally:
        db.close()


def test_a_restore_refuses_a_non_empty_target_and_a_truncated_file(
    flow: Flow, cli, config: Config, fresh_url: str, tmp_path: Path
) -> None:
    flow.eligible_candidate()
    out = _backup(cli, tmp_path)
    live = cli("restore", str(out), "--into", config.database_url, ok=False)
    assert "not empty" in live.stderr
    assert "exists" in cli("backup", "--out", str(out), ok=False).stderr

    lines = gzip.decompress(out.read_bytes()).splitlines()
    truncated = tmp_path / "truncated.backup.gz"
    truncated.write_bytes(gzip.compress(b"\n".join(lines[:-1]) + b"\n"))
    refused = cli("restore", str(truncated), "--into", fresh_url, ok=False)
    assert "truncated" in refused.stderr and len(refused.stderr.splitlines()) == 1
    for garbage in (b"not a backup", gzip.compress(b"{not json\n"), gzip.compress(b"[1]\n")):
        truncated.write_bytes(garbage)
        refused = cli("restore", str(truncated), "--into", fresh_url, ok=False)
        assert "not a" in refused.stderr and len(refused.stderr.splitlines()) == 1
    db = connect(fresh_url)
    try:
        assert db.scalar("SELECT COUNT(*) FROM ledger_events") == 0  # all or nothing
    finally:
        db.close()


def test_a_backup_taken_while_answers_are_appended_is_consistent(
    flow: Flow, cli, fresh_url: str, tmp_path: Path
) -> None:
    """The snapshot is one transaction: events, tiles and checkpoints of one instant."""
    candidate = register(flow.client, flow.platform)["id"]
    stop = threading.Event()
    appended: list[int] = []

    def platform() -> None:
        client = flow.app.test_client()
        while not stop.is_set():
            batch = {"answers": [answer(candidate) for _ in range(20)]}
            response = client.post("/api/v1/answers", json=batch, headers=flow.platform)
            appended.append(response.status_code)

    writer = threading.Thread(target=platform)
    writer.start()
    try:
        while len(appended) < 3:
            time.sleep(0.01)
        flow.client.get("/api/v1/ready")  # a checkpoint while appends go on
        out = _backup(cli, tmp_path)
    finally:
        stop.set()
        writer.join()
    assert set(appended) == {201}
    cli("restore", str(out), "--into", fresh_url)
    assert cli("audit", "verify", url=fresh_url).stdout.startswith("OK:")


def test_a_restore_behind_the_saved_checkpoint_is_caught_as_a_rollback(
    flow: Flow, cli, fresh_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEDGER_CHECKPOINT_EVENTS", "1")  # `ledger checkpoint` signs at once
    flow.certified()
    cli("checkpoint")
    out = _backup(cli, tmp_path)
    at_backup, later = tmp_path / "at-backup.txt", tmp_path / "later.txt"
    cli("audit", "verify", "--save-checkpoint", str(at_backup))
    flow.certified()  # history the backup does not hold
    cli("checkpoint")
    cli("audit", "verify", "--save-checkpoint", str(later))

    cli("restore", str(out), "--into", fresh_url)
    cli("audit", "verify", "--since-checkpoint", str(at_backup), url=fresh_url)
    rollback = cli("audit", "verify", "--since-checkpoint", str(later), url=fresh_url, ok=False)
    assert "checkpoint" in rollback.stderr + rollback.stdout, (
        "names the checkpoint it no longer extends"
    )
