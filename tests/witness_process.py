"""A real `ledger witness serve` (gunicorn) in a subprocess, for tests over HTTP."""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from ledger.witness import identity
from tests.served import free_port


def witness_init(directory: Path, name: str) -> str:
    """What `ledger witness init` does (in process: it saves an interpreter start); the vkey."""
    return str(identity.init(directory, name))


@contextmanager
def witness_process(
    log_vkeys: Sequence[str],
    directory: Path | None = None,
    *,
    name: str = "witness.test/w1",
    workers: int = 1,
    timeout: float = 30,
) -> Iterator[tuple[str, str, Path]]:
    """Run a witness trusting `log_vkeys`; yield (base URL, witness vkey, its directory).

    A `directory` already initialised is reused (a restart keeps its state); else
    one is created in a temporary directory. Fails at once if the server exits
    before answering; stops it on leaving.
    """
    with tempfile.TemporaryDirectory() as scratch:
        where = directory or Path(scratch) / "witness"
        if not (where / "witness.key").exists():
            witness_init(where, name)
        vkey = (where / "witness.vkey").read_text(encoding="utf-8").strip()
        port = free_port()
        logs = [arg for vkey_text in log_vkeys for arg in ("--log", vkey_text)]
        server = subprocess.Popen(
            [sys.executable, "-m", "ledger.cli", "witness", "serve", "--dir", str(where),
             "--port", str(port), "--workers", str(workers), *logs],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            _wait_until_up(server, base, timeout)
            yield base, vkey, where
        finally:
            server.send_signal(signal.SIGINT)  # gunicorn's quick stop: the state is committed
            server.wait(timeout=20)


def _wait_until_up(server: subprocess.Popen, base: str, timeout: float) -> None:
    """Up once GET /add-checkpoint answers at all (405: the endpoint takes POST)."""
    deadline = time.monotonic() + timeout
    while True:
        if server.poll() is not None:
            raise AssertionError(f"witness on {base} exited early with {server.returncode}")
        try:
            urllib.request.urlopen(f"{base}/add-checkpoint", timeout=1).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            if time.monotonic() > deadline:
                server.kill()
                raise AssertionError(
                    f"witness on {base} did not answer within {timeout} s"
                ) from None
            time.sleep(0.1)
