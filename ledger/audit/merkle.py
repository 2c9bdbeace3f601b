"""RFC 9162 section 2.1 Merkle tree over the events' hashes (format section 5).

Written to read like the RFC: MTH for the root, PATH for inclusion proofs,
PROOF/SUBPROOF for consistency proofs, and the verification algorithms of
2.1.3.2 and 2.1.4.2 step by step.
"""

from __future__ import annotations

from collections.abc import Sequence

from ledger.crypto import sha256


class MerkleError(ValueError):
    """An index or size outside the tree."""


def leaf_hash(data: bytes) -> bytes:
    return sha256(b"\x00" + data)


def node_hash(left: bytes, right: bytes) -> bytes:
    return sha256(b"\x01" + left + right)


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def root_hash(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]) of RFC 9162 2.1.1."""
    n = len(leaves)
    if n == 0:
        return sha256(b"")
    if n == 1:
        return leaf_hash(leaves[0])
    k = _split(n)
    return node_hash(root_hash(leaves[:k]), root_hash(leaves[k:]))


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """PATH(m, D[n]) of RFC 9162 2.1.3.1."""
    if not 0 <= index < len(leaves):
        raise MerkleError(f"leaf index {index} is outside a tree of {len(leaves)}")
    return _path(index, leaves)


def _path(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    n = len(leaves)
    if n == 1:
        return []
    k = _split(n)
    if m < k:
        return [*_path(m, leaves[:k]), root_hash(leaves[k:])]
    return [*_path(m - k, leaves[k:]), root_hash(leaves[:k])]


def consistency_proof(leaves: Sequence[bytes], old_size: int) -> list[bytes]:
    """PROOF(m, D[n]) of RFC 9162 2.1.4.1."""
    if not 0 < old_size <= len(leaves):
        raise MerkleError(f"old size {old_size} is not within a tree of {len(leaves)}")
    if old_size == len(leaves):
        return []
    return _subproof(old_size, leaves, True)


def _subproof(m: int, leaves: Sequence[bytes], complete: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if complete else [root_hash(leaves)]
    k = _split(n)
    if m <= k:
        return [*_subproof(m, leaves[:k], complete), root_hash(leaves[k:])]
    return [*_subproof(m - k, leaves[k:], False), root_hash(leaves[:k])]


def verify_inclusion(
    leaf_index: int, tree_size: int, leaf_data: bytes, proof: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 2.1.3.2."""
    if leaf_index >= tree_size or leaf_index < 0:
        return False
    fn, sn = leaf_index, tree_size - 1
    r = leaf_hash(leaf_data)
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while True:
                    fn >>= 1
                    sn >>= 1
                    if fn & 1 or fn == 0:
                        break
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 2.1.4.2."""
    if old_size < 1 or old_size > new_size:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is the first node
        path.insert(0, old_root)
    if not path:
        return False
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while True:
                    fn >>= 1
                    sn >>= 1
                    if fn & 1 or fn == 0:
                        break
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0


class MerkleAccumulator:
    """Root of a growing tree in O(log n) per leaf: a stack of perfect subtree roots."""

    def __init__(self) -> None:
        self._stack: list[tuple[int, bytes]] = []  # (subtree size, root), sizes decreasing
        self.size = 0

    def append(self, data: bytes) -> None:
        node, width = leaf_hash(data), 1
        while self._stack and self._stack[-1][0] == width:
            left_width, left = self._stack.pop()
            node, width = node_hash(left, node), left_width + width
        self._stack.append((width, node))
        self.size += 1

    def root(self) -> bytes:
        if not self._stack:
            return sha256(b"")
        node = self._stack[-1][1]
        for _, left in reversed(self._stack[:-1]):
            node = node_hash(left, node)
        return node
