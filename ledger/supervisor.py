"""Keeps `ledger projections run` alive beside `ledger serve`, from a process of its own.

gunicorn's master forks workers at any moment: a child started from one of its
threads can have its exec-status pipe inherited by a worker being forked and
then wait for that worker to exit. So the master starts this single-threaded
supervisor once, before any worker exists; it restarts the runner whenever it
dies (a kill -9 too: each page commits with its position, so nothing is lost),
stops it on SIGTERM, and ends with the server even if the server is killed.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading

RUNNER = (sys.executable, "-m", "ledger.cli", "projections", "run")
POLL_S = 0.2
RESTART_S = 1.0
STOP_S = 10.0
log = logging.getLogger("ledger.supervisor")


def stop_child(child: subprocess.Popen, timeout: float = STOP_S) -> None:
    """SIGTERM (the runner finishes its page), SIGKILL if it does not end in `timeout` s."""
    child.terminate()
    try:
        child.wait(timeout)
    except subprocess.TimeoutExpired:
        child.kill()  # safe: an unfinished page rolls back
        child.wait()


def supervise(server: int) -> None:
    """Run the runner until SIGTERM or until `server` (our parent) is gone."""
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())

    def serving() -> bool:
        return not stopping.is_set() and os.getppid() == server

    while serving():
        child = subprocess.Popen([*RUNNER, "--parent", str(os.getpid())])
        while child.poll() is None and serving():
            stopping.wait(POLL_S)
        if child.poll() is None:
            stop_child(child)
            return
        log.warning("projection runner exited with status %s; restarting it", child.returncode)
        stopping.wait(RESTART_S)


if __name__ == "__main__":
    from ledger import logs
    from ledger.config import setting

    logs.configure(setting("LEDGER_LOG_LEVEL"), setting("LEDGER_LOG_FORMAT"))  # as the server's
    supervise(int(sys.argv[1]))
