"""The log's checkpoints pushed to a real `ledger witness serve` process (both backends)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator

import pytest

from ledger.audit.cosignature import parse_vkey, verified_cosigners
from ledger.services.checkpoints import Checkpointer, latest_note, witnessed
from ledger.store.application import Ledger
from tests.test_checkpoints import _forge_hash, add_events
from tests.witness_process import witness_process


@pytest.fixture
def witness(ledger: Ledger) -> Iterator[tuple[str, str]]:
    """(base URL, witness vkey) of a witness that follows this ledger's log."""
    anchor = ledger.trust_anchor()
    assert anchor is not None
    with witness_process([anchor.to_string()]) as (base, vkey, _):
        yield base, vkey


def _signer(ledger: Ledger, base: str, vkey: str, alarms: list) -> Checkpointer:
    ledger.config = dataclasses.replace(
        ledger.config, witnesses=f"{vkey} {base}", checkpoint_events=1
    )
    return Checkpointer(ledger, alarm=alarms.append)


def test_checkpoints_are_cosigned_by_the_witness(ledger: Ledger, witness: tuple[str, str]) -> None:
    base, vkey = witness
    alarms: list = []
    signer = _signer(ledger, base, vkey, alarms)
    add_events(ledger, 2)
    first = signer.tick()
    add_events(ledger, 2)
    second = signer.tick()
    found = witnessed(ledger)
    assert found is not None and found.size == second and second > (first or 0)
    assert verified_cosigners(latest_note(ledger), [parse_vkey(vkey)]) == found.cosigners
    assert not alarms


def test_a_history_rewritten_behind_the_witness_is_refused(
    ledger: Ledger, witness: tuple[str, str]
) -> None:
    base, vkey = witness
    alarms: list = []
    add_events(ledger, 3)
    assert _signer(ledger, base, vkey, alarms).tick() == 4
    assert witnessed(ledger) is not None
    # Someone with the database and the key rewrites event 3, rebuilds the tree, forgets
    # every checkpoint the log published and signs the new history from scratch.
    _forge_hash(ledger, 3)
    with ledger.db.write() as cur:
        for table in ("tlog_tiles", "tlog_checkpoints", "tlog_cosignatures"):
            cur.execute(f"DELETE FROM {table}")
    add_events(ledger, 2)
    rewritten = _signer(ledger, base, vkey, alarms)
    assert rewritten.tick() == 6  # nothing left to compare with: it signs
    problems = [p for a in alarms for p in a["problems"]]
    assert any("rejected our consistency proof" in p for p in problems), problems
    assert witnessed(ledger) is None  # the witness never cosigned the rewritten log


def test_an_idle_logs_checkpoint_is_cosigned_again_when_its_cosignature_ages(
    ledger: Ledger, witness: tuple[str, str]
) -> None:
    """Verifiers warn on an old cosignature: the log asks the witness again, same checkpoint."""
    base, vkey = witness
    alarms: list = []
    signer = _signer(ledger, base, vkey, alarms)
    ledger.config = signer.ledger.config = dataclasses.replace(
        ledger.config, checkpoint_max_age_s=2
    )
    add_events(ledger, 2)
    size = signer.tick()
    first = witnessed(ledger)
    assert first is not None and first.size == size
    signer.tick()
    assert witnessed(ledger).cosigners == first.cosigners  # fresh: not asked again
    time.sleep(2.1)  # cosignatures carry whole seconds
    assert signer.tick() is None  # nothing new to sign, yet the witness is asked again
    again = witnessed(ledger)
    assert again.size == size and again.cosigners[next(iter(again.cosigners))] > next(
        iter(first.cosigners.values())
    )
    assert not alarms
