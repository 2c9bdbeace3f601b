"""A real `ledger serve` (gunicorn) in a subprocess, for the tests that need one."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(
    database_url: str,
    keys_dir: str | Path,
    *,
    workers: int = 1,
    env: Mapping[str, str] | None = None,
    clean_env: bool = False,
    port: int | None = None,
    stdout: int | IO[Any] = subprocess.DEVNULL,
    timeout: float = 30,
    stop_timeout: float = 20,
) -> Iterator[tuple[str, subprocess.Popen]]:
    """Run `ledger serve` on a store; yield its base URL and process once it answers.

    The environment is this process's (without its LEDGER_* variables if
    `clean_env`), the store's URL and keys directory, then `env`. Output and
    errors go to `stdout`. Waits up to `timeout` seconds for /api/v1/health, and
    fails at once if the server exits first. On leaving, terminates the server
    (if still running) and waits for it.
    """
    port = port or free_port()
    environment = {
        k: v for k, v in os.environ.items() if not (clean_env and k.startswith("LEDGER_"))
    }
    environment.update(LEDGER_DATABASE_URL=database_url, LEDGER_KEYS_DIR=str(keys_dir))
    environment.update(env or {})
    server = subprocess.Popen(
        [sys.executable, "-m", "ledger.cli", "serve", "--port", str(port), "--workers", str(workers)],
        env=environment, stdout=stdout, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(server, base, timeout)
        yield base, server
    finally:
        server.terminate()
        server.wait(timeout=stop_timeout)


def _wait_until_up(server: subprocess.Popen, base: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if server.poll() is not None:
            raise AssertionError(f"ledger serve on {base} exited early with {server.returncode}")
        try:
            with urllib.request.urlopen(f"{base}/api/v1/health", timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                server.kill()
                raise AssertionError(
                    f"ledger serve on {base} did not answer within {timeout} s"
                ) from None
            time.sleep(0.2)
