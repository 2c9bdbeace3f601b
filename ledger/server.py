"""Run the WSGI app under gunicorn from the `ledger serve` command.

Each worker builds its own app after the fork (no preload), so no database
connection or key handle is shared between processes.
"""

from __future__ import annotations

from typing import Any

from gunicorn.app.base import BaseApplication


class LedgerServer(BaseApplication):
    def __init__(self, options: dict[str, Any]):
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from ledger.api import create_app

        return create_app()


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
