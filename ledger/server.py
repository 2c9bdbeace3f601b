"""Run the WSGI app under gunicorn from the `ledger serve` command.

Each worker builds its own app after the fork (no preload), so no database
connection or key handle is shared between processes. Requests gunicorn
refuses itself, before the app sees them (oversize headers or request line,
malformed HTTP), are answered in problem+json like every other error.
"""

from __future__ import annotations

import json
from typing import Any

from gunicorn import util
from gunicorn.app.base import BaseApplication
from gunicorn.workers.gthread import ThreadWorker

from ledger.api.problems import PROBLEM_JSON, TITLES

GUNICORN_CODES = {
    400: "malformed-request",
    403: "forbidden",
    414: "uri-too-long",
    417: "expectation-failed",
    431: "header-fields-too-large",
    501: "not-implemented",
}


def write_problem(sock: Any, status: int, reason: str, message: str) -> None:
    """gunicorn's error page, as RFC 9457 problem+json instead of HTML."""
    body = json.dumps(
        {
            "type": f"/problems/{GUNICORN_CODES.get(status, 'http-error')}",
            "title": TITLES.get(status, reason),
            "status": status,
            "detail": message[:200] or reason,
        }
    ).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\n"
        f"Content-Type: {PROBLEM_JSON}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + body)


class ProblemWorker(ThreadWorker):
    """gthread worker whose own error answers are problem+json.

    gunicorn writes them with `util.write_error` and nothing else uses it,
    so the worker process swaps that one function before serving.
    """

    def init_process(self) -> None:
        util.write_error = write_problem
        super().init_process()


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
            "worker_class": "ledger.server.ProblemWorker",
            "threads": 4,
            "accesslog": "-",
            "timeout": 60,
            "graceful_timeout": 10,
        }
    ).run()
