"""`ledger audit verify --witness`: a bundle cosigned by a real witness process passes the quorum.

The witness (part of this package, run as its own process, its own key and state)
cosigns the log's checkpoint over C2SP tlog-witness `add-checkpoint`; the audit then
requires its cosignature, and a second, silent witness makes a quorum of two fail.
"""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from ledger import crypto
from ledger.audit.checkpoint import parse_note
from ledger.audit.cosignature import cosign, witness_vkey
from ledger.audit.export import export_bundle
from ledger.cli import main
from ledger.config import Config
from ledger.services.checkpoints import sign_now
from ledger.store.application import Ledger
from ledger.store.checkpoints import CheckpointStore, Cosignature
from tests.audit.test_parallel_audit import _event
from tests.witness_process import witness_process


def _add_checkpoint(base: str, note: str) -> str:
    """The witness's cosignature lines on a first checkpoint (no earlier size)."""
    body = f"old 0\n\n{note}".encode()
    request = urllib.request.Request(f"{base}/add-checkpoint", data=body, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read().decode()


def test_a_checkpoint_cosigned_by_a_real_witness_meets_the_quorum(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = Config.from_env(database_url=database_url, keys_dir=tmp_path / "keys")
    ledger = Ledger(config)
    ledger.init()
    ledger.recorder.insert_events([_event(n) for n in range(1, 51)])
    bundle = tmp_path / "bundle"
    export_bundle(ledger, bundle)
    anchor = ledger.trust_anchor().to_string()
    ledger.close()
    with witness_process([anchor]) as (base, vkey, _):
        note = (bundle / "checkpoint.txt").read_text()
        (bundle / "checkpoint.txt").write_text(note + _add_checkpoint(base, note))
    silent = str(witness_vkey("silent.example", crypto.SigningKey.generate()))
    runner = CliRunner()
    audit = ["audit", "verify", str(bundle), "--trust-anchor", anchor, "--witness", vkey]
    result = runner.invoke(main, audit, catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    result = runner.invoke(main, [*audit, "--witness", silent], catch_exceptions=False)
    assert result.exit_code == 1 and "1 of the 2 required" in result.stderr
    assert "missing: silent.example" in result.stderr
    result = runner.invoke(main, [*audit, "--witness", silent, "--quorum", "1"])
    assert result.exit_code == 0, result.stderr


def test_the_live_audit_checks_the_newest_checkpoint_its_witnesses_cosigned(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A checkpoint signed after the witness went down is not cosigned yet: the live audit
    checks the latest one that has the quorum instead of failing on the lag."""
    key = crypto.SigningKey.generate()
    vkey = str(witness_vkey("witness.example", key))
    monkeypatch.setenv("LEDGER_DATABASE_URL", database_url)
    monkeypatch.setenv("LEDGER_KEYS_DIR", str(tmp_path / "keys"))
    monkeypatch.setenv("LEDGER_WITNESSES", f"{vkey} http://127.0.0.1:9")  # nothing listens
    ledger = Ledger(Config.from_env())
    ledger.init()
    ledger.recorder.insert_events([_event(n) for n in range(1, 31)])
    sign_now(ledger)
    store = CheckpointStore(ledger.db)
    first = store.latest()
    assert first is not None
    line = cosign(parse_note(first.note)[2], "witness.example", key, 1)
    store.add_cosignatures(first.size, [Cosignature("witness.example", line, 1)])
    ledger.recorder.insert_events([_event(n) for n in range(31, 61)])
    sign_now(ledger)  # the witness is down: not cosigned
    assert store.latest().size > first.size
    anchor = ledger.trust_anchor().to_string()
    ledger.close()
    audit = ["audit", "verify", "--trust-anchor", anchor, "--witness", vkey, "--workers", "1"]
    result = CliRunner().invoke(main, audit, catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    assert f"checkpoint at size {first.size} verified" in result.stdout
