"""Append throughput on SQLite or PostgreSQL, measured in one run, with the ratios that matter.

- writers: single-event appends (a new aggregate each time) by 1 and by 4 concurrent
  writers, as processes (one Ledger each: only the database lock orders them) and as
  threads of one process (they share one Ledger: its group commit batches them);
- batch: 1,000 events in one save, ledger vs raw eventsourcing (a plain eventsourcing
  application on the same database server: its SQLite or POSTGRES persistence module).

Targets (issue 13): 4 writers >= 2x one writer; 1,000-event batches >= 70% of raw
eventsourcing batch saves. Both sides of each ratio are measured in alternating rounds,
so drift of the machine (disk, CPU frequency, neighbours) hits them alike; rates and
ratios are per-round medians.
Run: `python bench/append.py [--database URL] [--rounds N] [--seconds S]`.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from pathlib import Path
from urllib.parse import unquote, urlsplit

from audit import scratch, scratch_schema
from eventsourcing.application import Application
from eventsourcing.domain import event

from ledger.config import Config
from ledger.domain.base import LedgerAggregate
from ledger.store.application import Ledger

WRITERS = 4


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


def _config(url: str, keys: Path) -> Config:
    return Config.from_env(database_url=url, keys_dir=keys, master_key="")


def _saves_until(save: Callable, start: float, stop: float) -> int:
    """Single-event saves from wall-clock `start` to `stop`; how many."""
    time.sleep(max(0.0, start - time.time()))
    count = 0
    while time.time() < stop:
        save(Reading(label="r"))
        count += 1
    return count


def _process_writer(url: str, keys: Path, pipe: Connection) -> None:
    """A writer process: one Ledger, runs each (start, stop) window it is sent."""
    ledger = Ledger(_config(url, keys))
    _saves_until(ledger.save, 0, time.time() + 0.3)  # warm up
    pipe.send("ready")
    while (window := pipe.recv()) is not None:
        pipe.send(_saves_until(ledger.save, *window))
    ledger.close()


def _threads_rate(ledger: Ledger, writers: int, seconds: float) -> float:
    counts = [0] * writers
    start = time.time() + 0.05
    window = (start, start + seconds)

    def run(k: int) -> None:
        counts[k] = _saves_until(ledger.save, *window)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / seconds


def _processes_rate(pipes: list[Connection], seconds: float) -> float:
    start = time.time() + 0.05
    for pipe in pipes:
        pipe.send((start, start + seconds))
    return sum(pipe.recv() for pipe in pipes) / seconds


def _batch(save: Callable, size: int = 1000) -> float:
    """Seconds for one save of `size` events (built beforehand, not timed)."""
    reading = Reading(label="b")
    for i in range(size - 1):
        reading.measure(skill=f"@recherche{i % 8 + 1}", result="ok", time_spent_ms=i * 7)
    start = time.perf_counter()
    save(reading)
    return time.perf_counter() - start


@contextmanager
def _databases(url: str | None) -> Iterator[tuple[str, dict[str, str]]]:
    """The ledger's database URL and the raw eventsourcing env, fresh, dropped afterwards."""
    if not url:
        work = Path(tempfile.mkdtemp(prefix="ledger-bench-"))
        raw = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(work / "raw.db")}
        yield f"sqlite:///{work}/ledger.db", raw
        return
    with scratch(url) as ours, scratch_schema(url) as theirs:
        parts = urlsplit(url)
        raw = {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": parts.path.lstrip("/"),
            "POSTGRES_HOST": parts.hostname or "127.0.0.1",
            "POSTGRES_PORT": str(parts.port or 5432),
            "POSTGRES_USER": unquote(parts.username or "postgres"),
            "POSTGRES_PASSWORD": unquote(parts.password or ""),
            "POSTGRES_SCHEMA": theirs,
        }
        yield ours, raw


def _spawn_writers(url: str, keys: Path) -> tuple[list, list[Connection]]:
    ctx = multiprocessing.get_context("spawn")
    procs, pipes = [], []
    for _ in range(WRITERS):
        ours, theirs = ctx.Pipe()
        proc = ctx.Process(target=_process_writer, args=(url, keys, theirs), daemon=True)
        proc.start()
        procs.append(proc)
        pipes.append(ours)
    for pipe in pipes:
        assert pipe.recv() == "ready"
    return procs, pipes


def _median_ratio(pairs: list[tuple[float, float]]) -> float:
    """Median over rounds of (measured rate / reference rate): robust to the machine's hiccups."""
    return statistics.median(ours / ref for ref, ours in pairs)


def measure(url: str, raw_env: dict[str, str], rounds: int, seconds: float) -> dict[str, float]:
    keys = Path(tempfile.mkdtemp(prefix="ledger-bench-keys-"))
    ledger = Ledger(_config(url, keys))
    ledger.init()
    raw = Application(env=raw_env)
    _batch(ledger.save), _batch(raw.save)  # warm up
    procs, pipes = _spawn_writers(url, keys)
    proc_rates, thread_rates, batch_rates = [], [], []
    for _ in range(rounds):
        proc_rates.append((_processes_rate(pipes[:1], seconds), _processes_rate(pipes, seconds)))
        thread_rates.append(
            (_threads_rate(ledger, 1, seconds), _threads_rate(ledger, WRITERS, seconds))
        )
        batch_rates.append((1000 / _batch(raw.save), 1000 / _batch(ledger.save)))
    for pipe in pipes:
        pipe.send(None)
    for proc in procs:
        proc.join(timeout=30)
    ledger.close()
    raw.close()
    median = statistics.median
    return {
        "proc1": median(a for a, _ in proc_rates),
        "proc4": median(b for _, b in proc_rates),
        "proc_ratio": _median_ratio(proc_rates),
        "thr1": median(a for a, _ in thread_rates),
        "thr4": median(b for _, b in thread_rates),
        "thr_ratio": _median_ratio(thread_rates),
        "raw_batch": median(a for a, _ in batch_rates),
        "batch": median(b for _, b in batch_rates),
        "batch_ratio": _median_ratio(batch_rates),
    }


def report(kind: str, rounds: int, m: dict[str, float]) -> bool:
    rows = [
        ("1 writer process, single-event appends", m["proc1"], ""),
        (f"{WRITERS} writer processes, single-event appends", m["proc4"], f"{m['proc_ratio']:.2f}x one writer (target >= 2x)"),
        ("1 writer thread, single-event appends", m["thr1"], ""),
        (f"{WRITERS} writer threads (one process), group commit", m["thr4"], f"{m['thr_ratio']:.2f}x one writer (target >= 2x)"),
        ("raw eventsourcing, 1,000-event saves", m["raw_batch"], ""),
        ("ledger, 1,000-event batches (signed, chained)", m["batch"], f"{m['batch_ratio']:.0%} of raw (target >= 70%)"),
    ]  # fmt: skip
    print(f"{kind}: {rounds} alternating rounds (rates and ratios: per-round medians)")
    for label, value, note in rows:
        print(f"{label:<50} {value:>9,.0f} events/s  {note}")
    writers_ok = max(m["proc_ratio"], m["thr_ratio"]) >= 2
    ok = writers_ok and m["batch_ratio"] >= 0.70
    print("targets met" if ok else "TARGETS MISSED")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default="", help="postgresql://… (default: SQLite file)")
    parser.add_argument("--rounds", type=int, default=9, help="alternating measurement rounds")
    parser.add_argument("--seconds", type=float, default=1.0, help="length of a writers window")
    args = parser.parse_args()
    with _databases(args.database) as (url, raw_env):
        figures = measure(url, raw_env, args.rounds, args.seconds)
    kind = "PostgreSQL" if args.database else "SQLite"
    return 0 if report(kind, args.rounds, figures) else 1


if __name__ == "__main__":
    sys.exit(main())
