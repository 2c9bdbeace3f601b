"""Every serving process sends webhooks on its own: no operator call, no cron needed."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from ledger.store.db import StoreError

log = logging.getLogger(__name__)


class WebhookLoop:
    """Runs `dispatch` every `interval` seconds on a daemon thread until stopped.

    Several processes and nodes may each run one: deliveries are claimed one at
    a time (see `Webhooks.claim`), so a delivery is never sent twice at once. A
    failing dispatch is logged and tried again next interval; it never ends the
    thread or the worker.
    """

    def __init__(self, dispatch: Callable[[], object], interval: float):
        self.dispatch = dispatch
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="webhooks", daemon=True)

    def start(self) -> WebhookLoop:
        self._thread.start()
        return self

    def stop(self, timeout: float = 15.0) -> None:
        """Ask the thread to end and wait a while for the round in progress.

        A send cut short by the process's exit keeps its lease, which expires: it is sent again.
        """
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.dispatch()
            except StoreError as exc:  # the database is down: try again next interval
                log.warning("webhooks: %s", str(exc).splitlines()[0] if str(exc) else exc)
            except Exception:
                log.exception("webhooks: dispatch failed")
