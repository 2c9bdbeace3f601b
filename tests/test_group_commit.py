"""Group commit: concurrent appends share transactions without losing order, isolation or data.

Run on SQLite and PostgreSQL: threads of one process (grouped) and several processes
(ordered by the database lock) produce one contiguous chain that the audit verifies;
a stale request fails alone in its group; a failed group answers every waiting
request with the error and writes nothing; nothing acknowledged is lost when a
writer process is killed mid-append.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ledger.config import Config
from ledger.store.application import Ledger
from ledger.store.db import StoreUnavailable, Timeouts
from ledger.store.group_commit import GroupCommit
from ledger.store.recorder import ConcurrencyConflict
from tests.conftest import append_lock_held
from tests.test_store import Counter, _assert_gap_free_valid, all_envelopes, audit


def _in_thread(call: Callable[[], Any], outcomes: list[Any]) -> threading.Thread:
    def run() -> None:
        try:
            outcomes.append(call())
        except Exception as exc:
            outcomes.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _until(condition: Callable[[], bool], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


def _queued_behind_a_leader(ledger: Ledger, calls: list[Callable[[], Any]]) -> list[Any]:
    """Run `calls` as one group: a first append leads and waits for the database lock
    held elsewhere while they queue behind it; then the lock is released."""
    group = ledger.recorder._group
    outcomes: list[Any] = []
    start = group.groups
    with append_lock_held(ledger.config.database_url):
        threads = [_in_thread(lambda: ledger.save(Counter(label="leader")), [])]
        _until(lambda: group.groups == start + 1)
        threads += [_in_thread(call, outcomes) for call in calls]
        _until(lambda: group.waiting() == len(calls))
    for thread in threads:
        thread.join(timeout=30)
    return outcomes


@pytest.fixture
def grouped(ledger: Ledger) -> Ledger:
    ledger.save(Counter(label="warm-up"))  # the key is announced: the log has started
    return ledger


def test_threads_share_transactions_and_the_chain_stays_valid(
    ledger: Ledger, config: Config
) -> None:
    errors: list[Exception] = []

    def write(label: str) -> None:
        try:
            for i in range(25):
                counter = Counter(label=f"{label}-{i}")
                counter.add(amount=i)
                ledger.save(counter)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(f"t{k}",)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    _assert_gap_free_valid(ledger, 1 + 8 * 25 * 2)
    assert ledger.recorder._group.groups <= 8 * 25  # never more transactions than appends


def test_a_group_of_queued_appends_is_one_transaction(grouped: Ledger) -> None:
    before = len(all_envelopes(grouped))
    counters = [Counter(label=f"g{k}") for k in range(5)]
    groups = grouped.recorder._group.groups
    outcomes = _queued_behind_a_leader(grouped, [lambda c=c: grouped.save(c) for c in counters])
    assert all(isinstance(seqs, list) for seqs in outcomes), outcomes
    assert grouped.recorder._group.groups == groups + 2  # the leader's, then all five
    envs = all_envelopes(grouped)
    assert len(envs) == before + 6
    assert {str(c.id) for c in counters} <= {e.stream for e in envs}
    assert audit(grouped).ok


def test_a_stale_request_fails_alone_in_its_group(grouped: Ledger) -> None:
    counter = Counter(label="shared")
    grouped.save(counter)
    stale = grouped.app.repository.get(counter.id)
    counter.add(amount=1)
    grouped.save(counter)  # `stale` is now one version behind
    stale.add(amount=100)
    fresh = [Counter(label=f"f{k}") for k in range(3)]
    calls = [lambda c=c: grouped.save(c) for c in fresh[:2]]
    calls += [lambda: grouped.save(stale), lambda: grouped.save(fresh[2])]
    outcomes = _queued_behind_a_leader(grouped, calls)
    conflicts = [o for o in outcomes if isinstance(o, Exception)]
    assert len(conflicts) == 1 and isinstance(conflicts[0], ConcurrencyConflict), outcomes
    streams = {e.stream for e in all_envelopes(grouped)}
    assert {str(c.id) for c in fresh} <= streams
    assert grouped.app.repository.get(counter.id).total == 1
    assert audit(grouped).ok


def test_a_failed_group_answers_every_request_with_the_error_and_writes_nothing(
    database_url: str, tmp_path: Path
) -> None:
    config = Config.from_env(
        database_url=database_url,
        keys_dir=tmp_path / "keys",
        master_key="",
        db_timeouts=Timeouts(statement_ms=1000, busy_ms=1000),
    )
    ledger = Ledger(config)
    ledger.init()
    acknowledged = [Counter(label="before")]
    ledger.save(acknowledged[0])
    before = all_envelopes(ledger)
    group, start = ledger.recorder._group, ledger.recorder._group.groups
    outcomes: list[Any] = []
    with append_lock_held(database_url):  # held past the timeouts: the groups' leaders fail
        threads = [_in_thread(lambda: ledger.save(Counter(label="x")), outcomes)]
        _until(lambda: group.groups == start + 1)
        threads += [
            _in_thread(lambda k=k: ledger.save(Counter(label=f"y{k}")), outcomes) for k in range(4)
        ]
        _until(lambda: group.waiting() == 4)
        for thread in threads:
            thread.join(timeout=30)
    assert group.groups == start + 2  # the four waiting requests failed as one group
    assert len(outcomes) == 5
    assert all(isinstance(o, StoreUnavailable) for o in outcomes), outcomes
    assert all_envelopes(ledger) == before
    after = Counter(label="after")
    ledger.save(after)  # the service recovers on its own
    assert {str(acknowledged[0].id), str(after.id)} <= {e.stream for e in all_envelopes(ledger)}
    assert audit(ledger).ok
    ledger.close()


def _threaded_process_writer(config: Config, label: str, threads: int, n: int) -> None:
    ledger = Ledger(config)
    errors: list[Exception] = []

    def write(k: int) -> None:
        try:
            for i in range(n):
                ledger.save(Counter(label=f"{label}-{k}-{i}"))
        except Exception as exc:
            errors.append(exc)

    workers = [threading.Thread(target=write, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    ledger.close()
    if errors:
        raise SystemExit(f"{label}: {errors[0]!r}")


def test_processes_of_threads_keep_one_contiguous_valid_chain(
    ledger: Ledger, config: Config
) -> None:
    ctx = multiprocessing.get_context("spawn")
    args = [(config, f"p{k}", 3, 15) for k in range(3)]
    procs = [ctx.Process(target=_threaded_process_writer, args=a) for a in args]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=180)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    _assert_gap_free_valid(ledger, 1 + 3 * 3 * 15)


def _acknowledging_writer(config: Config, acks: Path, threads: int) -> None:
    """Append until killed; write each appended stream id once its save returned."""
    ledger = Ledger(config)
    lock = threading.Lock()

    def write(k: int) -> None:
        with acks.open("a") as out:
            while True:
                counter = Counter(label=f"k{k}")
                ledger.save(counter)
                with lock:
                    out.write(f"{counter.id}\n")
                    out.flush()

    for k in range(threads):
        threading.Thread(target=write, args=(k,), daemon=True).start()
    threading.Event().wait()


def test_a_writer_killed_mid_append_loses_nothing_acknowledged(
    ledger: Ledger, config: Config, tmp_path: Path
) -> None:
    acks = tmp_path / "acks"
    acks.touch()
    ctx = multiprocessing.get_context("spawn")
    proc = ctx.Process(target=_acknowledging_writer, args=(config, acks, 4))
    proc.start()
    _until(lambda: len(acks.read_text().splitlines()) >= 60, seconds=60)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(timeout=30)
    acknowledged = set(acks.read_text().split())
    streams = {e.stream for e in all_envelopes(ledger)}
    assert acknowledged <= streams
    ledger.save(Counter(label="after the crash"))
    envs = all_envelopes(ledger)
    assert [e.seq for e in envs] == list(range(1, len(envs) + 1))
    assert audit(ledger).ok


def test_group_commit_answers_each_request_with_its_own_outcome() -> None:
    release = threading.Event()
    seen: list[list[Any]] = []

    def run(requests: list) -> None:
        seen.append([r.payload for r in requests])
        if len(seen) == 1:
            release.wait(10)
        for request in requests:
            if request.payload == "bad":
                request.fail(ValueError("bad"))
            elif request.payload != "unanswered":
                request.succeed(request.payload.upper())

    group = GroupCommit(run)
    outcomes: list[Any] = []
    threads = [_in_thread(lambda: group.submit("first"), outcomes)]
    _until(lambda: len(seen) == 1)
    threads += [_in_thread(lambda p=p: group.submit(p), outcomes) for p in ("a", "bad", "b")]
    threads += [_in_thread(lambda: group.submit("unanswered"), outcomes)]
    _until(lambda: group.waiting() == 4)
    release.set()
    for thread in threads:
        thread.join(timeout=10)
    assert seen[0] == ["first"] and sorted(seen[1]) == ["a", "b", "bad", "unanswered"]
    assert sorted(o for o in outcomes if isinstance(o, str)) == ["A", "B", "FIRST"]
    errors = sorted(type(o).__name__ for o in outcomes if isinstance(o, Exception))
    assert errors == ["LeaderFailed", "ValueError"]
