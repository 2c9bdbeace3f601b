"""Audit at the speed of the hardware: Merkle proofs from persisted tiles, in one run.

Section `proofs`: synthetic leaves (only `seq` and `hash` matter to the tree)
are written into a scratch database at 10^4, 10^5 and 10^6 events and
integrated into C2SP tiles; then random inclusion and consistency proofs are
timed at each size (median and p99, each proof in its own read transaction
as the API answers it), and a fresh process answering proofs reports its
peak memory at each size. Targets: latency flat across sizes and under 5 ms
on a quiet core; memory not growing with the log.

Section `throughput` (bench/audit_throughput.py): the full audit's events/s
against the Ed25519 verify ceiling on every core, and its peak memory at two
log sizes.

Run: `python bench/audit.py [--sizes 10000,100000,1000000] [--proofs 300]
[--database postgresql://…/scratch] [--audit-events 40000] [--only proofs|throughput]`. Without `--database`
a temporary SQLite file is used; with it, a throwaway schema is created in
that PostgreSQL database and dropped afterwards.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ledger.store.db import Database, connect  # noqa: E402
from ledger.store.tiles import TileStore  # noqa: E402

TARGET_MS = 5.0
FLAT = 1.5  # "flat": the median grows at most this much more than the proof length (log n)
CHUNK = 20_000


# --- scratch databases ---------------------------------------------------------


@contextmanager
def scratch(database: str | None) -> Iterator[str]:
    """A database URL to fill and throw away: a temporary SQLite file or PostgreSQL schema."""
    if not database:
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{tmp}/bench.db"
        return
    with scratch_schema(database) as schema:
        sep = "&" if "?" in database else "?"
        yield f"{database}{sep}options=-csearch_path%3D{schema}"


@contextmanager
def scratch_schema(database: str) -> Iterator[str]:
    """The name of a PostgreSQL schema made for the run and dropped afterwards."""
    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield schema
    finally:
        with psycopg.connect(database, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def grow(db: Database, start: int, end: int) -> None:
    """Synthetic events start+1..end whose hash is SHA-256 of the 8-byte seq."""
    insert = (
        "INSERT INTO ledger_events (seq, id, stream, version, type, time, data, prev, hash, kid,"
        " sig) "
    )
    for lo in range(start, end, CHUNK):
        hi = min(lo + CHUNK, end)
        with db.write() as cur:
            if db.kind == "postgresql":
                cur.execute(
                    insert + "SELECT g, g::text, g::text, 1, 'bench.Synthetic', '', '{}', '',"
                    " encode(sha256(int8send(g)), 'hex'), '', '' FROM generate_series(?::bigint, ?::bigint) g",
                    (lo + 1, hi),
                )
                continue
            rows = [
                (s, str(s), str(s), 1, "bench.Synthetic", "", "{}", "",
                 hashlib.sha256(s.to_bytes(8, "big")).hexdigest(), "", "")
                for s in range(lo + 1, hi + 1)
            ]  # fmt: skip
            cur.executemany(insert + "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)


# --- measurements ----------------------------------------------------------------


def timed(calls: list[Callable[[], object]]) -> tuple[float, float]:
    """Median and p99 latency of `calls`, in milliseconds."""
    times = []
    for call in calls:
        t0 = time.perf_counter()
        call()
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.99))]


def proof_calls(store: TileStore, size: int, count: int, seed: int) -> dict[str, list]:
    rng = random.Random(seed)

    def inclusion(m: int) -> Callable[[], object]:
        def call() -> object:
            with store.view(size) as view:
                return view.inclusion(m)

        return call

    def consistency(old: int) -> Callable[[], object]:
        def call() -> object:
            with store.view(size) as view:
                return view.consistency(old)

        return call

    return {
        "inclusion": [inclusion(rng.randrange(size)) for _ in range(count)],
        "consistency": [consistency(rng.randint(1, size)) for _ in range(count)],
    }


def peak_rss_kib() -> int:
    """This process's peak resident memory (VmHWM: ru_maxrss would carry the parent's over exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def child_memory(url: str, size: int, count: int) -> None:
    """In a fresh process: answer proofs at `size`, print peak RSS in KiB (before and after)."""
    db = connect(url)
    store = TileStore(db)
    before = peak_rss_kib()
    for calls in proof_calls(store, size, count, seed=size).values():
        for call in calls:
            call()
    print(before, peak_rss_kib())


def memory_of(url: str, size: int, count: int) -> tuple[int, int]:
    out = subprocess.run(
        [sys.executable, __file__, "--child-memory", url, str(size), str(count)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    before, after = out.stdout.split()
    return int(before), int(after)


def proofs_section(args: argparse.Namespace) -> None:
    sizes = sorted(int(s) for s in args.sizes.split(","))
    backend = "PostgreSQL" if args.database else "SQLite"
    print(f"== Merkle proofs from persisted tiles ({backend}, {args.proofs} proofs per kind) ==")
    print(f"{'events':>10} {'integrate':>11} {'incl p50':>9} {'incl p99':>9} "
          f"{'cons p50':>9} {'cons p99':>9} {'RSS KiB':>9} {'proofs +KiB':>11}")  # fmt: skip
    results = {}
    with scratch(args.database) as url:
        db = connect(url)
        db.create_schema()
        store = TileStore(db)
        done = 0
        for size in sizes:
            grow(db, done, size)
            t0 = time.perf_counter()
            store.integrate()
            rate = (size - done) / (time.perf_counter() - t0)
            done = size
            if db.kind == "sqlite":  # a live store's WAL is checkpointed; don't time a big one
                db.scalar("PRAGMA wal_checkpoint(TRUNCATE)")
            timed(proof_calls(store, size, 20, seed=0)["inclusion"])  # warm caches and plans
            calls = proof_calls(store, size, args.proofs, seed=1)
            incl, cons = timed(calls["inclusion"]), timed(calls["consistency"])
            before, after = memory_of(url, size, args.proofs)
            results[size] = (incl, cons, after)
            print(f"{size:>10} {rate:>9.0f}/s {incl[0]:>7.2f}ms {incl[1]:>7.2f}ms "
                  f"{cons[0]:>7.2f}ms {cons[1]:>7.2f}ms {after:>9} {after - before:>11}")  # fmt: skip
        db.close()
    small, large = results[sizes[0]], results[sizes[-1]]
    depth = math.log2(sizes[-1]) / math.log2(sizes[0])  # how much longer a proof gets
    for i, kind in enumerate(("inclusion", "consistency")):
        ratio = large[i][0] / small[i][0]
        flat = "flat" if ratio <= FLAT * depth else "NOT flat"
        under = "under" if large[i][0] < TARGET_MS else "NOT under"
        print(f"{kind}: median at {sizes[-1]} / at {sizes[0]} = {ratio:.2f} ({flat}); "
              f"{under} {TARGET_MS:g} ms (p50 {large[i][0]:.2f} ms)")  # fmt: skip
    print(f"(a proof at {sizes[-1]} events is {depth:.2f}x as long as at {sizes[0]})")
    print(f"memory: peak RSS at {sizes[-1]} / at {sizes[0]} = {large[2] / small[2]:.2f}")


def throughput_section(args: argparse.Namespace) -> None:
    """Full audit events/s against the Ed25519 ceiling, and audit memory (audit_throughput.py)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import audit_throughput

    audit_throughput.run(args.audit_events)


SECTIONS: dict[str, Callable[[argparse.Namespace], None]] = {
    "proofs": proofs_section,
    "throughput": throughput_section,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--proofs", type=int, default=300, help="proofs timed per kind and size")
    parser.add_argument("--database", help="a PostgreSQL URL (a throwaway schema is used)")
    parser.add_argument("--audit-events", type=int, default=40_000, help="throughput log size")
    parser.add_argument("--only", choices=sorted(SECTIONS), action="append")
    parser.add_argument("--child-memory", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_memory:
        url, size, count = args.child_memory
        child_memory(url, int(size), int(count))
        return
    for name in args.only or SECTIONS:
        SECTIONS[name](args)


if __name__ == "__main__":
    main()
