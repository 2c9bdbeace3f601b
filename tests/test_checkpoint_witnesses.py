"""The log's tlog-witness client against a witness written from the spec (both backends)."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.audit.checkpoint import parse_checkpoint
from ledger.audit.cosignature import verified_cosigners
from ledger.audit.merkle import root_hash
from ledger.services import witness_client
from ledger.services.checkpoints import Checkpointer, latest_note, witnessed
from ledger.store.application import Ledger
from ledger.store.checkpoints import CheckpointStore
from tests.spec_witness import SpecWitness, drip_witness, spec_witness
from tests.test_checkpoints import add_events, leaves, with_settings


@pytest.fixture
def witnesses(ledger: Ledger) -> Iterator[list[SpecWitness]]:
    key = ledger.signing_key().public_raw
    origin = ledger.config.log_origin
    with (
        spec_witness("w1.example/a", origin, key) as a,
        spec_witness("w2.example/b", origin, key) as b,
    ):
        yield [a, b]


def configured(ledger: Ledger, ws: list[SpecWitness], quorum: int | None = None) -> Checkpointer:
    with_settings(
        ledger,
        witnesses="\n".join(w.config_entry() for w in ws),
        witness_quorum=quorum,
        checkpoint_events=1,
    )
    return Checkpointer(ledger, alarm=ALARMS.append)


ALARMS: list[dict[str, object]] = []


@pytest.fixture(autouse=True)
def no_alarms_left() -> Iterator[None]:
    ALARMS.clear()
    yield
    ALARMS.clear()


def test_each_checkpoint_is_cosigned_and_served_with_the_cosignatures(
    ledger: Ledger, witnesses: list[SpecWitness]
) -> None:
    signer = configured(ledger, witnesses)
    add_events(ledger, 2)
    first = signer.tick()
    add_events(ledger, 2)
    second = signer.tick()
    assert first and second and second > first
    note = latest_note(ledger)
    assert verified_cosigners(note, [w.vkey for w in witnesses]).keys() == {
        "w1.example/a",
        "w2.example/b",
    }
    found = witnessed(ledger)
    assert found is not None and found.size == second and found.note == note
    assert found.root == root_hash(leaves(ledger)[:second])
    # the second push proved consistency from the first cosigned size
    assert all(w.requests[-1].startswith(b"old %d\n" % first) for w in witnesses)
    assert not ALARMS


def test_a_witness_that_knows_a_later_size_gets_a_proof_from_it(
    ledger: Ledger, witnesses: list[SpecWitness]
) -> None:
    signer = configured(ledger, witnesses[:1])
    add_events(ledger, 3)
    size = signer.tick()
    add_events(ledger, 2)
    # The witness cosigned `size` for us, but we lost its answer (another process, a crash).
    witnesses[0].state = (size, root_hash(leaves(ledger)[:size]))
    with ledger.db.write() as cur:
        cur.execute("DELETE FROM tlog_cosignatures")
    bigger = signer.tick()
    assert [r.split(b"\n")[0] for r in witnesses[0].requests[-2:]] == [b"old 0", b"old %d" % size]
    assert witnessed(ledger).size == bigger and not ALARMS


def test_a_witness_shown_another_tree_is_an_alarm(
    ledger: Ledger, witnesses: list[SpecWitness]
) -> None:
    signer = configured(ledger, witnesses, quorum=1)
    add_events(ledger, 3)
    witnesses[0].state = (2, b"\x01" * 32)  # someone showed it a forked tree of 2 events
    witnesses[1].state = (10**6, b"\x02" * 32)  # and this one a far larger tree
    size = signer.tick()
    problems = [str(p) for a in ALARMS for p in a["problems"]]  # type: ignore[attr-defined]
    assert any("rejected our consistency proof" in p for p in problems)  # 422
    assert any("a tree we never signed" in p for p in problems)  # 409 beyond any size of ours
    assert all(a["source"] == "witness" for a in ALARMS)
    assert witnessed(ledger) is None
    assert CheckpointStore(ledger.db).latest().size == size  # appends and signing go on


def test_a_slow_witness_times_out_and_is_retried(
    ledger: Ledger, witnesses: list[SpecWitness]
) -> None:
    signer = configured(ledger, witnesses, quorum=2)
    witnesses[1].delay = 3.0
    add_events(ledger, 2)
    started = time.monotonic()
    size = signer.tick()
    assert time.monotonic() - started < 2.9  # bounded by the 2 s timeout, pushed in parallel
    assert witnessed(ledger) is None  # 1 of 2
    cosigners = witnessed_with_quorum_one(ledger)
    assert cosigners == {"w1.example/a"}
    witnesses[1].delay = 0.0
    time.sleep(1.1)  # the back-off after one failure
    assert signer.tick() is None  # nothing new to sign, but the push is retried
    found = witnessed(ledger)
    assert found is not None and found.size == size and len(found.cosigners) == 2
    assert not ALARMS


def witnessed_with_quorum_one(ledger: Ledger) -> set[str]:
    with_settings(ledger, witness_quorum=1)
    try:
        found = witnessed(ledger)
        return set(found.cosigners) if found else set()
    finally:
        with_settings(ledger, witness_quorum=2)


def test_export_carries_the_cosignatures(
    ledger: Ledger, witnesses: list[SpecWitness], tmp_path: Path
) -> None:
    from ledger.audit.export import export_bundle

    signer = configured(ledger, witnesses)
    add_events(ledger, 2)
    size = signer.tick()
    export_bundle(ledger, tmp_path / "bundle")
    note = (tmp_path / "bundle" / "checkpoint.txt").read_text(encoding="utf-8")
    assert parse_checkpoint(note)[0].size == size
    assert len(verified_cosigners(note, [w.vkey for w in witnesses])) == 2


def test_a_dripping_answer_is_cut_at_the_deadline() -> None:
    with drip_witness() as url:
        started = time.monotonic()
        with pytest.raises(TimeoutError, match="within 1 s"):
            witness_client.post(f"{url}/add-checkpoint", b"old 0\n\n", deadline_s=1.0)
        assert time.monotonic() - started < 1.8


def test_a_dripping_witness_neither_stops_signing_nor_holds_its_push(
    ledger: Ledger, witnesses: list[SpecWitness], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(witness_client, "DEADLINE_S", 1.0)
    with drip_witness() as url:
        drip = SpecWitness("w3.example/drip", ledger.config.log_origin, b"", url=url)
        signer = configured(ledger, [witnesses[0], drip], quorum=1)
        try:
            add_events(ledger, 2)
            started = time.monotonic()
            first = signer.tick(wait=False)  # as the background loop does
            add_events(ledger, 2)
            second = signer.tick(wait=False)  # the first round is still dripping
            assert first and second and second > first
            assert time.monotonic() - started < 0.8
            signer.tick()  # waits for the round in flight: abandoned at its deadline
            assert time.monotonic() - started < 2.5
        finally:
            signer.close()
    assert witnessed(ledger) is not None and not ALARMS


def test_a_witness_ahead_on_a_checkpoint_we_signed_is_a_race_not_an_alarm(
    ledger: Ledger, witnesses: list[SpecWitness]
) -> None:
    """Worker B pushes n while worker A signs n + 2 and gets it cosigned first: a 409."""
    b = configured(ledger, witnesses[:1])
    a = Checkpointer(ledger, alarm=ALARMS.append)

    def a_signs_and_pushes_first() -> None:
        add_events(ledger, 2)
        a.tick(force=True, wait=False)
        a._push_latest()  # directly: B's round holds the push lock (a worker without it)

    add_events(ledger, 3)
    witnesses[0].before = a_signs_and_pushes_first
    try:
        size = b.tick()
    finally:
        a.close()
        b.close()
    assert size and witnesses[0].state is not None
    assert witnesses[0].state[0] == size + 2
    assert [r.split(b"\n")[0] for r in witnesses[0].requests] == [b"old 0", b"old 0"]
    assert not ALARMS and not b.problem
    assert witnessed(ledger).size == size + 2


def test_a_witness_that_lost_its_state_is_logged_and_seeded_again(
    ledger: Ledger, witnesses: list[SpecWitness], caplog: pytest.LogCaptureFixture
) -> None:
    signer = configured(ledger, witnesses[:1])
    add_events(ledger, 3)
    first = signer.tick()
    witnesses[0].state = None  # restored from an empty disk
    add_events(ledger, 2)
    with caplog.at_level(logging.WARNING, logger=witness_client.__name__):
        second = signer.tick()
    lost = f"w1.example/a holds a tree of 0 events, less than the {first} it cosigned"
    assert lost in caplog.text
    assert second and not ALARMS and witnessed(ledger).size == second


def test_only_the_process_holding_the_push_turn_pushes(
    ledger: Ledger, witnesses: list[SpecWitness]
) -> None:
    signer = configured(ledger, witnesses[:1])
    other = CheckpointStore(ledger.db)  # another worker: its own connection or file handle
    add_events(ledger, 2)
    with other.push_turn() as mine:
        assert mine
        with signer.store.push_turn() as also:
            assert not also  # at once, not after a wait
        assert signer.tick()  # signs, and skips the round
        assert witnesses[0].requests == []
    signer.tick()  # the turn is free again: the pending push goes out
    assert witnessed(ledger).size == CheckpointStore(ledger.db).latest().size


HOLD_THE_TURN = """
import sys
from ledger.store.checkpoints import CheckpointStore
from ledger.store.db import connect
db = connect(sys.argv[1])
with CheckpointStore(db).push_turn() as mine:
    print("mine" if mine else "not mine", flush=True)
    sys.stdin.read()
"""


def test_a_worker_process_holding_the_push_turn_makes_the_others_skip(
    ledger: Ledger, witnesses: list[SpecWitness]
) -> None:
    signer = configured(ledger, witnesses[:1])
    add_events(ledger, 2)
    worker = subprocess.Popen(
        [sys.executable, "-c", HOLD_THE_TURN, ledger.config.database_url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert worker.stdout is not None and worker.stdout.readline() == "mine\n"
        assert signer.tick() and witnesses[0].requests == []
    finally:
        worker.communicate(timeout=10)  # closing its stdin ends its turn
    signer.tick()
    assert witnessed(ledger) is not None
