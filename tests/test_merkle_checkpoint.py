"""Merkle tree (RFC 9162) and signed checkpoints (C2SP), against independent computations."""

from __future__ import annotations

import base64
import hashlib

import pytest

from ledger.audit.checkpoint import (
    Checkpoint,
    CheckpointError,
    parse_checkpoint,
    sign_checkpoint,
    verify_checkpoint,
)
from ledger.audit.merkle import (
    MerkleAccumulator,
    MerkleError,
    consistency_proof,
    inclusion_proof,
    root_hash,
    verify_consistency,
    verify_inclusion,
)
from ledger.crypto import SigningKey

LEAVES = [hashlib.sha256(bytes([i])).digest() for i in range(40)]


def h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def test_small_trees_by_hand() -> None:
    a, b, c = LEAVES[:3]
    assert root_hash([]).hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert root_hash([a]) == h(b"\x00" + a)
    ab = h(b"\x01" + h(b"\x00" + a) + h(b"\x00" + b))
    assert root_hash([a, b]) == ab
    assert root_hash([a, b, c]) == h(b"\x01" + ab + h(b"\x00" + c))


def test_accumulator_matches_the_recursive_root() -> None:
    acc = MerkleAccumulator()
    assert acc.root() == root_hash([])
    for n in range(1, 71):
        acc.append(hashlib.sha256(str(n).encode()).digest())
        assert acc.root() == root_hash(
            [hashlib.sha256(str(i).encode()).digest() for i in range(1, n + 1)]
        )


def test_every_inclusion_proof_verifies_and_tampering_fails() -> None:
    for size in range(1, 41):
        root = root_hash(LEAVES[:size])
        for index in range(size):
            proof = inclusion_proof(LEAVES[:size], index)
            assert verify_inclusion(index, size, LEAVES[index], proof, root)
            assert not verify_inclusion(index, size, LEAVES[(index + 1) % 40], proof, root)
            if proof:
                bad = [proof[0][:-1] + b"\x00", *proof[1:]]
                assert not verify_inclusion(index, size, LEAVES[index], bad, root)
            assert not verify_inclusion(
                index, size, LEAVES[index], proof, root_hash([*LEAVES[:size], b"x" * 32])
            )


def test_every_consistency_proof_verifies_and_tampering_fails() -> None:
    for new in range(1, 41):
        new_root = root_hash(LEAVES[:new])
        for old in range(1, new + 1):
            old_root = root_hash(LEAVES[:old])
            proof = consistency_proof(LEAVES[:new], old)
            assert verify_consistency(old, new, old_root, new_root, proof), (old, new)
            if proof:
                assert not verify_consistency(old, new, old_root, new_root, proof[:-1])
                assert not verify_consistency(old, new, new_root, old_root, proof)


def test_out_of_range_is_an_error() -> None:
    with pytest.raises(MerkleError):
        inclusion_proof(LEAVES[:3], 3)
    with pytest.raises(MerkleError):
        consistency_proof(LEAVES[:3], 0)


def test_checkpoint_round_trip_and_exact_format() -> None:
    key = SigningKey.generate()
    cp = Checkpoint("ledger.example/crcn", 7, root_hash(LEAVES[:7]))
    note = sign_checkpoint(cp, key)
    lines = note.split("\n")
    assert lines[0] == "ledger.example/crcn" and lines[1] == "7"
    assert base64.b64decode(lines[2]) == cp.root and lines[3] == ""
    assert lines[4].startswith("\u2014 ledger.example/crcn ") and note.endswith("\n")
    blob = base64.b64decode(lines[4].rsplit(" ", 1)[1])
    expected_key_hash = h(b"ledger.example/crcn\n\x01" + key.public_raw)[:4]
    assert blob[:4] == expected_key_hash and len(blob) == 68
    assert verify_checkpoint(note, "ledger.example/crcn", [key.public_raw]) == cp


@pytest.mark.parametrize(
    "mutate",
    [
        lambda n: n.replace("\n7\n", "\n8\n"),
        lambda n: n.replace("ledger.example/crcn\n", "other/origin\n", 1),
        lambda n: n[:-6] + "AAAAA\n",
        lambda n: n.replace("\n\n", "\n"),
        lambda n: "",
    ],
)
def test_tampered_notes_are_rejected(mutate) -> None:
    key = SigningKey.generate()
    note = sign_checkpoint(Checkpoint("ledger.example/crcn", 7, LEAVES[0]), key)
    with pytest.raises(CheckpointError):
        verify_checkpoint(mutate(note), "ledger.example/crcn", [key.public_raw])


def test_wrong_key_is_rejected() -> None:
    note = sign_checkpoint(Checkpoint("o", 1, LEAVES[0]), SigningKey.generate())
    with pytest.raises(CheckpointError):
        verify_checkpoint(note, "o", [SigningKey.generate().public_raw])
    with pytest.raises(CheckpointError):
        parse_checkpoint("o\nx\nroot\n\n— o AAAA\n")
