"""Untrusted PDFs are parsed in a child process with memory, CPU and time limits.

A small upload can inflate to gigabytes (a compressed object stream) or keep a
renderer busy for minutes. The public attestation check therefore never parses
an uploaded PDF in the serving process: each check runs in a process forked
from a clean fork server, under RLIMIT_AS and RLIMIT_CPU (inherited by the
renderer it executes), killed after a wall-clock timeout; a few at a time per
process, the others told to retry. What exceeds the limits is reported as a
file too complex to check, and the worker that served the request lives on.
"""

from __future__ import annotations

import logging
import multiprocessing
import resource
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, TypeVar

MEMORY_BYTES = 1 << 30  # address space of the child (and of pdftoppm, which inherits it)
CPU_SECONDS = 20
WALL_SECONDS = 30.0
CONCURRENT = 2  # checks at once per serving process
QUEUE_WAIT_SECONDS = 5.0

T = TypeVar("T")
_context = multiprocessing.get_context("forkserver")
_context.set_forkserver_preload(["ledger.services.attestation_check"])  # forks start warm
_slots = threading.BoundedSemaphore(CONCURRENT)


class SandboxBusy(Exception):
    """Every check slot is taken: the client should retry shortly."""


class LimitsExceeded(Exception):
    """The file used more memory, CPU or time than a genuine attestation ever needs."""


def run_isolated(work: Callable[..., T], *args: Any) -> T:
    """`work(*args)` in a limited child process; its result, or LimitsExceeded / SandboxBusy."""
    if not _slots.acquire(timeout=QUEUE_WAIT_SECONDS):
        raise SandboxBusy("too many attestation checks at once; retry shortly")
    try:
        return _run(work, args)
    finally:
        _slots.release()


def _run(work: Callable[..., T], args: tuple[Any, ...]) -> T:
    receive, send = _context.Pipe(duplex=False)
    limits = (MEMORY_BYTES, CPU_SECONDS)
    child = _context.Process(target=_child, args=(send, limits, work, args), daemon=True)
    child.start()
    send.close()
    try:
        if not receive.poll(WALL_SECONDS):
            raise LimitsExceeded(f"the check took longer than {WALL_SECONDS:.0f} s")
        ok, value = receive.recv()
    except EOFError:  # killed by a limit before it could answer
        raise LimitsExceeded("the file exceeded the memory or CPU limits of a check") from None
    finally:
        if child.is_alive():
            child.kill()
        child.join()
        receive.close()
    if not ok:
        raise LimitsExceeded(value)
    return value


def _child(
    send: Connection, limits: tuple[int, int], work: Callable[..., Any], args: tuple[Any, ...]
) -> None:
    memory, cpu = limits
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
    try:
        send.send((True, work(*args)))
    except MemoryError:
        send.send((False, "the file exceeded the memory limit of a check"))
    except Exception:  # the checks catch what a bad file causes: log it, never echo it
        logging.getLogger("ledger.attestation").exception("attestation check failed")
        send.send((False, "the check could not complete on this file"))
    finally:
        send.close()
