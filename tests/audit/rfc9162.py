"""An independent RFC 9162 (section 2.1) reference, written from the RFC text with hashlib.

MTH, PATH and PROOF/SUBPROOF exactly as the RFC defines them, over ranges of one
fixed leaf list, memoized so that checking thousands of proofs stays fast. It
shares no code with ledger/audit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import cache


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _k(n: int) -> int:
    """The largest power of two smaller than n."""
    k = 1
    while 2 * k < n:
        k *= 2
    return k


class Reference:
    """MTH(D[lo:hi]), PATH(m, D[n]) and PROOF(m, D[n]) over the leaf data `leaves`."""

    def __init__(self, leaves: Sequence[bytes]):
        self.leaves = list(leaves)
        self.mth = cache(self._mth)

    def _mth(self, lo: int, hi: int) -> bytes:
        if hi == lo:
            return sha(b"")
        if hi - lo == 1:
            return sha(b"\x00" + self.leaves[lo])
        k = _k(hi - lo)
        return sha(b"\x01" + self.mth(lo, lo + k) + self.mth(lo + k, hi))

    def root(self, n: int) -> bytes:
        return self.mth(0, n)

    def path(self, m: int, n: int, lo: int = 0) -> list[bytes]:
        """PATH(m, D[lo:lo+n])."""
        if n == 1:
            return []
        k = _k(n)
        if m < k:
            return [*self.path(m, k, lo), self.mth(lo + k, lo + n)]
        return [*self.path(m - k, n - k, lo + k), self.mth(lo, lo + k)]

    def proof(self, m: int, n: int) -> list[bytes]:
        """PROOF(m, D[n]) = SUBPROOF(m, D[n], true)."""
        return self._subproof(m, 0, n, True)

    def _subproof(self, m: int, lo: int, n: int, b: bool) -> list[bytes]:
        if m == n:
            return [] if b else [self.mth(lo, lo + n)]
        k = _k(n)
        if m <= k:
            return [*self._subproof(m, lo, k, b), self.mth(lo + k, lo + n)]
        return [*self._subproof(m - k, lo + k, n - k, False), self.mth(lo, lo + k)]
