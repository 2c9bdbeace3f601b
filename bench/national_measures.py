"""What the national bench reads around each step: CPU per process group, the server's metrics.

CPU comes from /proc (`schedstat` of every thread: time on a core and time runnable
but waiting for one), so the ledger's processes, the PostgreSQL backends serving
them and the load generator are told apart on a machine shared with other jobs.
The server's own view comes from its `/metrics`: latency histograms per route, the
append-lock wait, the projection lag.
"""

from __future__ import annotations

import math
import urllib.request
from pathlib import Path
from typing import Any

APP = "ledger-bench-national"  # the application name of the ledger's PostgreSQL sessions


def sched(pid: int) -> tuple[float, float]:
    """Seconds on a CPU and seconds runnable but waiting for one, over the process's threads."""
    run = wait = 0
    for task in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        try:
            fields = task.read_text().split()
        except OSError:
            continue
        run, wait = run + int(fields[0]), wait + int(fields[1])
    return run / 1e9, wait / 1e9


def tree(root: int) -> list[int]:
    """`root` and every descendant, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def backends(database: str | None) -> list[int]:
    """PIDs of the PostgreSQL backends serving this bench's ledger (by application name)."""
    if not database:
        return []
    import psycopg

    with psycopg.connect(database, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (APP,)
        ).fetchall()
    return [pid for (pid,) in rows]


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def cpu(ctx: dict[str, Any]) -> dict[str, dict[int, tuple[float, float]]]:
    """(on CPU, waiting for a CPU) seconds so far per process: the ledger, its backends, load."""
    ledger = tree(ctx["server"].pid)
    return {
        "ledger": {p: sched(p) for p in ledger},
        "runner": {p: sched(p) for p in ledger if b"projections" in cmdline(p)},
        "postgres": {p: sched(p) for p in backends(ctx["database"])},
        "load": {load.pid: sched(load.pid) for load in ctx["loads"]},
    }


def cores(before: dict, after: dict, wall: float, which: int) -> dict[str, float]:
    """Cores used (which=0) or waited for (1) per group, by processes alive at both ends."""
    return {
        group: sum(
            after[group][p][which] - before[group].get(p, (0.0, 0.0))[which] for p in after[group]
        )
        / wall
        for group in after
    }


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    """The /metrics samples, keyed by (name, sorted labels)."""
    from prometheus_client.parser import text_string_to_metric_families

    text = urllib.request.urlopen(f"{url}/metrics", timeout=10).read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def lag(samples: dict[tuple[str, tuple], float]) -> tuple[float, float, str]:
    """The largest projection lag, in events and in seconds, and the read model behind most."""
    events = {dict(k[1]).get("projection", "?"): v for k, v in samples.items()
              if k[0] == "ledger_projection_lag_events"}  # fmt: skip
    seconds = [v for (n, _), v in samples.items() if n == "ledger_projection_lag_seconds"]
    worst = max(events, key=events.get, default="-")
    return events.get(worst, 0.0), max(seconds, default=0.0), worst


def time_spent(before: dict, after: dict) -> dict[str, tuple[float, float]]:
    """(count, mean ms) during the step: per route of the server, and the append-lock wait."""
    out = {}
    for (name, labels), total in after.items():
        if name.endswith("_sum") and name.startswith(
            ("ledger_http_request_duration", "ledger_append_lock_wait")
        ):
            count_key = (name[:-4] + "_count", labels)
            count = after.get(count_key, 0) - before.get(count_key, 0)
            if count > 0:
                spent = total - before.get((name, labels), 0)
                route = dict(labels).get("route", "append-lock wait")
                method = dict(labels).get("method", "")
                key = f"{method} {route}".strip()
                was = out.get(key, (0.0, 0.0))
                out[key] = (was[0] + count, was[1] + spent)
    return {k: (c, 1000 * s / c) for k, (c, s) in out.items()}


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]
