"""Run the witness under gunicorn (gthread), as `ledger serve` runs the ledger.

Each worker opens the key and builds the app after the fork; the workers share
only the state file, whose write lock serialises the check-and-store. gunicorn's
own error pages (malformed HTTP, oversize headers) are one plain-text line, as
the protocol is text.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gunicorn import util
from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter
from gunicorn.workers.gthread import ThreadWorker

from ledger.keys import KeyFileError
from ledger.trust import TrustError
from ledger.witness import identity
from ledger.witness.app import make_app
from ledger.witness.state import StateError
from ledger.witness.witness import Witness, log_keys

THREADS = 4


def build(directory: Path, logs: Sequence[str]) -> Witness:
    """The witness of DIR trusting the log keys `logs`; KeyFileError/TrustError when unusable."""
    vkey, key = identity.load(directory)
    state = identity.state(directory)
    state.origins()  # fails now, with one line, if the state file is missing or unreadable
    return Witness(vkey, key, log_keys(logs), state)


def write_text_error(sock: Any, status: int, reason: str, _message: str) -> None:
    """gunicorn's error page as one text line, never quoting what the client sent."""
    body = f"{status} {reason}\n".encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + body)


class TextWorker(ThreadWorker):
    def init_process(self) -> None:
        util.write_error = write_text_error
        super().init_process()


class WitnessServer(BaseApplication):
    def __init__(self, options: dict[str, Any], directory: Path, logs: Sequence[str]):
        self.options, self.directory, self.logs = options, directory, list(logs)
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        try:
            return make_app(build(self.directory, self.logs))
        except (KeyFileError, StateError, TrustError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(Arbiter.WORKER_BOOT_ERROR) from None  # no respawn loop


def run(directory: Path, logs: Sequence[str], host: str, port: int, workers: int) -> None:
    build(directory, logs)  # a bad key, state or log key fails here, not in every worker
    WitnessServer(
        {
            "bind": f"{host}:{port}",
            "control_socket_disable": True,
            "workers": workers,
            "worker_class": "ledger.witness.server.TextWorker",
            "threads": THREADS,
            "accesslog": "-",
            "timeout": 30,
            "graceful_timeout": 10,
        },
        directory,
        logs,
    ).run()
