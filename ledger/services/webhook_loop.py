"""Every serving process sends webhooks on its own: no operator call, no cron needed."""

from __future__ import annotations

from collections.abc import Callable

from ledger.services.background import Every


class WebhookLoop(Every):
    """Runs `dispatch` every `interval` seconds until stopped.

    Several processes and nodes may each run one: deliveries are claimed one at
    a time (see `Webhooks.claim`), so a delivery is never sent twice at once. A
    send cut short by the process's exit keeps its lease, which expires: it is
    sent again.
    """

    def __init__(self, dispatch: Callable[[], object], interval: float):
        super().__init__("webhooks", dispatch, interval, stop_timeout=15.0)
