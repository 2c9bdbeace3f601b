"""Servers the HTTP benches start: a free port, and a process that answers before it is measured."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def started(
    command: list[str], url: str, env: dict[str, str], log: Path | None = None, seconds: float = 60
) -> subprocess.Popen:
    """Start `command` in the project folder; return once `url` answers (any HTTP status).

    Output goes to `log` (appended) if given. A server that exits or stays silent
    ends the bench with one line naming it (and the tail of its log).
    """
    out = log.open("ab") if log else None
    try:
        proc = subprocess.Popen(command, env=env, cwd=ROOT, stdout=out, stderr=out)
    finally:
        if out:
            out.close()
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return proc
        except urllib.error.HTTPError:
            return proc
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.2)
    proc.kill()
    tail = log.read_text(errors="replace")[-2000:] if log else ""
    raise SystemExit(f"{' '.join(command[:4])} did not start\n{tail}".rstrip())
