"""Uploaded PDFs are parsed in a limited child process: limits hold, the server lives on."""

from __future__ import annotations

import threading
import time

import pytest

from ledger.services import pdf_sandbox
from ledger.services.pdf_sandbox import LimitsExceeded, SandboxBusy, run_isolated


def allocate(megabytes: int) -> int:
    return len(bytearray(megabytes << 20))


def sleep(seconds: float) -> str:
    time.sleep(seconds)
    return "woke"


def spin(seconds: float) -> int:
    deadline, count = time.monotonic() + seconds, 0
    while time.monotonic() < deadline:
        count += 1
    return count


def test_a_result_comes_back_from_the_child() -> None:
    assert run_isolated(allocate, 16) == 16 << 20


def test_memory_beyond_the_limit_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pdf_sandbox, "MEMORY_BYTES", 256 << 20)
    with pytest.raises(LimitsExceeded, match="memory"):
        run_isolated(allocate, 512)


def test_cpu_and_wall_time_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pdf_sandbox, "CPU_SECONDS", 1)
    started = time.monotonic()
    with pytest.raises(LimitsExceeded):
        run_isolated(spin, 30)  # killed by RLIMIT_CPU
    monkeypatch.setattr(pdf_sandbox, "WALL_SECONDS", 0.5)
    with pytest.raises(LimitsExceeded, match="longer than"):
        run_isolated(sleep, 30)  # no CPU used: the wall clock kills it
    assert time.monotonic() - started < 10


def test_checks_beyond_the_slots_are_told_to_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pdf_sandbox, "QUEUE_WAIT_SECONDS", 0.2)
    monkeypatch.setattr(pdf_sandbox, "_slots", threading.BoundedSemaphore(1))
    holder = threading.Thread(target=run_isolated, args=(sleep, 1.5))
    holder.start()
    time.sleep(0.5)
    with pytest.raises(SandboxBusy):
        run_isolated(sleep, 0)
    holder.join()
    assert run_isolated(sleep, 0) == "woke"
