"""Run the WSGI app under gunicorn from the `ledger serve` command.

Each worker builds its own app after the fork (no preload), so no database
connection or key handle is shared between processes. The access log goes
through `ledger.log_redaction`: no query value and no personal path segment is
ever written. Each server gets its own gunicorn control socket in the runtime
dir, named after its address: gunicorn's default is one path per user, so a
second server on the host would take the first one's socket over and delete it
on exit. Requests gunicorn refuses itself, before the app sees them (oversize
headers or request line, malformed HTTP), are answered in problem+json like
every other error. Workers share one directory of metrics files in the
runtime dir (`ledger.metrics`), emptied when the server starts.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from gunicorn import util
from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger
from gunicorn.workers.gthread import ThreadWorker

from ledger.api.problems import PROBLEM_JSON, TITLES
from ledger.log_redaction import (
    redact_method,
    redact_path,
    redact_query,
    redact_request_line,
    redact_target,
)
from ledger.logs import JsonFormatter, RequestIdFilter
from ledger.metrics import prepare_multiprocess
from ledger.supervisor import stop_child


class RedactingLogger(Logger):
    """Gunicorn's logger with request targets redacted and no header values at all."""

    def atoms(self, resp: Any, req: Any, environ: dict, request_time: Any) -> dict[str, Any]:
        found = super().atoms(resp, req, environ, request_time)
        atoms = {k: v for k, v in found.items() if not k.startswith("{")}
        atoms["r"] = redact_request_line(str(atoms["r"]))
        atoms["m"] = redact_method(str(atoms.get("m")))
        atoms["U"] = redact_path(environ.get("PATH_INFO") or "")
        atoms["q"] = redact_query(environ.get("QUERY_STRING") or "")
        atoms["f"] = redact_target(atoms["f"]) if atoms.get("f", "-") != "-" else "-"
        return atoms

    def warning(self, msg: str, *args: Any, **kwargs: Any) -> None:
        """`Invalid request from ip=…: <error quoting the request line or a header>`: unquoted."""
        super().warning(re.sub(r"'.*'", "'*'", msg, flags=re.DOTALL), *args, **kwargs)

    def exception(self, msg: str, *args: Any, **kwargs: Any) -> None:
        """`Error handling request <uri>`: the URI is redacted like the access log's."""
        safe = tuple(
            redact_target(a) if isinstance(a, str) and a.startswith("/") else a for a in args
        )
        super().exception(msg, *safe, **kwargs)


class JsonLogger(RedactingLogger):
    """The same logger, its error log lines as JSON objects like the app's."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for handler in self.error_log.handlers:
            handler.setFormatter(JsonFormatter())
            handler.addFilter(RequestIdFilter())


WORKER_BOOT_ERROR = 3  # gunicorn's exit status that stops the master instead of respawning


def load_app() -> Any:
    """The WSGI app, or exit with one line when there is no ledger or no database.

    The serving process also signs checkpoints on schedule (a background loop
    ticks its Checkpointer every second) and, unless LEDGER_WEBHOOK_INTERVAL_S
    is 0, sends webhooks; both loops are stopped when the process exits.
    """
    from ledger.api import create_app
    from ledger.config import ConfigError
    from ledger.services.checkpoints import CheckpointLoop
    from ledger.services.webhook_loop import WebhookLoop
    from ledger.store.db import StoreError
    from ledger.trust import TrustError

    try:
        app = create_app()
    except (ConfigError, StoreError, TrustError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(WORKER_BOOT_ERROR) from None
    st = app.extensions["ledger"]
    loop = CheckpointLoop(st.checkpoints).start()
    atexit.register(loop.stop)
    if st.config.webhook_interval_s:
        hooks = WebhookLoop(st.dispatch_webhooks, st.config.webhook_interval_s).start()
        atexit.register(hooks.stop)
    return app


GUNICORN_PROBLEMS = {  # status: (code, detail); the detail never quotes what the client sent
    400: ("malformed-request", "the request is not valid HTTP/1.1"),
    403: ("forbidden", "the request is forbidden"),
    414: ("uri-too-long", "the request line is longer than 4094 bytes"),
    417: ("expectation-failed", "the Expect header cannot be met"),
    431: ("header-fields-too-large", "at most 100 header fields of at most 8190 bytes each"),
    501: ("not-implemented", "the transfer coding is not supported"),
}


def write_problem(sock: Any, status: int, reason: str, _message: str) -> None:
    """gunicorn's error page, as RFC 9457 problem+json instead of HTML."""
    code, detail = GUNICORN_PROBLEMS.get(status, ("http-error", reason))
    body = json.dumps(
        {
            "type": f"/problems/{code}",
            "title": TITLES.get(status, reason),
            "status": status,
            "detail": detail,
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
        return load_app()


MAX_SOCKET_PATH = 100  # AF_UNIX paths are at most 107 bytes


def _address_name(host: str, port: int) -> str:
    """The bound address as a file name: one control socket and metrics dir per server."""
    return f"{re.sub(r'[^A-Za-z0-9.-]', '_', host)}-{port}"


def control_socket(runtime_dir: Path, host: str, port: int) -> dict[str, Any]:
    """Gunicorn options giving this server its own control socket, or none at all.

    One per bound address (`gunicornc -s PATH`); disabled when the runtime dir's
    path is too long for a Unix socket rather than falling back to a shared one.
    """
    runtime_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = runtime_dir / f"gunicorn-{_address_name(host, port)}.ctl"
    if len(str(path).encode()) > MAX_SOCKET_PATH:
        return {"control_socket_disable": True}
    return {"control_socket": str(path)}


SUPERVISOR_STOP_S = 15.0  # the supervisor's own wait for the runner, and a margin


class ProjectionRunner:
    """The projection runner's supervisor (ledger/supervisor.py), a child of `ledger serve`.

    Started before gunicorn forks any worker; `stop` ends it and its runner.
    """

    def __init__(self) -> None:
        self._process: subprocess.Popen | None = None

    def start(self) -> ProjectionRunner:
        command = [sys.executable, "-m", "ledger.supervisor", str(os.getpid())]
        self._process = subprocess.Popen(command)
        return self

    def stop(self) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            stop_child(process, SUPERVISOR_STOP_S)


def _child_exit(_server: Any, worker: Any) -> None:
    from ledger.metrics import worker_exited

    worker_exited(worker.pid)


def metrics_dir(runtime_dir: Path, host: str, port: int) -> Path:
    """This server's own directory of worker metrics files, named like its control socket."""
    return runtime_dir / f"metrics-{_address_name(host, port)}"


def run(
    host: str,
    port: int,
    workers: int,
    runtime_dir: Path,
    log_format: str = "json",
    threads: int = 8,
) -> None:
    """Serve until stopped; in `json` log format the app writes the access lines itself."""
    prepare_multiprocess(metrics_dir(runtime_dir, host, port))
    LedgerServer(
        {
            "bind": f"{host}:{port}",
            **control_socket(runtime_dir, host, port),
            "workers": workers,
            "worker_class": "ledger.server.ProblemWorker",
            "threads": threads,
            "accesslog": None if log_format == "json" else "-",
            "logger_class": JsonLogger if log_format == "json" else RedactingLogger,
            "child_exit": _child_exit,
            "timeout": 60,
            "graceful_timeout": 10,
        }
    ).run()
