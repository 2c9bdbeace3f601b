"""The Merkle tree persisted as C2SP tlog-tiles: geometry, paths, proofs, integration, tampering.

Proofs and roots computed from tiles in a real database (SQLite and PostgreSQL)
are checked against an independent RFC 9162 reference (tests/audit/rfc9162.py).
Synthetic leaves go straight into `ledger_events` (only `seq` and `hash` matter
to the tree), so large trees are quick to build.
"""

from __future__ import annotations

import hashlib
import random
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from ledger.audit.checkpoint import parse_checkpoint
from ledger.audit.log_tree import LogTree
from ledger.audit.merkle import MerkleError, verify_consistency, verify_inclusion
from ledger.audit.tiles import (
    TileBuilder,
    TileError,
    TilePath,
    TreeView,
    encode_index,
    parse_tile_path,
    tile_path,
)
from ledger.domain import clock
from ledger.store.application import Ledger
from ledger.store.db import Database, connect
from ledger.store.mapper import LedgerStoredEvent
from ledger.store.tiles import TileStore
from tests.audit.rfc9162 import Reference, sha


def event_hash(seq: int) -> bytes:
    return hashlib.sha256(seq.to_bytes(8, "big")).digest()


LEAVES = [event_hash(seq) for seq in range(1, 70_001)]
REF = Reference(LEAVES)


def add_events(db: Database, start: int, count: int, hashes: list[bytes] | None = None) -> None:
    """Synthetic rows seq start+1 .. start+count with the hashes the tree will integrate."""
    rows = [
        (seq, str(seq), str(seq), 1, "test.Synthetic", "", "{}", "", h.hex(), "", "")
        for seq, h in zip(
            range(start + 1, start + count + 1),
            hashes or LEAVES[start : start + count],
            strict=True,
        )
    ]
    with db.write() as cur:
        cur.executemany(
            "INSERT INTO ledger_events (seq, id, stream, version, type, time, data, prev, hash,"
            " kid, sig) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = connect(database_url)
    database.create_schema()
    yield database
    database.close()


def rows(db: Database) -> dict[tuple[int, int], bytes]:
    with db.read() as cur:
        cur.execute("SELECT level, idx, hashes FROM tlog_tiles")
        return {(lv, idx): bytes(data) for lv, idx, data in cur.fetchall()}


# --- paths and geometry (pure) -----------------------------------------------


def test_index_encoding_from_the_spec() -> None:
    assert encode_index(1234067) == "x001/x234/067"
    assert encode_index(0) == "000"
    assert encode_index(1000) == "x001/000"
    assert tile_path(2, 1234067, 5) == "2/x001/x234/067.p/5"
    assert tile_path(None, 3) == "entries/003"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("0/000", TilePath(0, 0, 256)),
        ("63/x001/x234/067.p/5", TilePath(63, 1234067, 5)),
        ("entries/x001/000.p/255", TilePath(None, 1000, 255)),
        ("1/999", TilePath(1, 999, 256)),
    ],
)
def test_canonical_paths_parse(path: str, expected: TilePath) -> None:
    assert parse_tile_path(path) == expected


@pytest.mark.parametrize(
    "path",
    [
        "64/000", "01/000", "-1/000", "0/00", "0/0000", "0/x000/001", "0/x001", "0/001/002",
        "0/000.p/0", "0/000.p/256", "0/000.p/05", "0/000.p/", "0/000.p/1/", "0/000/", "/0/000",
        "0/x009/x223/x372/x036/x854/x775/808", "entries/000.p/256", "entry/000", "0/000?x",
        "0/" + "x123/" * 40 + "000", "0/٠٠٠", "",
    ],
)  # fmt: skip
def test_malformed_paths_are_refused(path: str) -> None:
    with pytest.raises(TileError):
        parse_tile_path(path)


def test_spec_example_geometry_at_70000(db: Database) -> None:
    """tlog-tiles: 273 full level-0 tiles, partial 112; one full level-1, partial 17; level 2: 1."""
    add_events(db, 0, 70_000)
    store = TileStore(db)
    assert store.integrate() == 70_000 == store.size()
    stored = rows(db)
    widths = {key: len(data) // 32 for key, data in stored.items()}
    assert {k: w for k, w in widths.items() if k[0] == 0 and w == 256}.keys() == {
        (0, n) for n in range(273)
    }
    assert widths[(0, 273)] == 112
    assert widths[(1, 0)] == 256 and widths[(1, 1)] == 17 and widths[(2, 0)] == 1
    assert len(widths) == 273 + 1 + 2 + 1
    # Contents per the spec's formula: MTH(D[(n*256 + i) * 256**l : (n*256 + i + 1) * 256**l]).
    checked = random.Random(1).sample(sorted(stored.items()), 40)
    for (level, n), data in [*checked, ((1, 1), stored[1, 1]), ((2, 0), stored[2, 0])]:
        span = 256**level
        for i in range(len(data) // 32):
            lo = (n * 256 + i) * span
            assert data[i * 32 : (i + 1) * 32] == REF.mth(lo, lo + span)
    assert store.tile(0, 273, 112) == stored[(0, 273)]
    assert store.tile(0, 273, 5) == stored[(0, 273)][:160]  # a prefix is the same data
    assert store.tile(0, 273, 113) is None and store.tile(0, 274, 1) is None
    assert store.tile(1, 1, 17) and store.tile(1, 1, 18) is None and store.tile(1, 1) is None
    assert store.tile(2, 0, 1) and store.tile(2, 0, 2) is None and store.tile(3, 0, 1) is None
    bundle = store.entry_bundle(273, 112)
    assert bundle is not None and len(bundle) == 112 * 34
    assert bundle[:34] == b"\x00\x20" + LEAVES[273 * 256]
    assert store.entry_bundle(273) is None and store.entry_bundle(274, 1) is None
    with store.view(70_000) as view:
        assert view.root() == REF.root(70_000)
        for m in (0, 65_535, 65_536, 69_999, *random.Random(2).sample(range(70_000), 5)):
            assert view.inclusion(m) == REF.path(m, 70_000)
        for old in (1, 256, 65_536, 65_537, 69_999, 70_000):
            assert view.consistency(old) == REF.proof(old, 70_000)


def test_a_tree_of_256_is_one_full_tile_and_a_partial_level_1_tile(db: Database) -> None:
    add_events(db, 0, 256)
    assert TileStore(db).integrate() == 256
    stored = rows(db)
    assert sorted(stored) == [(0, 0), (1, 0)]
    assert len(stored[(0, 0)]) == 8192 and stored[(1, 0)] == REF.mth(0, 256)


# --- roots and proofs from tiles vs the reference ----------------------------


def test_every_size_up_to_600_matches_the_reference(db: Database) -> None:
    add_events(db, 0, 600)
    store = TileStore(db)
    store.integrate()
    rng = random.Random(600)
    for n in range(1, 601):
        with store.view(n) as view:
            root = view.root()
            assert root == REF.root(n), n
            for m in {0, n - 1, rng.randrange(n), rng.randrange(n)}:
                proof = view.inclusion(m)
                assert proof == REF.path(m, n), (m, n)
                assert verify_inclusion(m, n, LEAVES[m], proof, root)
            for old in {1, n, rng.randint(1, n), rng.randint(1, n)}:
                proof = view.consistency(old)
                assert proof == REF.proof(old, n), (old, n)
                assert verify_consistency(old, n, REF.root(old), root, proof)


def test_random_pairs_in_a_larger_tree(db: Database) -> None:
    add_events(db, 0, 5000)
    store = TileStore(db)
    store.integrate()
    rng = random.Random(5000)
    for _ in range(150):
        old, new = sorted((rng.randint(1, 5000), rng.randint(1, 5000)))
        with store.view(new) as view:
            assert view.consistency(old) == REF.proof(old, new)
            m = rng.randrange(new)
            assert view.inclusion(m) == REF.path(m, new)


def test_proofs_read_each_tile_at_most_once_and_few_of_them() -> None:
    tiles: dict[tuple[int, int], bytes] = {}
    builder = TileBuilder(0, {})
    for leaf in LEAVES:
        tiles.update({(lv, i): d for lv, i, d in builder.append(sha(b"\x00" + leaf))})
    tiles.update({(lv, i): d for lv, i, d in builder.partials()})
    reads: list[tuple[int, int]] = []

    def read(level: int, index: int) -> bytes:
        reads.append((level, index))
        return tiles.get((level, index), b"")

    for m, old in ((0, 1), (12_345, 40_000), (69_999, 69_999)):
        reads.clear()
        view = TreeView(70_000, read)
        assert view.inclusion(m) == REF.path(m, 70_000)
        assert view.consistency(old) == REF.proof(old, 70_000)
        assert len(reads) == len(set(reads)) <= 12


def test_out_of_range_proofs_and_missing_tiles_are_errors(db: Database) -> None:
    add_events(db, 0, 10)
    store = TileStore(db)
    store.integrate()
    with store.view(10) as view:
        for bad in (lambda: view.inclusion(10), lambda: view.consistency(0)):
            with pytest.raises(MerkleError):
                bad()
    with store.view(11) as view, pytest.raises(TileError):
        view.root()  # beyond what was integrated: never a made-up hash


# --- integration ---------------------------------------------------------------


def test_integration_in_many_steps_equals_one_step(db: Database) -> None:
    steps = TileStore(db, page=7, batch=100)  # several pages and transactions per step
    rng = random.Random(3)
    done = 0
    while done < 3000:
        count = min(rng.choice((1, 2, 255, 256, 257, 700)), 3000 - done)
        add_events(db, done, count)
        done += count
        assert steps.integrate() == done
        assert steps.integrate() == done  # nothing new: unchanged
    stepwise = rows(db)
    with db.write() as cur:
        cur.execute("DELETE FROM tlog_tiles")
    assert TileStore(db).integrate() == 3000
    assert rows(db) == stepwise == built(3000)


def built(size: int) -> dict[tuple[int, int], bytes]:
    """The tiles of the first `size` synthetic leaves, built in memory in one go."""
    builder = TileBuilder(0, {})
    tiles = {(lv, i): d for lv, i, d in builder.extend(sha(b"\x00" + h) for h in LEAVES[:size])}
    return tiles | {(lv, i): d for lv, i, d in builder.partials()}


def test_concurrent_integrations_while_the_log_grows(database_url: str, db: Database) -> None:
    """Integrators on their own connections queue on the lock; the result is one tree."""
    errors: list[BaseException] = []
    stop = threading.Event()

    def integrate_until_stopped() -> None:
        mine = connect(database_url)
        try:
            while not stop.is_set():
                TileStore(mine, page=50).integrate()
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            mine.close()

    workers = [threading.Thread(target=integrate_until_stopped) for _ in range(3)]
    for worker in workers:
        worker.start()
    done = 0
    for count in (100, 156, 1, 300, 443):
        add_events(db, done, count)
        done += count
    stop.set()
    for worker in workers:
        worker.join(timeout=60)
    assert not errors, errors
    assert TileStore(db).integrate() == done == 1000
    assert rows(db) == built(done)


INTEGRATOR = """
import sys
import time
from ledger.store.db import connect
from ledger.store.tiles import TileStore
store = TileStore(connect(sys.argv[1]), page=50, batch=200)
print("ready", flush=True)
deadline = time.monotonic() + 30
while store.integrate() < int(sys.argv[2]) and time.monotonic() < deadline:
    pass
"""


def test_concurrent_integrating_processes(database_url: str, db: Database) -> None:
    """Two processes integrate until the log reaches 1256 events while a third appends."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", INTEGRATOR, database_url, "1256"],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for proc in procs:
        assert proc.stdout and proc.stdout.readline().strip() == "ready"
    done = 0
    for count in (300, 1, 255, 700):
        add_events(db, done, count)
        done += count
    for proc in procs:
        assert proc.wait(timeout=60) == 0
    assert TileStore(db).integrate() == done
    assert rows(db) == built(done)


def test_a_failed_integration_leaves_the_previous_tree(db: Database) -> None:
    add_events(db, 0, 300)
    store = TileStore(db, page=64)
    assert store.integrate() == 300
    before = rows(db)
    add_events(db, 300, 400)
    with db.write() as cur:  # a corrupt hash deep in the new events: the integration aborts
        cur.execute("UPDATE ledger_events SET hash = 'zz' WHERE seq = 650")
    with pytest.raises(TileError, match="event 650"):
        store.integrate()
    assert rows(db) == before and store.size() == 300
    batched = TileStore(db, page=64, batch=100)  # each transaction commits a whole tree
    with pytest.raises(TileError, match="event 650"):
        batched.integrate()
    assert batched.size() == 600 and rows(db) == built(600)


def test_a_gap_in_the_log_stops_the_integration(db: Database) -> None:
    add_events(db, 0, 10)
    add_events(db, 11, 5)
    with pytest.raises(TileError, match="gap at seq 11"):
        TileStore(db).integrate()
    assert TileStore(db).size() == 0


def test_a_rewritten_or_truncated_tail_is_refused(db: Database) -> None:
    add_events(db, 0, 300)
    store = TileStore(db)
    store.integrate()
    with db.write() as cur:
        cur.execute("UPDATE ledger_events SET hash = ? WHERE seq = 300", (event_hash(0).hex(),))
    add_events(db, 300, 1)
    with pytest.raises(TileError, match="rewritten"):
        store.integrate()
    with db.write() as cur:
        cur.execute("DELETE FROM ledger_events WHERE seq > 200")
    with pytest.raises(TileError, match="200 events"):
        store.catch_up()


# --- the live log: LogTree on tiles, tampering ---------------------------------


def append(ledger: Ledger, count: int) -> None:
    """`count` real signed, chained events in one transaction."""
    ledger.recorder.insert_events(
        [
            LedgerStoredEvent(
                originator_id=uuid.uuid4(),
                originator_version=1,
                topic="test.Note",
                state=b'{"n": %d}' % i,
                time=clock.format_time(clock.now()),
                event_id=str(uuid.uuid4()),
            )
            for i in range(count)
        ]
    )


def test_log_tree_serves_the_same_proofs_from_tiles(ledger: Ledger) -> None:
    append(ledger, 300)
    tree = LogTree(ledger)
    size = tree.refresh()
    hashes = [bytes.fromhex(e.hash) for e in ledger.recorder.iter_envelopes()]
    assert size == len(hashes) >= 300
    ref = Reference(hashes)
    cp, _ = parse_checkpoint(tree.checkpoint())
    assert (cp.size, cp.root) == (size, ref.root(size))
    for seq in (1, 200, size):
        assert tree.inclusion(seq, size) == ref.path(seq - 1, size)
    assert tree.consistency(7, size) == ref.proof(7, size)
    assert tree.root(100) == ref.root(100)
    append(ledger, 3)
    assert tree.refresh() == size + 3  # integration follows the log


def test_an_edited_tile_breaks_proofs_against_the_signed_root(ledger: Ledger) -> None:
    """Who catches a tile edited in the database: every client checking a proof.

    The checkpoint signed before the edit (kept by witnesses and monitors) no
    longer matches the proofs; a root recomputed from the tiles differs from
    the one recomputed from the events (`ledger audit verify`).
    """
    append(ledger, 300)
    tree = LogTree(ledger)
    size = tree.refresh()
    cp, _ = parse_checkpoint(tree.checkpoint())
    leaf = bytes.fromhex(ledger.recorder.envelope(3).hash)  # type: ignore[union-attr]
    proof = tree.inclusion(3, size)
    assert verify_inclusion(2, size, leaf, proof, cp.root)
    flip(ledger.db, 0, 0)  # someone with database access rewrites tile 0/000
    assert not verify_inclusion(2, size, leaf, tree.inclusion(3, size), cp.root)
    assert tree.root(size) == cp.root  # the root reads tile 1/000, which holds 0/000's hash
    flip(ledger.db, 1, 0)
    assert tree.root(size) != cp.root
    old_root = Reference([bytes.fromhex(e.hash) for e in ledger.recorder.iter_envelopes()]).root(9)
    assert not verify_consistency(9, size, old_root, cp.root, tree.consistency(9, size))


def flip(db: Database, level: int, index: int) -> None:
    """Flip one bit of a stored tile's last hash, as an intruder in the database could."""
    with db.write() as cur:
        cur.execute("SELECT hashes FROM tlog_tiles WHERE level = ? AND idx = ?", (level, index))
        data = bytearray(cur.fetchone()[0])
        data[-1] ^= 1
        cur.execute(
            "UPDATE tlog_tiles SET hashes = ? WHERE level = ? AND idx = ?",
            (bytes(data), level, index),
        )


def test_inconsistent_tiles_are_a_503_problem_not_a_500(app: Any, client: Any) -> None:
    db = app.extensions["ledger"].ledger.db
    TileStore(db).catch_up()
    with db.write() as cur:  # a stored level-0 tile that is not a whole number of hashes
        cur.execute("UPDATE tlog_tiles SET hashes = ? WHERE level = 0 AND idx = 0", (b"x" * 33,))
    for path in ("/tlog/tile/0/000.p/1", "/api/v1/log/proof/inclusion?seq=1&size=1"):
        response = client.get(path)
        assert response.status_code == 503, path
        assert response.mimetype == "application/problem+json"
        assert response.get_json()["type"] == "/problems/tiles-inconsistent"


def test_integration_refuses_an_edited_right_edge_leaf(db: Database) -> None:
    """Any leaf of the right-edge tile, not only the last: widening it would seal the edit."""
    add_events(db, 0, 300)
    store = TileStore(db)
    store.integrate()
    with db.write() as cur:
        cur.execute("SELECT hashes FROM tlog_tiles WHERE level = 0 AND idx = 1")
        data = bytearray(cur.fetchone()[0])
        data[0] ^= 1  # leaf 257, the first of tile 0/001
        cur.execute("UPDATE tlog_tiles SET hashes = ? WHERE level = 0 AND idx = 1", (bytes(data),))
    add_events(db, 300, 1)
    with pytest.raises(TileError, match=r"tile 0/1 does not hold the leaves of events 257\.\.300"):
        store.integrate()
    assert store.size() == 300


def test_advisory_lock_ids_are_distinct() -> None:
    """Two subsystems sharing a lock id would serialize (or deadlock) each other for nothing."""
    from ledger import projections
    from ledger.projections.runner import _lock_id
    from ledger.store import checkpoints, db, subjects, tiles

    fixed = [
        db.APPEND_LOCK_ID,
        checkpoints.CHECKPOINT_LOCK_ID,
        tiles.TILES_LOCK_ID,
        subjects.LINK_LOCK,
    ]
    names = [
        cls.name
        for cls in vars(projections).values()
        if isinstance(cls, type)
        and cls.__name__.endswith("Projection")
        and cls.__name__ != "Projection"
    ]
    assert len(names) == 4
    ids = fixed + [_lock_id(name) for name in names]
    assert len(set(ids)) == len(ids)
