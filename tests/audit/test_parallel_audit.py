"""The audit on every core finds what the sequential audit finds, and checks witness quorums."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ledger import crypto
from ledger.audit import parallel
from ledger.audit.checkpoint import Checkpoint, parse_checkpoint, parse_note, sign_checkpoint
from ledger.audit.cosignature import cosign, witness_vkey
from ledger.audit.export import export_bundle
from ledger.audit.verify import verify_bundle
from ledger.cli import main
from ledger.config import Config
from ledger.domain import clock
from ledger.store.application import Ledger
from ledger.store.checkpoints import CheckpointStore
from ledger.store.mapper import LedgerStoredEvent
from ledger.store.tiles import TileStore

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


# --- the live log's stored tiles and checkpoints ------------------------------------


@pytest.fixture
def stored_log(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Ledger]:
    """A live log of 600+ events (two full level-0 tiles, a level-1 tile) and 3 checkpoints."""
    from ledger.services.checkpoints import sign_now

    monkeypatch.setenv("LEDGER_DATABASE_URL", database_url)
    monkeypatch.setenv("LEDGER_KEYS_DIR", str(tmp_path / "keys"))
    ledger = Ledger(Config.from_env())
    ledger.init()
    for start in (1, 201, 401):
        ledger.recorder.insert_events([_event(n) for n in range(start, start + 200)])
        sign_now(ledger)
    yield ledger
    ledger.close()


def _live_audit(*args: str) -> Any:
    command = ["audit", "verify", "--workers", "1", *args]
    return CliRunner().invoke(main, command, catch_exceptions=False)


def _sizes(ledger: Ledger, page: int = 256) -> list[int]:
    return [cp.size for cp in CheckpointStore(ledger.db).each(page)]


def test_the_clean_live_audit_checks_every_checkpoint_and_tile(stored_log: Ledger) -> None:
    assert _sizes(stored_log) == _sizes(stored_log, page=2) == [201, 401, 601]
    assert TileStore(stored_log.db).size() == 601
    result = _live_audit()
    assert result.exit_code == 0, result.stderr
    assert "OK: 601 events" in result.stdout
    assert "3 stored checkpoint(s) match the events" in result.stdout
    assert _live_audit("--skip-tiles").exit_code == 0


@pytest.mark.parametrize("level, index", [(0, 0), (0, 2), (1, 0)])
def test_an_edited_tile_row_fails_the_live_audit(
    stored_log: Ledger, level: int, index: int
) -> None:
    """A full level-0 tile, the right-edge level-0 tile and the level-1 tile above them."""
    _flip_tile(stored_log.db, level, index)
    result = _live_audit()
    assert result.exit_code == 1
    assert f"stored tile {level}/{index} does not match the events" in result.stderr
    assert _live_audit("--skip-tiles").exit_code == 0  # the quick audit leaves tiles out


def test_an_edited_old_checkpoint_root_fails_the_live_audit(stored_log: Ledger) -> None:
    with stored_log.db.write(lock=None) as cur:
        cur.execute("UPDATE tlog_checkpoints SET root = ? WHERE size = 201", ("ab" * 32,))
    result = _live_audit()
    assert result.exit_code == 1
    assert "stored checkpoint 201: its note is for another tree" in result.stderr


def test_an_event_fault_is_named_before_a_later_bad_checkpoint_row(stored_log: Ledger) -> None:
    with stored_log.db.write(lock=None) as cur:
        cur.execute("UPDATE tlog_checkpoints SET root = ? WHERE size = 401", ("ab" * 32,))
        cur.execute("UPDATE ledger_events SET time = '2020-01-01T00:00:00.000000Z' WHERE seq = 9")
    result = _live_audit()
    assert result.exit_code == 1 and "FAILED at seq 9: hash does not match" in result.stderr


def test_an_edited_old_checkpoint_note_fails_the_live_audit(stored_log: Ledger) -> None:
    """Re-signed by a key the log never endorsed: the note no longer verifies."""
    old = CheckpointStore(stored_log.db).get(201)
    assert old is not None
    cp, _ = parse_checkpoint(old.note)
    _set_note(stored_log, 201, sign_checkpoint(cp, crypto.SigningKey.generate()), cp.root)
    result = _live_audit()
    assert result.exit_code == 1
    assert "stored checkpoint 201: no signature by a trusted key" in result.stderr


def test_a_forked_old_checkpoint_signed_by_the_log_fails_the_live_audit(
    stored_log: Ledger,
) -> None:
    """The log's own key signed another root at size 401: a fork, though the note verifies."""
    forked = Checkpoint(origin=stored_log.config.log_origin, size=401, root=bytes(32))
    _set_note(stored_log, 401, sign_checkpoint(forked, stored_log.signing_key()), forked.root)
    result = _live_audit()
    assert result.exit_code == 1
    assert "stored checkpoint 401: its root does not match the events" in result.stderr


def test_a_deleted_old_checkpoint_row_is_not_a_failure(stored_log: Ledger) -> None:
    with stored_log.db.write(lock=None) as cur:
        cur.execute("DELETE FROM tlog_checkpoints WHERE size = 201")
    result = _live_audit()
    assert result.exit_code == 0, result.stderr
    assert "2 stored checkpoint(s) match the events" in result.stdout


def test_tiles_covering_events_the_log_no_longer_has_fail_the_live_audit(
    stored_log: Ledger,
) -> None:
    """Events integrated but not yet signed, then deleted: only the tiles remember them."""
    stored_log.recorder.insert_events([_event(n) for n in range(601, 611)])
    assert TileStore(stored_log.db).integrate() == 611
    with stored_log.db.write(lock=None) as cur:
        cur.execute("DELETE FROM ledger_events WHERE seq > 601")
    result = _live_audit()
    assert result.exit_code == 1
    assert "FAILED at seq 602: the tiles hold a tree of 611 leaves" in result.stderr


def _flip_tile(db: Any, level: int, index: int) -> None:
    """Flip one bit of the first hash of a stored tile, as an intruder in the database could."""
    with db.write(lock=None) as cur:
        cur.execute("SELECT hashes FROM tlog_tiles WHERE level = ? AND idx = ?", (level, index))
        data = bytearray(cur.fetchone()[0])
        data[0] ^= 1
        cur.execute(
            "UPDATE tlog_tiles SET hashes = ? WHERE level = ? AND idx = ?",
            (bytes(data), level, index),
        )


def _set_note(ledger: Ledger, size: int, note: str, root: bytes) -> None:
    with ledger.db.write(lock=None) as cur:
        cur.execute(
            "UPDATE tlog_checkpoints SET note = ?, root = ? WHERE size = ?",
            (note, root.hex(), size),
        )
