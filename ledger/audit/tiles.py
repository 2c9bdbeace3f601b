"""The Merkle tree as C2SP tlog-tiles (LEDGER_FORMAT 1.3, Tiles), pure logic: no storage, no HTTP.

A tile at level `l`, index `n` is the run of up to 256 hashes
MTH(D[(n*256 + i) * 256**l : (n*256 + i + 1) * 256**l]), i = 0..255: level 0
holds leaf hashes, each higher level the roots of full tiles below. Every
perfect, aligned subtree of the RFC 9162 tree is then a few hashes of one tile
folded pairwise, so any root or proof needs O(log n) tile reads and no leaf
list. The store keeps one row per tile (widened in place until full); a
partial tile `.p/W` is the first W hashes of whatever is stored there.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from ledger.audit.merkle import EMPTY_ROOT, MerkleError, node_hash

HASH = 32
WIDTH = 256  # hashes per full tile
TILE_BITS = 8  # log2(WIDTH)
MAX_LEVEL = 63
MAX_INDEX = (1 << 63) - 1  # tile indices fit a signed 64-bit column
MAX_PATH = 64  # characters of a tile path after `tile/`; longer is never a valid tile

TileReader = Callable[[int, int], bytes]
"""(level, index) -> the stored hashes of that tile (any width; b"" when absent)."""


class TileError(MerkleError):
    """A tile path that is not canonical, or a tile the tree needs that is missing or short."""


# --- geometry ---------------------------------------------------------------


def partial_width(level: int, size: int) -> int:
    """Hashes in the right-edge (partial) tile at `level` of a tree of `size` leaves; 0: none."""
    return (size >> (TILE_BITS * level)) % WIDTH


def full_tiles(level: int, size: int) -> int:
    """How many full tiles `level` has in a tree of `size` leaves."""
    return size >> (TILE_BITS * (level + 1))


def available_width(level: int, index: int, size: int) -> int:
    """Width of tile (level, index) in a tree of `size` leaves: 256, the partial width, or 0."""
    full = full_tiles(level, size)
    if index < full:
        return WIDTH
    return partial_width(level, size) if index == full else 0


def tile_range(level: int, index: int, width: int = WIDTH) -> tuple[int, int]:
    """Leaf indices [start, end) that the first `width` hashes of tile (level, index) span."""
    span = 1 << (TILE_BITS * level)
    start = index * WIDTH * span
    return start, start + width * span


# --- paths ------------------------------------------------------------------


@dataclass(frozen=True)
class TilePath:
    """A parsed `tile/<L>/<N>[.p/<W>]` (level None for `tile/entries/...`); width 256 = full."""

    level: int | None
    index: int
    width: int

    @property
    def partial(self) -> bool:
        return self.width < WIDTH


def encode_index(index: int) -> str:
    """N as 3-digit groups, all but the last prefixed `x`: 1234067 -> `x001/x234/067`."""
    if not 0 <= index <= MAX_INDEX:
        raise TileError(f"tile index {index} is out of range")
    groups = []
    while True:
        groups.append(f"{index % 1000:03d}")
        index //= 1000
        if index == 0:
            break
    return "/".join([*("x" + g for g in reversed(groups[1:])), groups[0]])


def tile_path(level: int | None, index: int, width: int = WIDTH) -> str:
    """The canonical path after `tile/`: `<L>/<N>[.p/<W>]` or `entries/<N>[.p/<W>]`."""
    head = "entries" if level is None else str(level)
    tail = "" if width == WIDTH else f".p/{width}"
    return f"{head}/{encode_index(index)}{tail}"


_PATH = re.compile(r"(0|[1-9][0-9]?|entries)/((?:x[0-9]{3}/)*[0-9]{3})(?:\.p/([1-9][0-9]{0,2}))?")


def parse_tile_path(path: str) -> TilePath:
    """Parse the part after `tile/` strictly: only the canonical encoding is accepted."""
    match = _PATH.fullmatch(path) if len(path) <= MAX_PATH else None
    if match is None:
        raise TileError("not a tile path: tile/<L>/<N>[.p/<W>] or tile/entries/<N>[.p/<W>]")
    head, digits, w = match.groups()
    level = None if head == "entries" else int(head)
    if level is not None and level > MAX_LEVEL:
        raise TileError(f"tile level {level} is above {MAX_LEVEL}")
    width = int(w) if w else WIDTH
    if w and width >= WIDTH:
        raise TileError("a partial tile's width is 1 to 255")
    index = int(digits.replace("x", "").replace("/", ""))
    if index > MAX_INDEX or tile_path(level, index, width) != path:
        raise TileError("tile index out of range or not canonically encoded")  # `x000/001`
    return TilePath(level, index, width)


# --- hashes and proofs from tiles -------------------------------------------


def fold(hashes: bytes) -> bytes:
    """MTH of a perfect subtree given its 2**k child hashes, concatenated."""
    nodes = [hashes[i : i + HASH] for i in range(0, len(hashes), HASH)]
    while len(nodes) > 1:
        nodes = [node_hash(nodes[i], nodes[i + 1]) for i in range(0, len(nodes), 2)]
    return nodes[0]


class TreeView:
    """RFC 9162 roots and proofs for a tree of `size` leaves, read from tiles.

    Each tile is read at most once per view (kept in a small dict); a view
    answers one proof or a handful, then is dropped, so memory stays constant.
    """

    def __init__(self, size: int, read: TileReader):
        self.size = size
        self._read = read
        self._tiles: dict[tuple[int, int], bytes] = {}

    def _hashes(self, level: int, index: int, end: int) -> bytes:
        """The stored hashes of tile (level, index), checked to hold at least `end` of them."""
        key = (level, index)
        if key not in self._tiles:
            self._tiles[key] = self._read(level, index)
        data = self._tiles[key]
        if len(data) % HASH or len(data) // HASH < end or len(data) > WIDTH * HASH:
            raise TileError(f"tile {level}/{index} is missing or short for a tree of {self.size}")
        return data

    def perfect(self, height: int, index: int) -> bytes:
        """MTH(D[index * 2**height : (index + 1) * 2**height]) for a subtree inside the tree."""
        level, rest = divmod(height, TILE_BITS)
        first = index << rest  # position of its first hash among level-`level` hashes
        tile, offset = divmod(first, WIDTH)
        count = 1 << rest
        data = self._hashes(level, tile, offset + count)
        return fold(data[offset * HASH : (offset + count) * HASH])

    def hash(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]), splitting as RFC 9162 2.1.1 does until subtrees are perfect."""
        n = end - start
        if n <= 0 or end > self.size:
            raise MerkleError(f"no subtree [{start}, {end}) in a tree of {self.size}")
        if n & (n - 1) == 0 and start % n == 0:
            return self.perfect(n.bit_length() - 1, start // n)
        k = _split(n)
        return node_hash(self.hash(start, start + k), self.hash(start + k, end))

    def root(self) -> bytes:
        """MTH(D[size])."""
        return self.hash(0, self.size) if self.size else EMPTY_ROOT

    def inclusion(self, index: int) -> list[bytes]:
        """PATH(index, D[size]) (RFC 9162 2.1.3.1)."""
        if not 0 <= index < self.size:
            raise MerkleError(f"leaf index {index} is outside a tree of size {self.size}")
        return list(self._path(index, 0, self.size))

    def _path(self, m: int, start: int, end: int) -> Iterator[bytes]:
        if end - start == 1:
            return
        k = _split(end - start)
        if m < k:
            yield from self._path(m, start, start + k)
            yield self.hash(start + k, end)
        else:
            yield from self._path(m - k, start + k, end)
            yield self.hash(start, start + k)

    def consistency(self, old: int) -> list[bytes]:
        """PROOF(old, D[size]) (RFC 9162 2.1.4.1); equal sizes give the empty proof."""
        if not 0 < old <= self.size:
            raise MerkleError(f"old size {old} is not between 1 and the tree size {self.size}")
        return list(self._subproof(old, 0, self.size, True))

    def _subproof(self, m: int, start: int, end: int, b: bool) -> Iterator[bytes]:
        n = end - start
        if m == n:
            if not b:
                yield self.hash(start, end)
            return
        k = _split(n)
        if m <= k:
            yield from self._subproof(m, start, start + k, b)
            yield self.hash(start + k, end)
        else:
            yield from self._subproof(m - k, start + k, end, False)
            yield self.hash(start, start + k)


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


# --- integration ------------------------------------------------------------


class TileBuilder:
    """Appends leaf hashes to a tree's right edge, emitting each tile once it is full.

    Holds only the partial tile of each level (at most 255 hashes per level),
    so integrating any number of leaves takes constant memory.
    """

    def __init__(self, size: int, edge: dict[int, bytes]):
        """`edge[level]`: the partial tile at each level for `size` (checked against it)."""
        self.size = size
        self._edge: dict[int, bytearray] = {}
        level = 0
        while size >> (TILE_BITS * level):
            want = partial_width(level, size) * HASH
            have = edge.get(level, b"")
            if len(have) != want:
                raise TileError(f"edge tile at level {level} does not match a tree of {size}")
            self._edge[level] = bytearray(have)
            level += 1

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Add one leaf hash; return the tiles (level, index, hashes) this completes."""
        if len(leaf) != HASH:
            raise TileError("a leaf hash is 32 bytes")
        done: list[tuple[int, int, bytes]] = []
        node, level = leaf, 0
        self.size += 1
        while True:
            edge = self._edge.setdefault(level, bytearray())
            edge += node
            if len(edge) < WIDTH * HASH:
                return done
            tile = bytes(edge)
            done.append((level, full_tiles(level, self.size) - 1, tile))
            edge.clear()
            node, level = fold(tile), level + 1

    def extend(self, leaves: Iterable[bytes]) -> list[tuple[int, int, bytes]]:
        return [tile for leaf in leaves for tile in self.append(leaf)]

    def partials(self) -> list[tuple[int, int, bytes]]:
        """The non-empty right-edge tiles (level, index, hashes) of the current size."""
        return [
            (level, full_tiles(level, self.size), bytes(edge))
            for level, edge in sorted(self._edge.items())
            if edge
        ]
