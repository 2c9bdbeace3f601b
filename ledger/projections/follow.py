"""`ledger projections run`: the process that follows the log and writes the read models.

API workers in runner mode only read the read models; this loop applies new
events to every projection, a page per transaction together with its
position (ledger/projections/runner.py), so a kill at any moment neither
loses nor repeats an event: a restart goes on from the last committed page.
Between rounds it sleeps until the log grows: on PostgreSQL the append
transaction's NOTIFY wakes it at once; on SQLite, or should a notification
be missed, it polls. Two runners never apply the same page: the
per-projection locks make the second one wait its turn.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from ledger.projections.runner import PAGE, Projection, catch_up, head
from ledger.store.db import Database, Listener, StoreError, StoreUnavailable

WAIT_SLICE_S = 0.5  # a stop request is noticed within this while idle
log = logging.getLogger("ledger.projections")


@dataclass
class Follower:
    """Applies the log to `projections` until `stop` is set."""

    db: Database
    projections: Sequence[Projection]
    page: int = PAGE
    poll_s: float = 1.0
    parent: int | None = None  # started by `ledger serve`: end when it is gone
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self, once: bool = False) -> int:
        """Catch up, then (unless `once`) follow; return the head last caught up to."""
        listener = self.db.listener()
        reached = 0
        try:
            while not self.stop.is_set() and not self._orphaned():
                reached = self.step(raise_errors=once) or reached
                if once:
                    break
                self._sleep(listener)
        finally:
            listener.close()
        return reached

    def step(self, raise_errors: bool = False) -> int:
        """One round: every projection up to the head; 0 when the database failed."""
        try:
            latest = head(self.db)
            started = time.monotonic()
            stalled = catch_up(self.db, self.projections, self.page, self.stop.is_set, latest)
        except StoreError as exc:
            if raise_errors:
                raise
            log.warning("projections: %s", str(exc).splitlines()[0] if str(exc) else exc)
            return 0
        log.debug("projections at seq %d in %.1f ms", latest, (time.monotonic() - started) * 1e3)
        if stalled:
            log.error("projections stalled: %s", ", ".join(sorted(stalled)))
        return latest

    def _orphaned(self) -> bool:
        """True once the server that started this runner died (even by SIGKILL)."""
        if self.parent is None or os.getppid() == self.parent:
            return False
        log.warning("projections: the server that started this runner is gone; stopping")
        return True

    def _sleep(self, listener: Listener) -> None:
        """Until a notification, the poll interval or a stop request, whichever comes first."""
        deadline = time.monotonic() + self.poll_s
        while not self.stop.is_set() and not self._orphaned():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            try:
                if listener.wait(min(remaining, WAIT_SLICE_S)):
                    return
            except StoreUnavailable as exc:  # no LISTEN connection: plain polling meanwhile
                log.warning("projections: %s", exc)
                self.stop.wait(min(remaining, WAIT_SLICE_S))
