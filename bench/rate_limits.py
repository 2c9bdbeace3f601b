"""Cost of one rate-limit hit per store, in one run: per process, per host, across nodes.

Times `hit()` of the three stores of `ledger/api/rate_stores.py` on the same
keys (a few hundred clients), alternating over several rounds, and prints the
medians in hits/s with the host and Redis stores as a ratio of the per-process
dict. Redis is skipped when none answers at --redis.
Run: `python bench/rate_limits.py [--rounds 7] [--hits 20000] [--redis redis://127.0.0.1:6379/15]`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import redis

from ledger.api.rate_stores import LocalWindows, NodeWindows, RedisWindows, Windows


def rate(store: Windows, hits: int) -> float:
    started = time.perf_counter()
    for n in range(hits):
        store.hit(f"lookups/198.51.{(n >> 8) & 1}.{n & 255}", 60)
    return hits / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--hits", type=int, default=20_000)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15")
    args = parser.parse_args()
    stores: dict[str, Windows] = {
        "memory:// (per process)": LocalWindows(),
        "node:// (per host, mmap + flock)": NodeWindows(
            Path(tempfile.mkdtemp(prefix="ledger-bench-limits-")) / "counters.bin"
        ),
    }
    try:
        redis.Redis.from_url(args.redis, socket_connect_timeout=0.5).ping()
        stores["redis:// (all nodes, local server)"] = RedisWindows(args.redis, uuid.uuid4().hex)
    except redis.RedisError:
        print(f"no Redis at {args.redis}: skipped")
    runs: dict[str, list[float]] = {name: [] for name in stores}
    for _ in range(args.rounds):  # alternate, so the machine's drift hits all alike
        for name, store in stores.items():
            runs[name].append(rate(store, args.hits if "redis" not in name else args.hits // 10))
    medians = {name: statistics.median(values) for name, values in runs.items()}
    base = medians["memory:// (per process)"]
    print(f"{args.rounds} alternating rounds, medians")
    for name, value in medians.items():
        print(f"{name:<40} {value:>10,.0f} hits/s  {value / base:.0%} of per process")
    return 0


if __name__ == "__main__":
    sys.exit(main())
