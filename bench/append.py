"""Append throughput on SQLite, measured in one run, with the ratios that matter.

- single: one event per save (a new aggregate each time), ledger vs raw eventsourcing
  (eventsourcing's own SQLite recorder, same domain events, same machine, same disk);
- batch: 1,000 events in one save, ledger vs raw eventsourcing;
- ceiling: Ed25519 signatures per second on one core (the irreducible per-event cost).

Targets: single ledger >= 75% of raw single; batch ledger >= 50% of the signing ceiling.
Run: `python bench/append.py [--single N] [--batches N]`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from eventsourcing.application import Application
from eventsourcing.domain import event

from ledger.config import Config
from ledger.crypto import SigningKey
from ledger.domain.base import LedgerAggregate
from ledger.store.application import Ledger


class Reading(LedgerAggregate):
    TYPE = "bench.Reading"

    class Opened(LedgerAggregate.Created):
        TYPE = "bench.ReadingOpened"
        label: str

    @event(Opened)
    def __init__(self, label: str) -> None:
        self.label = label

    class Measured(LedgerAggregate.Event):
        TYPE = "bench.Measured"
        skill: str
        result: str
        time_spent_ms: int

    @event(Measured)
    def measure(self, skill: str, result: str, time_spent_ms: int) -> None:
        pass


def _single(save, n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        save(Reading(label=f"r{i}"))
    return n / (time.perf_counter() - start)


def _batch(save, batches: int, size: int = 1000) -> float:
    elapsed = 0.0
    for b in range(batches):
        reading = Reading(label=f"b{b}")
        for i in range(size - 1):
            reading.measure(skill=f"@recherche{i % 8 + 1}", result="ok", time_spent_ms=i * 7)
        start = time.perf_counter()
        save(reading)
        elapsed += time.perf_counter() - start
    return batches * size / elapsed


def _signing_ceiling(seconds: float = 1.5) -> float:
    key, digest, count = SigningKey.generate(), b"\x01" * 32, 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(500):
            key.sign(digest)
        count += 500
    return count / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--single", type=int, default=1500, help="single-event saves per side")
    parser.add_argument("--batches", type=int, default=5, help="1,000-event batches per side")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ledger-bench-"))

    ledger = Ledger(
        Config.from_env(database_url=f"sqlite:///{work}/ledger.db", keys_dir=work / "keys")
    )
    ledger.init()
    raw = Application(
        env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(work / "raw.db")}
    )

    # warm both up, then interleave the measurements so drift hits both sides alike
    _single(ledger.save, 50), _single(raw.save, 50)
    raw_single, ledger_single = _single(raw.save, args.single), _single(ledger.save, args.single)
    raw_batch, ledger_batch = _batch(raw.save, args.batches), _batch(ledger.save, args.batches)
    ceiling = _signing_ceiling()

    single_ratio = ledger_single / raw_single
    batch_ratio = ledger_batch / ceiling
    rows = [
        ("raw eventsourcing, single-event saves", raw_single, ""),
        (
            "ledger, single-event appends (signed, chained)",
            ledger_single,
            f"{single_ratio:.0%} of raw (target >= 75%)",
        ),
        ("raw eventsourcing, 1,000-event saves", raw_batch, ""),
        (
            "ledger, 1,000-event batch appends",
            ledger_batch,
            f"{ledger_batch / raw_batch:.0%} of raw",
        ),
        ("Ed25519 signing ceiling, one core", ceiling, ""),
        (
            "ledger batch vs signing ceiling",
            ledger_batch,
            f"{batch_ratio:.0%} of ceiling (target >= 50%)",
        ),
    ]
    for label, rate, note in rows:
        print(f"{label:<50} {rate:>10,.0f} events/s  {note}")
    ok = single_ratio >= 0.75 and batch_ratio >= 0.50
    print("targets met" if ok else "TARGETS MISSED")
    ledger.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
