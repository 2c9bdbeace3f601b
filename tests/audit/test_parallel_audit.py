"""The audit on every core finds what the sequential audit finds, and checks witness quorums."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from ledger import crypto
from ledger.audit import parallel
from ledger.audit.checkpoint import parse_note
from ledger.audit.cosignature import cosign, witness_vkey
from ledger.audit.export import export_bundle
from ledger.audit.verify import verify_bundle
from ledger.cli import main
from ledger.config import Config
from ledger.domain import clock
from ledger.store.application import Ledger
from ledger.store.mapper import LedgerStoredEvent

EVENTS = 200


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """An exported bundle of EVENTS events, and the log's trust anchor."""
    tmp = tmp_path_factory.mktemp("bundle")
    config = Config.from_env(database_url=f"sqlite:///{tmp / 'l.db'}", keys_dir=tmp / "keys")
    ledger = Ledger(config)
    ledger.init()
    ledger.recorder.insert_events([_event(n) for n in range(1, EVENTS + 1)])
    export_bundle(ledger, tmp / "bundle")
    anchor = ledger.trust_anchor()
    ledger.close()
    yield tmp / "bundle", anchor.to_string()


def _event(version: int) -> LedgerStoredEvent:
    return LedgerStoredEvent(
        originator_id="notes-parallel",
        originator_version=version,
        topic="test.Noted",
        state=crypto.canonical_json({"n": version}),
        time=clock.format_time(clock.now()),
        event_id=str(uuid.uuid4()),
    )


def _tampered(source: Path, target: Path, **edits: dict[str, object]) -> Path:
    """A copy of the bundle with records changed: edits name 'seq<N>' -> members to set."""
    target.mkdir()
    lines = (source / "events.ndjson").read_text().splitlines()
    for name, members in edits.items():
        index = int(name.removeprefix("seq")) - 1
        lines[index] = json.dumps({**json.loads(lines[index]), **members})
    (target / "events.ndjson").write_text("\n".join(lines) + "\n")
    (target / "checkpoint.txt").write_text((source / "checkpoint.txt").read_text())
    return target


def _other_signature(source: Path, seq: int) -> str:
    """A well-formed signature that is not event `seq`'s: the next event's."""
    lines = (source / "events.ndjson").read_text().splitlines()
    return json.loads(lines[seq])["sig"]


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parallel, "BATCH", 16)  # the pool really runs on a small log


@pytest.mark.usefixtures("small_batches")
def test_parallel_and_sequential_audits_agree(bundle: tuple[Path, str], tmp_path: Path) -> None:
    source, anchor_text = bundle
    from ledger.trust import Anchor

    anchor = Anchor.parse(anchor_text)
    late_hash, early_sig = 150, 60
    cases = {
        "clean": _tampered(source, tmp_path / "clean"),
        "sig": _tampered(
            source,
            tmp_path / "sig",
            **{f"seq{early_sig}": {"sig": _other_signature(source, early_sig)}},
        ),
        "sig-then-hash": _tampered(
            source,
            tmp_path / "both",
            **{
                f"seq{early_sig}": {"sig": _other_signature(source, early_sig)},
                f"seq{late_hash}": {"time": "2020-01-01T00:00:00.000000Z"},
            },
        ),
        "hash-then-sig": _tampered(
            source,
            tmp_path / "both2",
            **{
                f"seq{early_sig}": {"time": "2020-01-01T00:00:00.000000Z"},
                f"seq{late_hash}": {"sig": _other_signature(source, late_hash)},
            },
        ),
    }
    expected = {
        "clean": None,
        "sig": (early_sig, "signature does not verify"),
        "sig-then-hash": (early_sig, "signature does not verify"),
        "hash-then-sig": (early_sig, "hash does not match the event's content (event altered)"),
    }
    for name, directory in cases.items():
        sequential = verify_bundle(directory, anchor, workers=1)
        started = time.monotonic()
        on_all_cores = verify_bundle(directory, anchor, workers=2)
        assert time.monotonic() - started < 30
        for report in (sequential, on_all_cores):
            found = None if report.ok else (report.first_bad_seq, report.problem)
            assert found == expected[name], name
        assert sequential.events == on_all_cores.events
        assert sequential.root == on_all_cores.root
    assert verify_bundle(cases["clean"], anchor, workers=2).checkpoint_size == EVENTS + 1


# --- witness quorum ------------------------------------------------------------------


def _witnessed_bundle(
    source: Path, target: Path, *witnesses: tuple[str, crypto.SigningKey], body: bytes = b""
) -> Path:
    """A copy of the bundle whose checkpoint carries cosignatures (on `body`, if given)."""
    directory = _tampered(source, target)
    note = (directory / "checkpoint.txt").read_text()
    body = body or parse_note(note)[2]
    lines = [cosign(body, name, key, int(time.time())) for name, key in witnesses]
    (directory / "checkpoint.txt").write_text(note + "".join(lines))
    return directory


def _audit(directory: Path, anchor: str, *args: str) -> object:
    command = ["audit", "verify", str(directory), "--trust-anchor", anchor, "--workers", "1"]
    return CliRunner().invoke(main, [*command, *args], catch_exceptions=False)


def test_audit_requires_the_witness_quorum(bundle: tuple[Path, str], tmp_path: Path) -> None:
    source, anchor = bundle
    alice, bob = crypto.SigningKey.generate(), crypto.SigningKey.generate()
    alice_vkey, bob_vkey = str(witness_vkey("alice", alice)), str(witness_vkey("bob", bob))
    cosigned = _witnessed_bundle(source, tmp_path / "one", ("alice", alice))
    both = ("--witness", alice_vkey, "--witness", bob_vkey)

    result = _audit(cosigned, anchor, *both)
    assert result.exit_code == 1
    assert "1 of the 2 required witness cosignatures" in result.stderr
    assert "cosigned by: alice; missing: bob" in result.stderr
    assert _audit(cosigned, anchor, *both, "--quorum", "1").exit_code == 0
    assert _audit(cosigned, anchor, "--witness", alice_vkey).exit_code == 0

    other = b"another/log\n1\n" + crypto.b64(bytes(32)).encode() + b"\n"
    forged = _witnessed_bundle(source, tmp_path / "forged", ("alice", alice), body=other)
    result = _audit(forged, anchor, "--witness", alice_vkey)
    assert result.exit_code == 1 and "cosignature of alice does not verify" in result.stderr

    for args, message in (
        (("--witness", "alice+00+xx"), "verifier key"),
        (("--witness", alice_vkey, "--quorum", "2"), "quorum of 2"),
        (("--quorum", "1"), "--quorum needs --witness"),
    ):
        result = _audit(cosigned, anchor, *args)
        assert result.exit_code == 1 and message in result.stderr, result.stderr
        assert result.stderr.count("\n") == 1


@pytest.mark.usefixtures("small_batches")
def test_live_audit_on_every_core_and_its_witness_quorum(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEDGER_DATABASE_URL", database_url)
    monkeypatch.setenv("LEDGER_KEYS_DIR", str(tmp_path / "keys"))
    ledger = Ledger(Config.from_env())
    ledger.init()
    ledger.recorder.insert_events([_event(n) for n in range(1, 101)])
    ledger.close()
    runner = CliRunner()
    result = runner.invoke(main, ["audit", "verify", "--workers", "2"], catch_exceptions=False)
    assert result.exit_code == 0 and "OK: 101 events" in result.stdout, result.stderr
    assert "checkpoint at size 101 verified" in result.stdout
    witness = str(witness_vkey("w", crypto.SigningKey.generate()))
    result = runner.invoke(main, ["audit", "verify", "--witness", witness], catch_exceptions=False)
    assert result.exit_code == 1
    assert "FAILED: the checkpoint carries 0 of the 1 required witness" in result.stderr
