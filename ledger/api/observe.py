"""Per request: its id, its latency by route in the metrics, and one access log line.

The id is the client's `X-Request-Id` when it is a short token of safe
characters (so no attacker-chosen junk reaches the logs), else a fresh one; it
is echoed in the response header, set for every log line the request causes
and put in problem+json bodies, so a client's report finds its log lines.
Latency is labelled by route template (`/v/<code>`), never by raw path: the
metrics stay bounded and hold nothing personal.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

from flask import Flask, request

from ledger import metrics
from ledger.log_redaction import redact_method
from ledger.logs import REQUEST_ID

HEADER = "X-Request-Id"
ID_KEY = "ledger.request_id"
ROUTE_KEY = "ledger.route"
SANE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
UNMATCHED = "unmatched"
access = logging.getLogger("ledger.access")


def request_id(candidate: str | None) -> str:
    """The client's id if it is a sane token (at most 64 of `A-Z a-z 0-9 . _ : -`), else a new one."""
    return candidate if candidate and SANE_ID.fullmatch(candidate) else uuid.uuid4().hex


def current_request_id() -> str | None:
    """This request's id (set by RequestObserver), or None outside a request."""
    return request.environ.get(ID_KEY) if request else None


class RequestObserver:
    """Outermost WSGI middleware: id, timing, metrics and the access line of each request."""

    def __init__(self, app: Callable[..., Any], access_log: bool):
        self.app = app
        self.access_log = access_log

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        rid = environ[ID_KEY] = request_id(environ.get("HTTP_X_REQUEST_ID"))
        token = REQUEST_ID.set(rid)
        started = time.perf_counter()
        status = [500]

        def start(line: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            status[0] = int(line.split(" ", 1)[0])
            headers.append((HEADER, rid))
            return start_response(line, headers, exc_info)

        try:
            return self.app(environ, start)
        finally:
            self._done(environ, status[0], time.perf_counter() - started)
            REQUEST_ID.reset(token)

    def _done(self, environ: dict[str, Any], status: int, seconds: float) -> None:
        route = environ.get(ROUTE_KEY, UNMATCHED)
        method = redact_method(environ.get("REQUEST_METHOD", ""))
        metrics.observe_request(route, method, status, seconds)
        if self.access_log:
            duration_ms = round(seconds * 1000, 2)
            access.info(
                "%s %s %d %.2f ms", method, route, status, duration_ms,
                extra={"route": route, "method": method, "status": status,
                       "duration_ms": duration_ms},
            )  # fmt: skip


def init_observe(app: Flask, access_log: bool) -> None:
    """Wrap `app` (after every other middleware) and note each request's route template."""

    def note_route() -> None:
        rule = request.url_rule
        request.environ[ROUTE_KEY] = rule.rule if rule is not None else UNMATCHED

    app.before_request_funcs.setdefault(None, []).insert(0, note_route)
    app.wsgi_app = RequestObserver(app.wsgi_app, access_log)  # type: ignore[method-assign]
