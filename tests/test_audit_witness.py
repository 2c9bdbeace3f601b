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
from ledger.audit.cosignature import witness_vkey
from ledger.audit.export import export_bundle
from ledger.cli import main
from ledger.config import Config
from ledger.store.application import Ledger
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
