"""RFC 9162 section 2.1 Merkle tree over the events' hashes (format section 5).

Leaf `seq - 1` holds the 32 raw bytes of that event's `hash`. The functions read
like the RFC so that an auditor can check them line by line against it: MTH for
the root (2.1.1), PATH for inclusion proofs (2.1.3.1), PROOF/SUBPROOF for
consistency proofs (2.1.4.1), and the verification algorithms of 2.1.3.2 and
2.1.4.2 step by step. Proof generation recomputes subtree roots, O(n) per proof;
`MerkleAccumulator` keeps the root of a growing log in O(log n) per append.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ledger.crypto import sha256

EMPTY_ROOT = sha256(b"")
"""MTH({}) = SHA-256 of the empty string."""


class MerkleError(ValueError):
    """A leaf index or tree size outside the tree."""


def leaf_hash(data: bytes) -> bytes:
    """HASH(0x00 || d): the prefix keeps leaves and nodes from ever colliding."""
    return sha256(b"\x00" + data)


def node_hash(left: bytes, right: bytes) -> bytes:
    """HASH(0x01 || left || right)."""
    return sha256(b"\x01" + left + right)


def _split(n: int) -> int:
    """k, the largest power of two smaller than n (n > 1): where MTH splits D[n]."""
    return 1 << ((n - 1).bit_length() - 1)


def _is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


# --- tree head (2.1.1) -----------------------------------------------------


def root_hash(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]): the tree head over the leaf data `leaves`."""
    n = len(leaves)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaf_hash(leaves[0])
    k = _split(n)
    return node_hash(root_hash(leaves[:k]), root_hash(leaves[k:]))


# --- proof generation (2.1.3.1, 2.1.4.1) -----------------------------------


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """PATH(m, D[n]): the audit path of leaf `index` in the tree over `leaves`."""
    if not 0 <= index < len(leaves):
        raise MerkleError(f"leaf index {index} is outside a tree of size {len(leaves)}")
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
    """PROOF(m, D[n]): shows the tree of the first `old_size` leaves is a prefix of this one.

    0 < old_size <= n; equal sizes give the empty proof.
    """
    if not 0 < old_size <= len(leaves):
        raise MerkleError(f"old size {old_size} is not between 1 and the tree size {len(leaves)}")
    return _subproof(old_size, leaves, True)


def _subproof(m: int, leaves: Sequence[bytes], b: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b); b says whether D[0:m] is the old tree itself (known root)."""
    n = len(leaves)
    if m == n:
        return [] if b else [root_hash(leaves)]
    k = _split(n)
    if m <= k:
        return [*_subproof(m, leaves[:k], b), root_hash(leaves[k:])]
    return [*_subproof(m - k, leaves[k:], False), root_hash(leaves[:k])]


# --- proof verification (2.1.3.2, 2.1.4.2) ---------------------------------


def verify_inclusion(
    leaf_index: int, tree_size: int, leaf_data: bytes, proof: Sequence[bytes], root: bytes
) -> bool:
    """True when `proof` shows `leaf_data` is leaf `leaf_index` of the tree with `root`."""
    # 1. The index must lie inside the tree.
    if not 0 <= leaf_index < tree_size:
        return False
    # 2. and 3.
    fn, sn = leaf_index, tree_size - 1
    r = leaf_hash(leaf_data)
    # 4.
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    # 5.
    return sn == 0 and r == root


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """True when `proof` shows the tree (old_size, old_root) is a prefix of (new_size, new_root).

    The RFC covers 0 < old_size < new_size; equal sizes hold with an empty proof and
    equal roots, as `consistency_proof` produces. A size of 0 is never provable here.
    """
    if not 0 < old_size <= new_size:
        return False
    if old_size == new_size:
        return len(proof) == 0 and old_root == new_root
    # 1. An empty path proves nothing.
    path = list(proof)
    if not path:
        return False
    # 2. A power-of-two old tree is a complete subtree of the new one: its root starts the path.
    if _is_power_of_two(old_size):
        path.insert(0, old_root)
    # 3.
    fn, sn = old_size - 1, new_size - 1
    # 4.
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    # 5.
    fr = sr = path[0]
    # 6.
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    # 7.
    return fr == old_root and sr == new_root and sn == 0


# --- incremental tree head -------------------------------------------------


class MerkleAccumulator:
    """The root of a growing log without recomputing it from scratch.

    Keeps the roots of the perfect subtrees the leaves so far decompose into
    (one per set bit of `size`, largest first), like a binary counter: `append`
    merges equal-sized neighbours, `root` folds them right to left as MTH does.
    Both are O(log n).
    """

    def __init__(self, leaves: Iterable[bytes] = ()) -> None:
        self._size = 0
        self._peaks: list[tuple[int, bytes]] = []  # (subtree size, subtree root)
        self.extend(leaves)

    @property
    def size(self) -> int:
        return self._size

    def __len__(self) -> int:
        return self._size

    def append(self, data: bytes) -> None:
        """Add the next leaf's data (an event's 32 raw hash bytes)."""
        width, node = 1, leaf_hash(data)
        while self._peaks and self._peaks[-1][0] == width:
            _, left = self._peaks.pop()
            width, node = 2 * width, node_hash(left, node)
        self._peaks.append((width, node))
        self._size += 1

    def extend(self, leaves: Iterable[bytes]) -> None:
        for data in leaves:
            self.append(data)

    @property
    def peaks(self) -> list[tuple[int, bytes]]:
        """(subtree size, root) of each perfect subtree, largest first: the whole state."""
        return list(self._peaks)

    @classmethod
    def from_peaks(cls, peaks: Iterable[tuple[int, bytes]]) -> MerkleAccumulator:
        """Resume from saved `peaks`; MerkleError unless they are strictly shrinking powers of two."""
        accumulator = cls()
        for width, node in peaks:
            last = accumulator._peaks[-1][0] if accumulator._peaks else None
            if not _is_power_of_two(width) or (last is not None and width >= last):
                raise MerkleError("saved Merkle peaks are not decreasing powers of two")
            if len(node) != 32:
                raise MerkleError("a saved Merkle peak is not 32 bytes")
            accumulator._peaks.append((width, node))
            accumulator._size += width
        return accumulator

    def root(self) -> bytes:
        """MTH over every leaf appended so far."""
        if not self._peaks:
            return EMPTY_ROOT
        node = self._peaks[-1][1]
        for _, left in reversed(self._peaks[:-1]):
            node = node_hash(left, node)
        return node
