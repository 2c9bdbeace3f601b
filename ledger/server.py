"""Run the WSGI app under gunicorn from the `ledger serve` command.

Each worker builds its own app after the fork (no preload), so no database
connection or key handle is shared between processes.
"""

from __future__ import annotations

import sys
from typing import Any

from gunicorn.app.base import BaseApplication

WORKER_BOOT_ERROR = 3  # gunicorn's exit status that stops the master instead of respawning


def load_app() -> Any:
    """The WSGI app, or exit with one line when there is no ledger or no database."""
    from ledger.api import create_app
    from ledger.config import ConfigError
    from ledger.store.db import StoreError

    try:
        return create_app()
    except (ConfigError, StoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(WORKER_BOOT_ERROR) from None


class LedgerServer(BaseApplication):
    def __init__(self, options: dict[str, Any]):
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return load_app()


def run(host: str, port: int, workers: int) -> None:
    LedgerServer(
        {
            "bind": f"{host}:{port}",
            "workers": workers,
            "worker_class": "gthread",
            "threads": 4,
            "accesslog": "-",
            "timeout": 60,
            "graceful_timeout": 10,
        }
    ).run()
