"""Append throughput on SQLite, measured in one run, with the ratios that matter.

- single: one event per save (a new aggregate each time), ledger vs raw eventsourcing
  (eventsourcing's own SQLite recorder, same domain events, same machine, same disk);
- batch: 1,000 events in one save, ledger vs raw eventsourcing;
- ceiling: Ed25519 signatures per second on one core (the irreducible per-event cost).

Targets: single ledger >= 75% of raw single; batch ledger >= 50% of the signing ceiling.
Both sides are measured in alternating rounds, so drift of the machine (disk, CPU
frequency, neighbours) hits them alike. The ledger signs large batches on
LEDGER_SIGNING_THREADS threads (default 2); the batch is also measured with one
signing thread, to show what the pipeline costs besides signing.
Run: `python bench/append.py [--rounds N] [--single N]`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from eventsourcing.application import Application
from eventsourcing.domain import event

from ledger.config import Config, setting
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
    """Seconds for `n` one-event saves."""
    start = time.perf_counter()
    for i in range(n):
        save(Reading(label=f"r{i}"))
    return time.perf_counter() - start


def _batch(save, size: int = 1000) -> float:
    """Seconds for one save of `size` events (built beforehand, not timed)."""
    reading = Reading(label="b")
    for i in range(size - 1):
        reading.measure(skill=f"@recherche{i % 8 + 1}", result="ok", time_spent_ms=i * 7)
    start = time.perf_counter()
    save(reading)
    return time.perf_counter() - start


def _signing(seconds: float) -> tuple[int, float]:
    key, digest, count = SigningKey.generate(), b"\x01" * 32, 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(500):
            key.sign(digest)
        count += 500
    return count, time.perf_counter() - start


def _ledger(work: Path, name: str, threads: int) -> Ledger:
    config = Config.from_env(
        database_url=f"sqlite:///{work}/{name}.db", keys_dir=work / "keys", signing_threads=threads
    )
    ledger = Ledger(config)
    ledger.init()
    return ledger


def _rounds(pairs: list[tuple[float, float]]) -> float:
    """Median over rounds of (ledger rate / reference rate): robust to the machine's hiccups."""
    return statistics.median(ref_time / led_time for ref_time, led_time in pairs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40, help="alternating measurement rounds")
    parser.add_argument(
        "--single", type=int, default=25, help="single-event saves per side per round"
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ledger-bench-"))
    ledger = _ledger(work, "ledger", int(setting("LEDGER_SIGNING_THREADS")))
    one_thread = _ledger(work, "ledger1", 1)
    raw = Application(
        env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(work / "raw.db")}
    )
    (
        _single(ledger.save, 50),
        _single(raw.save, 50),
        _batch(ledger.save),
        _batch(raw.save),
    )  # warm up

    single: list[tuple[float, float]] = []
    batch: list[tuple[float, float]] = []
    batch1: list[tuple[float, float]] = []
    raw_batch: list[float] = []
    for _ in range(args.rounds):
        single.append((_single(raw.save, args.single), _single(ledger.save, args.single)))
        count, elapsed = _signing(0.05)
        per_thousand = elapsed * 1000 / count  # seconds to sign 1,000 events on one core
        batch.append((per_thousand, _batch(ledger.save)))
        batch1.append((per_thousand, _batch(one_thread.save)))
        raw_batch.append(_batch(raw.save))

    def rate(seconds: float, events: int = 1000) -> float:
        return events / seconds

    totals = {
        "raw1": rate(statistics.median(r for r, _ in single), args.single),
        "led1": rate(statistics.median(x for _, x in single), args.single),
        "rawb": rate(statistics.median(raw_batch)),
        "ledb": rate(statistics.median(x for _, x in batch)),
        "led1b": rate(statistics.median(x for _, x in batch1)),
        "sign": rate(statistics.median(r for r, _ in batch)),
    }
    single_ratio, batch_ratio, one_ratio = _rounds(single), _rounds(batch), _rounds(batch1)
    threads = ledger.recorder.signing_threads
    rows = [
        ("raw eventsourcing, single-event saves", totals["raw1"], ""),
        ("ledger, single-event appends (signed, chained)", totals["led1"], f"{single_ratio:.0%} of raw (target >= 75%)"),
        ("raw eventsourcing, 1,000-event saves", totals["rawb"], ""),
        (f"ledger, 1,000-event batches ({threads} signing threads)", totals["ledb"], f"{batch_ratio:.0%} of ceiling (target >= 50%)"),
        ("ledger, 1,000-event batches (1 signing thread)", totals["led1b"], f"{one_ratio:.0%} of ceiling"),
        ("Ed25519 signing ceiling, one core", totals["sign"], ""),
    ]  # fmt: skip
    print(
        f"{args.rounds} alternating rounds (rates and ratios: per-round medians); SQLite in {work}"
    )
    for label, value, note in rows:
        print(f"{label:<52} {value:>10,.0f} events/s  {note}")
    ok = single_ratio >= 0.75 and batch_ratio >= 0.50
    print("targets met" if ok else "TARGETS MISSED")
    for instance in (ledger, one_thread):
        instance.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
