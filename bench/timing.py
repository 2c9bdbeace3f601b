"""Throughput measured the same way by every bench script."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def calls_per_second(step: Callable[[], object], seconds: float = 1.0) -> float:
    """Calls of `step` per second over about `seconds`."""
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        step()
        count += 1
    return count / elapsed


def median_rate(step: Callable[[], object], seconds: float, rounds: int) -> float:
    """Median calls per second over `rounds` rounds of about `seconds` each."""
    return statistics.median(calls_per_second(step, seconds) for _ in range(rounds))
