"""The witness's HTTP side: `POST /add-checkpoint` (C2SP tlog-witness), plain text only.

A bare WSGI callable: the protocol is one text endpoint, so there is no framework
to configure. Every answer is text; a refusal is one line naming why; nothing a
client sends is echoed back, and no error becomes a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from ledger.witness.request import MAX_BODY_BYTES, Refusal
from ledger.witness.state import StateError
from ledger.witness.witness import Witness

TEXT = "text/plain; charset=utf-8"
SIZE = "text/x.tlog.size"
REASONS = {
    200: "OK",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    411: "Length Required",
    413: "Content Too Large",
    422: "Unprocessable Entity",
    503: "Service Unavailable",
}
log = logging.getLogger("ledger.witness")

StartResponse = Callable[..., Any]


def make_app(witness: Witness) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        status, content_type, body, extra = _handle(witness, environ)
        headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
        start_response(f"{status} {REASONS[status]}", headers + extra)
        return [body]

    return app


def _handle(witness: Witness, environ: dict[str, Any]) -> tuple[int, str, bytes, list]:
    if environ.get("PATH_INFO") != "/add-checkpoint":
        return _text(404, "not found: this witness serves POST /add-checkpoint")
    if environ.get("REQUEST_METHOD") != "POST":
        status, kind, body, _ = _text(405, "add-checkpoint takes POST")
        return status, kind, body, [("Allow", "POST")]
    try:
        raw = _read_body(environ)
        lines = witness.add_checkpoint(raw)
    except Refusal as refusal:
        log.info("refused add-checkpoint: %s %s", refusal.status, refusal.reason)
        if refusal.size is not None:
            return refusal.status, SIZE, f"{refusal.size}\n".encode(), []
        return _text(refusal.status, refusal.reason)
    except StateError as exc:
        log.error("witness state: %s", exc)
        return _text(503, "the witness cannot reach its state right now; retry later")
    return 200, TEXT, lines.encode(), []


def _read_body(environ: dict[str, Any]) -> bytes:
    """At most MAX_BODY_BYTES of the body: a longer one is refused before it is read whole."""
    length_text = environ.get("CONTENT_LENGTH") or ""
    if length_text:
        if not length_text.isdigit():
            raise Refusal(400, "Content-Length is not a number")
        if int(length_text) > MAX_BODY_BYTES:
            raise Refusal(413, f"the request body is larger than {MAX_BODY_BYTES} bytes")
    raw = environ["wsgi.input"].read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        raise Refusal(413, f"the request body is larger than {MAX_BODY_BYTES} bytes")
    return raw


def _text(status: int, line: str) -> tuple[int, str, bytes, list]:
    return status, TEXT, f"{line}\n".encode(), []
