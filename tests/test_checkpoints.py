"""Checkpoints on a schedule, kept for ever, never inconsistent (SQLite and PostgreSQL)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ledger.audit.checkpoint import parse_checkpoint, verify_checkpoint
from ledger.audit.checkpoints import Schedule, quorum, witness_keys
from ledger.audit.merkle import root_hash
from ledger.config import Config, ConfigError
from ledger.domain import clock
from ledger.services.checkpoints import Checkpointer, latest_note, witnessed
from ledger.store.application import Ledger
from ledger.store.checkpoints import CheckpointStore
from tests.test_store import Counter, all_envelopes

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def add_events(ledger: Ledger, n: int) -> None:
    """n events (one aggregate each: a Started event)."""
    for i in range(n):
        ledger.save(Counter(label=f"c{i}"))


def with_settings(ledger: Ledger, **changes: Any) -> Ledger:
    ledger.config = dataclasses.replace(ledger.config, **changes)
    return ledger


def leaves(ledger: Ledger) -> list[bytes]:
    return [bytes.fromhex(e.hash) for e in all_envelopes(ledger)]


def test_schedule_by_events_and_by_seconds() -> None:
    schedule = Schedule(every_events=10, every_seconds=60)
    assert schedule.due(None, 0, T0)
    assert not schedule.due((5, T0), 5, T0 + timedelta(hours=1))  # nothing new: never re-signed
    assert not schedule.due((5, T0), 14, T0 + timedelta(seconds=59))
    assert schedule.due((5, T0), 15, T0)
    assert schedule.due((5, T0), 6, T0 + timedelta(seconds=60))


def test_checkpoints_follow_the_schedule_and_are_kept(ledger: Ledger) -> None:
    with_settings(ledger, checkpoint_events=5, checkpoint_seconds=60)
    signer = Checkpointer(ledger)
    with clock.frozen_at(T0):
        assert signer.tick() == 0  # the first one, even of the empty log
        add_events(ledger, 1)  # the first write also logs the signing key: 2 events
        base = len(all_envelopes(ledger))
        assert signer.tick() is None  # not 5 events yet, 0 s: not due
        add_events(ledger, 5 - base)
        assert signer.tick() == 5  # by events
        add_events(ledger, 2)
        assert signer.tick() is None
    with clock.frozen_at(T0 + timedelta(seconds=61)):
        assert signer.tick() == 7  # by time
        assert signer.tick() is None  # same size: never signed twice
    store = CheckpointStore(ledger.db)
    kept = store.after(0, 100)
    assert [c.size for c in kept] == [5, 7]
    assert [c.size for c in store.after(-1, 1)] == [0]
    all_leaves = leaves(ledger)
    for cp in kept:
        assert cp.root == root_hash(all_leaves[: cp.size])
        parsed = verify_checkpoint(
            cp.note, ledger.config.log_origin, [ledger.signing_key().public_raw]
        )
        assert (parsed.size, parsed.root) == (cp.size, cp.root)
    assert kept[1].created_at == clock.format_time(T0 + timedelta(seconds=61))


def test_a_stored_note_never_changes(ledger: Ledger) -> None:
    add_events(ledger, 3)
    first = latest_note(ledger)  # signs the first checkpoint on demand
    assert parse_checkpoint(first)[0].size == len(all_envelopes(ledger))
    with clock.frozen_at(clock.now() + timedelta(days=1)):
        assert Checkpointer(ledger).tick() is None
        assert latest_note(ledger) == first


def _forge_hash(ledger: Ledger, seq: int) -> None:
    """Change event `seq`'s hash in place, as a database writer without the key can."""
    old = all_envelopes(ledger)[seq - 1].hash
    forged = ("0" if old[0] != "0" else "1") + old[1:]
    with ledger.db.write() as cur:
        cur.execute("UPDATE ledger_events SET hash = ? WHERE seq = ?", (forged, seq))


@pytest.mark.parametrize("appended", [2, 0])
def test_a_rewritten_history_is_never_signed_over(ledger: Ledger, appended: int) -> None:
    with_settings(ledger, checkpoint_events=1)
    add_events(ledger, 3)  # and the key's event: 4
    assert Checkpointer(ledger).tick() == 4
    _forge_hash(ledger, 3)
    with ledger.db.write() as cur:
        cur.execute("DELETE FROM tlog_tiles")  # and the tree rebuilt from the rewritten log
    add_events(ledger, appended)  # with or without new events, the check notices
    alarms: list[dict[str, object]] = []
    signer = Checkpointer(ledger, alarm=alarms.append)
    assert signer.tick() is None
    assert "not consistent" in signer.problem
    assert alarms and alarms[0]["source"] == "checkpoint"
    assert [c.size for c in CheckpointStore(ledger.db).after(0, 10)] == [4]
    assert signer.tick() is None  # stays refused


def test_a_rewritten_tail_event_is_never_signed_over(ledger: Ledger) -> None:
    with_settings(ledger, checkpoint_events=1)
    add_events(ledger, 3)
    assert Checkpointer(ledger).tick() == 4
    _forge_hash(ledger, 4)  # the tree still holds the original leaf
    add_events(ledger, 1)
    alarms: list[dict[str, object]] = []
    signer = Checkpointer(ledger, alarm=alarms.append)
    assert signer.tick() is None
    assert "rewritten" in signer.problem and alarms
    assert [c.size for c in CheckpointStore(ledger.db).after(0, 10)] == [4]
    assert signer.tick() is None  # stays refused


def test_a_truncated_log_is_an_alarm(ledger: Ledger) -> None:
    add_events(ledger, 2)
    assert Checkpointer(ledger).tick() == 3
    with ledger.db.write() as cur:
        cur.execute("DELETE FROM ledger_events WHERE seq = 3")
    alarms: list[dict[str, object]] = []
    signer = Checkpointer(ledger, alarm=alarms.append)
    assert signer.tick() is None
    assert "3" in signer.problem and alarms  # the tree had 3 leaves


def test_without_witnesses_no_checkpoint_is_witnessed(ledger: Ledger) -> None:
    """Nobody cosigned: "witnessed" would vouch for what no one checked (history says so)."""
    add_events(ledger, 2)
    Checkpointer(ledger).tick()
    assert witnessed(ledger) is None
    assert quorum(ledger.config) == 0 and witness_keys(ledger.config) == []


def test_witness_settings_are_checked(tmp_path) -> None:
    base = Config.from_env(database_url=f"sqlite:///{tmp_path}/x.db", keys_dir=tmp_path)
    for bad in ("nonsense", "a+00000000+AAAA http://x", "x http://y extra"):
        with pytest.raises(ConfigError):
            witness_keys(dataclasses.replace(base, witnesses=bad))


def test_quorum_is_at_most_the_witnesses(tmp_path) -> None:
    from ledger.audit.cosignature import witness_vkey
    from ledger.crypto import SigningKey

    base = Config.from_env(database_url=f"sqlite:///{tmp_path}/x.db", keys_dir=tmp_path)
    entry = f"{witness_vkey('w.example', SigningKey.generate())} https://w.example"
    one = dataclasses.replace(base, witnesses=f"{entry};")
    assert quorum(one) == 1 and quorum(dataclasses.replace(one, witness_quorum=0)) == 0
    with pytest.raises(ConfigError):
        quorum(dataclasses.replace(one, witness_quorum=2))


def test_tlog_witness_wire_forms_are_exact() -> None:
    from ledger.audit.checkpoints import (
        WitnessProtocolError,
        add_checkpoint_body,
        parse_cosignature_lines,
        parse_tlog_size,
    )

    note = "o\n2\nAAAA\n\n\u2014 o x\n"
    assert add_checkpoint_body(0, [], note) == b"old 0\n\n" + note.encode()
    proof = [b"\x00" * 32, b"\xff" * 32]
    expected = b"old 1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"
    expected += b"//////////////////////////////////////////8=\n\n" + note.encode()
    assert add_checkpoint_body(1, proof, note) == expected
    assert parse_tlog_size(b"0\n") == 0 and parse_tlog_size(b"1234\n") == 1234
    for bad in (b"", b"12", b"012\n", b"-1\n", b"1 \n", b"\xff\n", b"1\n2\n"):
        with pytest.raises(WitnessProtocolError):
            parse_tlog_size(bad)
    assert parse_cosignature_lines("\u2014 w AAAA\n".encode()) == ["\u2014 w AAAA\n"]
    for bad in (b"", b"\n", "\u2014 w AAAA".encode(), b"hello\n", b"\xff\n", b"x" * 70000):
        with pytest.raises(WitnessProtocolError):
            parse_cosignature_lines(bad)


def test_concurrent_signers_store_one_checkpoint_per_size(ledger: Ledger, config: Config) -> None:
    import threading

    add_events(ledger, 2)
    others = [Ledger(config) for _ in range(4)]
    signed: list[int | None] = []
    threads = [
        threading.Thread(target=lambda o=o: signed.append(Checkpointer(o).tick())) for o in others
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for other in others:
        other.close()
    assert len([s for s in signed if s is not None]) == 1
    assert [c.size for c in CheckpointStore(ledger.db).after(-1, 10)] == [3]


def test_the_background_loop_ticks_and_stops(ledger: Ledger) -> None:
    import time

    from ledger.services.checkpoints import CheckpointLoop

    add_events(ledger, 1)
    loop = CheckpointLoop(Checkpointer(ledger), interval=0.05).start()
    deadline = time.monotonic() + 5
    while CheckpointStore(ledger.db).latest() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    loop.stop()
    assert CheckpointStore(ledger.db).latest() is not None
    assert not loop._thread.is_alive()
