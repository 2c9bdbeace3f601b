"""A periodic task on a daemon thread of a serving process: checkpoints, webhooks.

A failing round is logged and tried again at the next interval; it never ends
the thread or the worker. A database fault is one warning line, not a traceback.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from ledger.store.db import StoreError

log = logging.getLogger(__name__)


class Every:
    """Runs `action` every `interval` seconds on a daemon thread named `name` until stopped."""

    def __init__(
        self, name: str, action: Callable[[], object], interval: float, stop_timeout: float = 5.0
    ):
        self.name = name
        self.action = action
        self.interval = interval
        self.stop_timeout = stop_timeout
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> Every:
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Ask the thread to end and wait a while for the round in progress."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(self.stop_timeout if timeout is None else timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.action()
            except StoreError as exc:  # the database is down: try again next interval
                log.warning("%s: %s", self.name, str(exc).splitlines()[0] if str(exc) else exc)
            except Exception:
                log.exception("%s: round failed", self.name)
