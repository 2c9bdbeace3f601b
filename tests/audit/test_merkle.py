"""RFC 9162 Merkle tree: known vectors, an independent reference, every proof up to 40 leaves."""

from __future__ import annotations

import hashlib

import pytest

from ledger.audit.merkle import (
    EMPTY_ROOT,
    MerkleAccumulator,
    MerkleError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_hash,
    verify_consistency,
    verify_inclusion,
)

# 32-byte leaves, like the events' hashes.
LEAVES = [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(70)]
MAX = 40


# --- an independent reference, straight from RFC 9162 2.1.1 with hashlib ----


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def split(n: int) -> int:
    k = 1
    while 2 * k < n:
        k *= 2
    return k


def ref_root(leaves: list[bytes]) -> bytes:
    if not leaves:
        return sha(b"")
    if len(leaves) == 1:
        return sha(b"\x00" + leaves[0])
    k = split(len(leaves))
    return sha(b"\x01" + ref_root(leaves[:k]) + ref_root(leaves[k:]))


def ref_root_from_path(m: int, n: int, leaf: bytes, path: list[bytes]) -> bytes:
    """Rebuild MTH(D[n]) from a PATH by walking the tree top-down (not the RFC verifier)."""
    if n == 1:
        assert not path
        return sha(b"\x00" + leaf)
    k = split(n)
    if m < k:
        return sha(b"\x01" + ref_root_from_path(m, k, leaf, path[:-1]) + path[-1])
    return sha(b"\x01" + path[-1] + ref_root_from_path(m - k, n - k, leaf, path[:-1]))


def expected_length(m: int, n: int) -> int:
    """Length of PATH(m, D[n]), counted on the tree's shape."""
    if n == 1:
        return 0
    k = split(n)
    return 1 + (expected_length(m, k) if m < k else expected_length(m - k, n - k))


def flipped(raw: bytes) -> bytes:
    return bytes([raw[0] ^ 1]) + raw[1:]


# --- RFC 6962 / 9162 test vectors (certificate-transparency, transparency-dev) ----

CT_LEAVES = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    bytes(range(0x50, 0x58)),
    bytes(range(0x60, 0x70)),
]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
H_5F08 = "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"
H_6B47 = "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"
H_BC1A = "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"
H_CA85 = "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"
H_96A2 = "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"
CT_INCLUSION = [
    (0, 1, []),
    (0, 8, [H_96A2, H_5F08, H_6B47]),
    (5, 8, [H_BC1A, H_CA85, CT_ROOTS[3]]),
    (2, 3, [CT_ROOTS[1]]),
    (1, 5, [CT_ROOTS[0], H_5F08, H_BC1A]),
]
CT_CONSISTENCY = [
    (1, 1, []),
    (1, 8, [H_96A2, H_5F08, H_6B47]),
    (
        6,
        8,
        ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a", H_CA85, CT_ROOTS[3]],
    ),
    (2, 5, [H_5F08, H_BC1A]),
    (2, 8, [H_5F08, H_6B47]),
]


def test_empty_tree_is_sha256_of_nothing() -> None:
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert root_hash([]) == EMPTY_ROOT == MerkleAccumulator().root()


def test_leaf_and_node_hashes_carry_the_domain_prefixes() -> None:
    a, b = LEAVES[:2]
    assert leaf_hash(a) == sha(b"\x00" + a)
    assert node_hash(a, b) == sha(b"\x01" + a + b)


def test_small_trees_by_hand() -> None:
    a, b, c, d, e = (sha(b"\x00" + x) for x in LEAVES[:5])
    ab, cd = sha(b"\x01" + a + b), sha(b"\x01" + c + d)
    abcd = sha(b"\x01" + ab + cd)
    assert root_hash(LEAVES[:1]) == a
    assert root_hash(LEAVES[:2]) == ab
    assert root_hash(LEAVES[:3]) == sha(b"\x01" + ab + c)  # split at 2, not 1
    assert root_hash(LEAVES[:4]) == abcd
    assert root_hash(LEAVES[:5]) == sha(b"\x01" + abcd + e)  # the lone leaf is not promoted
    assert inclusion_proof(LEAVES[:5], 2) == [d, ab, e]
    assert inclusion_proof(LEAVES[:5], 4) == [abcd]
    assert consistency_proof(LEAVES[:5], 3) == [c, d, ab, e]


@pytest.mark.parametrize("size", range(1, 9))
def test_ct_roots(size: int) -> None:
    assert root_hash(CT_LEAVES[:size]).hex() == CT_ROOTS[size - 1]


@pytest.mark.parametrize(("index", "size", "path"), CT_INCLUSION)
def test_ct_inclusion_proofs(index: int, size: int, path: list[str]) -> None:
    proof = inclusion_proof(CT_LEAVES[:size], index)
    assert [p.hex() for p in proof] == path
    root = bytes.fromhex(CT_ROOTS[size - 1])
    assert verify_inclusion(index, size, CT_LEAVES[index], proof, root)


@pytest.mark.parametrize(("old", "new", "path"), CT_CONSISTENCY)
def test_ct_consistency_proofs(old: int, new: int, path: list[str]) -> None:
    proof = consistency_proof(CT_LEAVES[:new], old)
    assert [p.hex() for p in proof] == path
    old_root, new_root = (bytes.fromhex(CT_ROOTS[s - 1]) for s in (old, new))
    assert verify_consistency(old, new, old_root, new_root, proof)


def test_roots_match_the_reference_and_the_accumulator() -> None:
    acc = MerkleAccumulator()
    for size in range(len(LEAVES) + 1):
        assert acc.size == len(acc) == size
        assert acc.root() == root_hash(LEAVES[:size]) == ref_root(LEAVES[:size]), size
        if size < len(LEAVES):
            acc.append(LEAVES[size])
    assert MerkleAccumulator(LEAVES).root() == acc.root()


def test_accumulator_on_a_large_log() -> None:
    leaves = [sha(i.to_bytes(4, "big")) for i in range(100_003)]
    acc = MerkleAccumulator()
    acc.extend(leaves)
    assert acc.size == 100_003
    assert acc.root() == root_hash(leaves)


def test_proofs_in_a_large_tree() -> None:
    leaves = [sha(i.to_bytes(4, "big")) for i in range(20_011)]
    root = MerkleAccumulator(leaves).root()
    for index in (0, 1, 8191, 16384, 20_010):
        proof = inclusion_proof(leaves, index)
        assert len(proof) <= 15
        assert verify_inclusion(index, len(leaves), leaves[index], proof, root)
    for old in (1, 4096, 12_345, 20_010):
        old_root = root_hash(leaves[:old])
        proof = consistency_proof(leaves, old)
        assert verify_consistency(old, len(leaves), old_root, root, proof)


def test_every_inclusion_proof_up_to_40_leaves() -> None:
    for size in range(1, MAX + 1):
        tree, root = LEAVES[:size], ref_root(LEAVES[:size])
        for index in range(size):
            proof = inclusion_proof(tree, index)
            assert len(proof) == expected_length(index, size)
            assert ref_root_from_path(index, size, tree[index], proof) == root
            assert verify_inclusion(index, size, tree[index], proof, root), (index, size)


def test_tampered_inclusion_proofs_are_rejected() -> None:
    for size in range(1, MAX + 1):
        tree, root = LEAVES[:size], root_hash(LEAVES[:size])
        for index in range(size):
            proof, leaf = inclusion_proof(tree, index), tree[index]
            assert not verify_inclusion(index, size, LEAVES[size], proof, root)
            assert not verify_inclusion(index, size, leaf, proof, flipped(root))
            assert not verify_inclusion(index, size, leaf, [*proof, root], root)
            if proof:
                assert not verify_inclusion(index, size, leaf, proof[:-1], root)
            if len(proof) > 1:
                assert not verify_inclusion(index, size, leaf, proof[::-1], root)
            for i in range(len(proof)):
                bad = [*proof[:i], flipped(proof[i]), *proof[i + 1 :]]
                assert not verify_inclusion(index, size, leaf, bad, root)
            for other in (index - 1, index + 1):
                if 0 <= other < size:
                    assert not verify_inclusion(other, size, leaf, proof, root)
            for other_size in (size - 1, size + 1, 2 * size):
                # A proof fixes the path's shape, not the size: only a different shape must fail.
                if other_size <= index or expected_length(index, other_size) != len(proof):
                    assert not verify_inclusion(index, other_size, leaf, proof, root)


def test_inclusion_outside_the_tree_is_rejected() -> None:
    root = root_hash(LEAVES[:4])
    proof = inclusion_proof(LEAVES[:4], 3)
    assert not verify_inclusion(4, 4, LEAVES[3], proof, root)
    assert not verify_inclusion(-1, 4, LEAVES[3], proof, root)
    assert not verify_inclusion(0, 0, LEAVES[0], [], EMPTY_ROOT)


def test_every_consistency_proof_up_to_40_leaves() -> None:
    roots = [ref_root(LEAVES[:n]) for n in range(MAX + 1)]
    for new in range(1, MAX + 1):
        for old in range(1, new + 1):
            proof = consistency_proof(LEAVES[:new], old)
            assert (proof == []) == (old == new)
            assert verify_consistency(old, new, roots[old], roots[new], proof), (old, new)


def test_tampered_consistency_proofs_are_rejected() -> None:
    roots = [root_hash(LEAVES[:n]) for n in range(MAX + 2)]
    for new in range(2, MAX + 1):
        for old in range(1, new):
            proof = consistency_proof(LEAVES[:new], old)
            old_root, new_root = roots[old], roots[new]
            assert not verify_consistency(old, new, flipped(old_root), new_root, proof)
            assert not verify_consistency(old, new, old_root, flipped(new_root), proof)
            assert not verify_consistency(old, new, new_root, old_root, proof)
            assert not verify_consistency(old, new, old_root, new_root, proof[:-1])
            assert not verify_consistency(old, new, old_root, new_root, [*proof, new_root])
            assert not verify_consistency(old, new, old_root, new_root, [])
            for i in range(len(proof)):
                bad = [*proof[:i], flipped(proof[i]), *proof[i + 1 :]]
                assert not verify_consistency(old, new, old_root, new_root, bad)
            for o, n in ((old - 1, new), (old + 1, new), (old, new + 1), (old, new - 1)):
                if (o, n) != (old, new) and 0 < o <= n:
                    assert not verify_consistency(o, n, roots[o], roots[n], proof) or (
                        proof == consistency_proof(LEAVES[:n], o)
                    )


def test_consistency_edge_sizes() -> None:
    r3 = root_hash(LEAVES[:3])
    assert verify_consistency(3, 3, r3, r3, [])
    assert not verify_consistency(3, 3, r3, r3, [r3])
    assert not verify_consistency(3, 3, r3, flipped(r3), [])
    assert not verify_consistency(0, 3, EMPTY_ROOT, r3, [])
    assert not verify_consistency(4, 3, root_hash(LEAVES[:4]), r3, [])
    assert not verify_consistency(-1, 3, r3, r3, [])


@pytest.mark.parametrize("index", [-1, 5, 6, 100])
def test_inclusion_index_out_of_range(index: int) -> None:
    with pytest.raises(MerkleError, match="outside"):
        inclusion_proof(LEAVES[:5], index)


def test_inclusion_in_empty_tree() -> None:
    with pytest.raises(MerkleError):
        inclusion_proof([], 0)


@pytest.mark.parametrize("old_size", [-1, 0, 6, 100])
def test_consistency_size_out_of_range(old_size: int) -> None:
    with pytest.raises(MerkleError) as info:
        consistency_proof(LEAVES[:5], old_size)
    assert isinstance(info.value, ValueError)
