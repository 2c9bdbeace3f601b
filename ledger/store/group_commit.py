"""Group commit: concurrent writers of one process share one append transaction.

The chain is one global order, so appends are serialized; what is expensive is
the transaction around them (lock, head read, commit round trip and fsync). A
writer queues its prepared request; the first one free becomes the leader, takes
every queued request and runs them in one transaction; the others sleep until
it finishes. Each request keeps its own result or exception, and is answered
only once the leader's transaction is over, so nothing is acknowledged before
its commit.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ledger.store.db import StoreUnavailable

MAX_GROUP = 256  # requests per transaction: bounds its size and the leader's work


@dataclass
class Request:
    """One writer's append, answered by whichever leader runs it."""

    payload: Any
    result: Any = None
    error: BaseException | None = None
    done: bool = False

    def succeed(self, result: Any) -> None:
        self.result, self.done = result, True

    def fail(self, error: BaseException) -> None:
        self.error, self.done = error, True

    def outcome(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.result


class LeaderFailed(StoreUnavailable):
    """The leader stopped before answering this request: nothing of it was committed (503)."""


class GroupCommit:
    """Runs queued requests in groups through `run`, which answers each one it commits."""

    def __init__(self, run: Callable[[list[Request]], None]):
        self._run = run
        self._cond = threading.Condition()
        self._queue: list[Request] = []
        self._leading = False
        self.groups = 0  # transactions led: appends / groups is the batching achieved

    def waiting(self) -> int:
        """Requests queued for the next group."""
        with self._cond:
            return len(self._queue)

    def submit(self, payload: Any) -> Any:
        """Queue `payload`, lead a group or wait for the leader; its result or exception."""
        request = Request(payload)
        with self._cond:
            self._queue.append(request)
        while True:
            with self._cond:
                while self._leading and not request.done:
                    self._cond.wait()
                if request.done:
                    return request.outcome()
                self._leading = True
                self.groups += 1
                group, self._queue = self._queue[:MAX_GROUP], self._queue[MAX_GROUP:]
            try:
                self._lead(group)
            finally:
                with self._cond:
                    self._leading = False
                    self._cond.notify_all()

    def _lead(self, group: list[Request]) -> None:
        """Run the group; any request `run` left unanswered fails with the error that stopped it.

        An interruption of the leader's own thread (SystemExit, KeyboardInterrupt) is its
        own: the others get LeaderFailed, a retry-later error, and the leader re-raises.
        """
        try:
            self._run(group)
        except Exception as exc:
            _fail_unanswered(group, exc)
        except BaseException:
            _fail_unanswered(group, LeaderFailed("the append was interrupted"))
            raise
        _fail_unanswered(group, LeaderFailed("the append stopped before this request was written"))


def _fail_unanswered(group: list[Request], error: BaseException) -> None:
    for request in group:
        if not request.done:
            request.fail(error)
