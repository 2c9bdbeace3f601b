"""Prometheus metrics: what each process counts, and what the log says at scrape time.

Counters and histograms (requests by route, appends, events, append-lock waits)
are counted where they happen. Under `ledger serve` every gunicorn worker
writes them to files in one PROMETHEUS_MULTIPROC_DIR (in the runtime dir), so a
scrape answered by any worker sums them all. Gauges about the log (read-model
lag, last audit, checkpoint age) are read from the database at scrape time.

prometheus_client is imported on first use, not with this module: it chooses
between in-memory and multiprocess storage once, at import, and the serving
process sets that directory only just before gunicorn forks its workers.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledger.services.log_health import LogHealth
from ledger.store import observers

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0, 10.0)
LOCK_BUCKETS = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0)


@dataclass(frozen=True)
class _Metrics:
    registry: Any
    requests: Any
    appends: Any
    events: Any
    lock_wait: Any


@functools.cache
def _metrics() -> _Metrics:
    from prometheus_client import CollectorRegistry, Counter, Histogram

    registry = CollectorRegistry()
    return _Metrics(
        registry=registry,
        requests=Histogram(
            "ledger_http_request_duration_seconds",
            "Time to answer a request, by route template, method and status class.",
            ["route", "method", "status_class"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        ),
        appends=Counter("ledger_appends", "Committed append transactions.", registry=registry),
        events=Counter("ledger_events_appended", "Events appended to the log.", registry=registry),
        lock_wait=Histogram(
            "ledger_append_lock_wait_seconds",
            "Time a writer waited for the append lock.",
            buckets=LOCK_BUCKETS,
            registry=registry,
        ),
    )


def _appended(events: int) -> None:
    metrics = _metrics()
    metrics.appends.inc()
    metrics.events.inc(events)


def _lock_waited(seconds: float) -> None:
    _metrics().lock_wait.observe(seconds)


def install() -> None:
    """Count the store's appends and append-lock waits in this process."""
    observers.on_append(_appended)
    observers.on_lock_wait(_lock_waited)


def observe_request(route: str, method: str, status: int, seconds: float) -> None:
    _metrics().requests.labels(route, method, f"{status // 100}xx").observe(seconds)


def exposition(health: Callable[[], LogHealth]) -> tuple[bytes, str]:
    """The text a scrape returns: every process's counters and the log's gauges, and its type."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    if os.environ.get(MULTIPROC_ENV):
        MultiProcessCollector(registry)
    else:
        registry.register(_Local())
    registry.register(_LogCollector(health))
    return generate_latest(registry), CONTENT_TYPE_LATEST


def prepare_multiprocess(directory: Path) -> None:
    """Give this process and the workers it forks one fresh directory for their counters.

    Files left by an earlier run are removed: they would be counted again.
    """
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    for stale in directory.glob("*.db"):
        stale.unlink()
    os.environ[MULTIPROC_ENV] = str(directory)


def worker_exited(pid: int) -> None:
    """gunicorn's child_exit hook: the dead worker's live gauges stop counting."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


class _Local:
    """This process's own metrics (no gunicorn: tests, `flask run`)."""

    def collect(self) -> Iterator[Any]:
        yield from _metrics().registry.collect()


class _LogCollector:
    """Gauges read from the database when scraped."""

    def __init__(self, health: Callable[[], LogHealth]):
        self.health = health

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        found = self.health()
        yield GaugeMetricFamily("ledger_log_head", "Seq of the log's last event.", found.head)
        lag_events = GaugeMetricFamily(
            "ledger_projection_lag_events", "Events a read model has not applied yet.",
            labels=["projection"],
        )  # fmt: skip
        lag_seconds = GaugeMetricFamily(
            "ledger_projection_lag_seconds",
            "Age of the oldest event a read model has not applied yet.",
            labels=["projection"],
        )
        for name, lag in sorted(found.lags.items()):
            lag_events.add_metric([name], lag.events)
            lag_seconds.add_metric([name], lag.seconds)
        yield lag_events
        yield lag_seconds
        yield from _audit_gauges(found)
        yield from _checkpoint_gauges(found)


def _audit_gauges(found: LogHealth) -> Iterator[Any]:
    """Absent until the store was audited once: no result is not a passing result."""
    from prometheus_client.core import GaugeMetricFamily

    run = found.last_audit
    if run is None:
        return
    yield GaugeMetricFamily(
        "ledger_last_audit_ok", "1 if the latest `ledger audit verify` passed, else 0.", int(run.ok)
    )
    yield GaugeMetricFamily(
        "ledger_last_audit_timestamp_seconds", "When it ran (Unix time).", run.at.timestamp()
    )
    yield GaugeMetricFamily("ledger_last_audit_events", "Events it verified.", run.size)


def _checkpoint_gauges(found: LogHealth) -> Iterator[Any]:
    from prometheus_client.core import GaugeMetricFamily

    if found.checkpoint_age_s is None or found.checkpoint_size is None:
        return
    yield GaugeMetricFamily(
        "ledger_checkpoint_age_seconds", "Age of the latest signed checkpoint.",
        found.checkpoint_age_s,
    )  # fmt: skip
    yield GaugeMetricFamily(
        "ledger_checkpoint_unsigned_events", "Events newer than the latest checkpoint.",
        max(found.head - found.checkpoint_size, 0),
    )  # fmt: skip
