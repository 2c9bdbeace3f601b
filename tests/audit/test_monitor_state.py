"""The monitor's state file: a faithful round trip, and a clear error on anything else."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger import crypto
from ledger.audit.merkle import MerkleAccumulator, MerkleError, root_hash
from ledger.audit.monitor_state import MonitorState, StateError, load, save
from ledger.trust import Anchor, KeyHistory, SignedSeqs


def test_the_state_round_trips(tmp_path: Path) -> None:
    key = crypto.SigningKey.generate()
    leaves = [crypto.sha256(bytes([n])) for n in range(13)]
    history = KeyHistory(Anchor.of(key.public_raw, "log.example"))
    signed = SignedSeqs()
    for seq in (1, 2, 3, 7, 8):
        signed.add("k", seq)
    state = MonitorState(
        history.anchor, size=13, root=root_hash(leaves), prev="ab" * 32, note="n",
        tree=MerkleAccumulator(leaves), history=history, signed=signed,
    )  # fmt: skip
    assert load(tmp_path) is None
    save(tmp_path, state)
    again = load(tmp_path)
    assert again is not None and again.to_json() == state.to_json()
    assert again.tree.root() == root_hash(leaves) and again.tree.size == 13
    assert again.signed.first_from("k", 4) == 7 and again.signed.first_from("k", 9) is None
    again.tree.append(b"x")
    assert again.tree.root() == root_hash([*leaves, b"x"])


@pytest.mark.parametrize("text", ["", "{}", '{"format": 1}', "[1]", '{"format": 2}'])
def test_a_malformed_state_is_a_state_error(tmp_path: Path, text: str) -> None:
    (tmp_path / "state.json").write_text(text)
    with pytest.raises(StateError):
        load(tmp_path)


def test_peaks_must_be_decreasing_powers_of_two() -> None:
    with pytest.raises(MerkleError):
        MerkleAccumulator.from_peaks([(4, bytes(32)), (4, bytes(32))])
    with pytest.raises(MerkleError):
        MerkleAccumulator.from_peaks([(3, bytes(32))])
