"""Where the ledger's CPU goes during a step, sampled with py-spy when it is installed (optional).

py-spy samples every process of `ledger serve` (gunicorn's workers, the projection
runner) without stopping them, counting only samples that hold the GIL (Python
running, not a thread waiting on a socket or a lock); each sample's innermost frame is charged to its
module's package (`ledger/store`, `psycopg`, `cryptography`, `json`, …), so the
summary says which layer spends the time: HTTP, the framework, validation, the
database driver, signing.
"""

from __future__ import annotations

import collections
import shutil
import subprocess
import sys
from pathlib import Path

RATE = 50  # samples per second and process: light enough on a busy machine


def py_spy() -> str | None:
    """py-spy beside this interpreter or on the PATH, or None."""
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


def start(pid: int, seconds: float, out: Path) -> subprocess.Popen | None:
    """Sample `pid` and its children for `seconds` into `out` (collapsed stacks), if possible."""
    binary = py_spy()
    if binary is None:
        return None
    command = [binary, "record", "--pid", str(pid), "--subprocesses", "--nonblocking", "--gil",
               "--nolineno", "--format", "raw", "--rate", str(RATE),
               "--duration", str(max(1, int(seconds))), "--output", str(out)]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def package(frame: str) -> str:
    """`sign (ledger/crypto.py)` -> `ledger/crypto.py`'s package, `ledger`; stdlib by module."""
    path = frame.rsplit("(", 1)[-1].rstrip(")")
    parts = path.split("/")
    if parts[0] == "ledger" and len(parts) > 2:
        return "/".join(parts[:2])
    if len(parts) == 1:
        name = parts[0]
        return f"stdlib {name.removesuffix('.py')}" if name.endswith(".py") else f"template {name}"
    return parts[0]


def shares(collapsed: Path, top: int = 10) -> list[tuple[str, float]]:
    """The `top` packages by share of the samples' innermost frames."""
    counts: collections.Counter = collections.Counter()
    if not collapsed.exists():
        return []
    for line in collapsed.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            counts[package(stack.rsplit(";", 1)[-1])] += int(count)
    total = sum(counts.values()) or 1
    return [(name, n / total) for name, n in counts.most_common(top)]
