"""C2SP tlog-tiles over HTTP on a real `ledger serve`: tiles, entry bundles, 404s, a client.

The client below is written from the tlog-tiles text: it reads the signed
checkpoint, fetches only the tiles a proof needs (full or `.p/W` as the
checkpoint's size requires), rebuilds the RFC 9162 audit path and verifies
it against the checkpoint's root, with the leaf taken from an entry bundle.
"""

from __future__ import annotations

import base64
import hashlib
import json
import urllib.error
import urllib.request
from functools import cache
from typing import Any

from ledger.api import tlog
from ledger.audit.checkpoint import verify_checkpoint
from ledger.audit.merkle import verify_inclusion
from ledger.config import Config
from ledger.store.application import Ledger
from ledger.store.tiles import TileStore
from tests.audit.rfc9162 import Reference
from tests.audit.test_tiles import append
from tests.served import serve


def get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def index_path(n: int) -> str:
    """tlog-tiles: zero-padded 3-digit elements, all but the last prefixed with `x`."""
    parts = [f"{n % 1000:03d}"]
    while n >= 1000:
        n //= 1000
        parts.insert(0, f"x{n % 1000:03d}")
    return "/".join(parts)


class TilesClient:
    """Just enough of a tlog-tiles client to prove inclusion for one checkpoint size."""

    def __init__(self, base: str, size: int):
        self.base, self.size = base, size
        self.fetched: list[str] = []
        self.tile = cache(self._tile)

    def _tile(self, level: int, n: int) -> bytes:
        full = self.size >> (8 * (level + 1))
        width = 256 if n < full else (self.size >> (8 * level)) % 256
        path = f"tile/{level}/{index_path(n)}" + ("" if width == 256 else f".p/{width}")
        status, headers, body = get(f"{self.base}/tlog/{path}")
        assert status == 200 and headers["Content-Type"] == "application/octet-stream", path
        assert len(body) == 32 * width, path
        self.fetched.append(path)
        return body

    def subtree(self, lo: int, hi: int) -> bytes:
        """MTH(D[lo:hi]): perfect aligned subtrees from one tile, others split as RFC 9162 does."""
        n = hi - lo
        if n & (n - 1) == 0 and lo % n == 0:
            height = n.bit_length() - 1
            level, rest = divmod(height, 8)
            first = lo >> (8 * level)  # index of the first level-`level` hash
            tile = self.tile(level, first // 256)
            nodes = [
                tile[32 * i : 32 * i + 32] for i in range(first % 256, first % 256 + (1 << rest))
            ]
            while len(nodes) > 1:
                nodes = [sha(b"\x01" + a + b) for a, b in zip(nodes[::2], nodes[1::2], strict=True)]
            return nodes[0]
        k = 1 << ((n - 1).bit_length() - 1)
        return sha(b"\x01" + self.subtree(lo, lo + k) + self.subtree(lo + k, hi))

    def path(self, m: int, lo: int, hi: int) -> list[bytes]:
        if hi - lo == 1:
            return []
        k = 1 << ((hi - lo - 1).bit_length() - 1)
        if m < lo + k:
            return [*self.path(m, lo, lo + k), self.subtree(lo + k, hi)]
        return [*self.path(m, lo + k, hi), self.subtree(lo, lo + k)]

    def entry(self, m: int) -> bytes:
        full = self.size // 256
        width = 256 if m // 256 < full else self.size % 256
        suffix = "" if width == 256 else f".p/{width}"
        status, _, body = get(f"{self.base}/tlog/tile/entries/{index_path(m // 256)}{suffix}")
        assert status == 200
        entries, at = [], 0
        while at < len(body):
            length = int.from_bytes(body[at : at + 2], "big")
            entries.append(body[at + 2 : at + 2 + length])
            at += 2 + length
        assert len(entries) == width
        return entries[m % 256]


def test_tiles_and_bundles_over_http(ledger: Ledger, config: Config, database_url: str) -> None:
    append(ledger, 300)
    with serve(database_url, config.keys_dir) as (base, _):
        hashes = [bytes.fromhex(e.hash) for e in ledger.recorder.iter_envelopes()]
        size = len(hashes)  # with what the server logged on starting
        ref = Reference(hashes)
        edge = size - 256
        # The checkpoint integrates the log; a tlog-tiles client follows it.
        status, headers, note = get(f"{base}/api/v1/log/checkpoint")
        anchor = ledger.trust_anchor()
        assert status == 200 and anchor is not None
        cp = verify_checkpoint(note.decode(), anchor.origin, [anchor.public_key])
        assert (cp.size, cp.root) == (size, ref.root(size))
        client = TilesClient(base, cp.size)
        for m in (0, 2, 255, 256, size - 1):
            leaf = client.entry(m)
            assert leaf == hashes[m]
            proof = client.path(m, 0, cp.size)
            assert verify_inclusion(m, cp.size, leaf, proof, cp.root)
            _, _, served = get(f"{base}/api/v1/log/proof/inclusion?seq={m + 1}&size={cp.size}")
            assert [base64.b64decode(h) for h in json.loads(served)["hashes"]] == proof
        assert set(client.fetched) == {"tile/0/000", f"tile/0/001.p/{edge}", "tile/1/000.p/1"}

        # Full tile: 256 leaf hashes, cacheable for ever.
        status, headers, body = get(f"{base}/tlog/tile/0/000")
        assert status == 200 and body == b"".join(sha(b"\x00" + h) for h in hashes[:256])
        assert headers["Cache-Control"] == "public, max-age=31536000, immutable"
        # Partial tiles: any width up to what the tree has, a prefix of the same data.
        status, headers, partial = get(f"{base}/tlog/tile/0/001.p/{edge}")
        assert status == 200 and partial == b"".join(sha(b"\x00" + h) for h in hashes[256:])
        assert headers["Cache-Control"] == "public, max-age=300"
        assert get(f"{base}/tlog/tile/0/001.p/3")[2] == partial[:96]
        assert get(f"{base}/tlog/tile/1/000.p/1")[2] == ref.mth(0, 256)
        # Entry bundles: 0x00 0x20 then the event hash, per event in seq order.
        status, headers, bundle = get(f"{base}/tlog/tile/entries/000")
        assert status == 200 and bundle == b"".join(b"\x00\x20" + h for h in hashes[:256])
        assert headers["Cache-Control"] == "public, max-age=31536000, immutable"
        status, _, bundle = get(f"{base}/tlog/tile/entries/001.p/{edge}")
        assert status == 200 and bundle == b"".join(b"\x00\x20" + h for h in hashes[256:])

        # Beyond the tree or malformed: 404 problem+json, never a 500.
        for path in (
            "0/001", f"0/001.p/{edge + 1}", "0/002.p/1", "1/000", "1/000.p/2", "2/000.p/1",
            "entries/001", f"entries/001.p/{edge + 1}", "entries/x001/000",
            "0/x000/001", "64/000", "01/000", "0/000.p/0", "0/000.p/256", "0/000.p/007", "abc",
            "0/-01", "0/x999/x999/x999/x999/x999/x999/x999/999", "0/" + "x100/" * 60 + "000",
            "entries/000/", "%00", "0/000.p/1%0a",
        ):  # fmt: skip
            status, headers, body = get(f"{base}/tlog/tile/{path}")
            assert status == 404, path
            assert headers["Content-Type"] == "application/problem+json", path
            assert json.loads(body)["status"] == 404

        # The log grows: tiles follow without any other request integrating first.
        append(ledger, 5)
        status, _, body = get(f"{base}/tlog/tile/0/001.p/{edge + 5}")
        assert status == 200 and len(body) == 32 * (edge + 5)


def test_a_tile_miss_integrates_one_bounded_batch(app: Any, client: Any, monkeypatch: Any) -> None:
    """An old, never-integrated log: a request does one batch, a burst of misses no more."""
    monkeypatch.setattr(tlog, "ON_MISS_BATCH", 500)
    ledger = app.extensions["ledger"].ledger
    tiles = TileStore(ledger.db)
    start = tiles.size()
    append(ledger, 3000)
    head = int(ledger.db.scalar("SELECT MAX(seq) FROM ledger_events"))
    assert head >= start + 3000
    # Beyond the log: no write, and the cooldown is left for a miss that needs one.
    assert client.get(f"/tlog/tile/0/{index_path(head // 256 + 1)}").status_code == 404
    assert tiles.size() == start
    last = f"/tlog/tile/entries/{index_path(head // 256 - 1)}"
    assert client.get(last).status_code == 404  # in the log, not yet in the tree
    assert tiles.size() == start + 500  # one batch, not the backlog
    for _ in range(5):  # a burst within the cooldown integrates nothing more
        assert client.get(last).status_code == 404
    assert tiles.size() == start + 500
    monkeypatch.setattr(app.extensions[tlog.COOLDOWN], "_next", 0.0)  # the period is over
    client.get(last)
    assert tiles.size() == start + 1000
    # The checkpoint loop integrates the rest, in transactions of at most a batch.
    assert TileStore(ledger.db, page=100, batch=500).catch_up() == head
    assert client.get(last).status_code == 200


def test_the_background_integration_is_bounded_per_transaction(
    ledger: Ledger, monkeypatch: Any
) -> None:
    """catch_up() with no cap runs the whole backlog, each transaction at most a batch."""
    append(ledger, 1200)
    head = int(ledger.db.scalar("SELECT MAX(seq) FROM ledger_events"))
    tiles = TileStore(ledger.db, page=100, batch=500)
    done: list[tuple[int, int]] = []
    batch = tiles._integrate_batch
    monkeypatch.setattr(tiles, "_integrate_batch", lambda: done.append(batch()) or done[-1])
    assert tiles.catch_up() == head
    assert [added for _, added in done] == [500, 500, head - 1000] and done[-1][0] == head
