"""A strict HTTP client for the parts of a ledger's API a monitor reads.

The log is an untrusted peer: every answer is size-bounded and parsed strictly,
and anything that is not a well-formed answer is a `LogClientError` (the run
cannot tell what the log says, which is not an alarm about the log itself).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

from ledger.crypto import CryptoError, b64_decode

MAX_NOTE_BYTES = 64 * 1024
MAX_PROOF_BYTES = 64 * 1024
MAX_PAGE_BYTES = 64 * 1024 * 1024
MAX_EVENT_BYTES = 8 * 1024 * 1024  # an envelope line: a request body (4 MiB) and its framing
MAX_LIST_BYTES = 8 * 1024 * 1024  # a page of the checkpoint listing (100 notes)
LIST_PAGE = 100  # checkpoints per listing request (the API's maximum)
READ_TIMEOUT = 30.0  # seconds a single read may wait, within the run's deadline
CHUNK = 64 * 1024
MAX_PROOF_HASHES = 128  # a tree of 2^64 leaves needs at most 2 * 64 hashes
PAGE = 1000  # events per request


class LogClientError(Exception):
    """The log could not be read (network, HTTP status, or an answer that is not well formed)."""


class NotFound(LogClientError):
    """The log answered 404."""


class LogInconsistent(Exception):
    """The log itself reports that its stored tree contradicts its events (tampering)."""


INCONSISTENT = "/problems/tiles-inconsistent"
MAX_PROBLEM_BYTES = 4096


class LogClient:
    """Reads one log; every read of the run ends by `timeout` seconds after the client is made.

    A per-read socket timeout alone lets a log that drips a byte now and then keep a
    run (and its state lock) alive for ever; the deadline is checked between chunks
    and bounds each socket wait, without signals.
    """

    def __init__(self, base_url: str, token: str | None = None, timeout: float = 600.0) -> None:
        parsed = urllib.parse.urlsplit(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise LogClientError(f"{base_url[:80]!r} is not an http(s) URL")
        self.base = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout

    def checkpoint(self) -> str:
        """The latest checkpoint note: C2SP `/tlog/checkpoint` if served, else the API's."""
        try:
            raw = self._get("/tlog/checkpoint", MAX_NOTE_BYTES)
        except NotFound:
            raw = self._get("/api/v1/log/checkpoint", MAX_NOTE_BYTES)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise LogClientError("the checkpoint is not UTF-8 text") from exc

    def consistency(self, old: int, new: int) -> list[bytes]:
        """The log's RFC 9162 consistency proof between two tree sizes."""
        body = self._json(f"/api/v1/log/proof/consistency?from={old}&to={new}", MAX_PROOF_BYTES)
        hashes = body.get("hashes") if isinstance(body, dict) else None
        if not isinstance(hashes, list) or len(hashes) > MAX_PROOF_HASHES:
            raise LogClientError("the consistency proof is not a list of hashes")
        try:
            proof = [b64_decode(h) for h in hashes if isinstance(h, str)]
        except CryptoError as exc:
            raise LogClientError("a consistency proof hash is not base64") from exc
        if len(proof) != len(hashes) or any(len(h) != 32 for h in proof):
            raise LogClientError("a consistency proof hash is not 32 bytes")
        return proof

    def events(self, after: int, limit: int = PAGE) -> list[Any]:
        """Up to `limit` envelopes with seq > after, each parsed (a line that is not JSON: None).

        Lines are parsed as they arrive and reading stops after `limit` of them, so a
        page costs at most about `limit` events' worth of bytes whatever the log sends.
        """
        if not self.token:
            raise LogClientError("reading events needs an audit:read token (--token)")
        path = f"/api/v1/events?after={after}&limit={limit}"
        cap = min(MAX_PAGE_BYTES, limit * MAX_EVENT_BYTES)
        found: list[Any] = []
        with self._open(path, auth=True) as response:
            for line in _lines(self._chunks(response, path, cap), path):
                if line.strip():
                    found.append(_parse_line(line, len(found) + 1))
                if len(found) >= limit:
                    break
        return found

    def checkpoints(self, after: int) -> Iterator[dict[str, Any]]:
        """Every checkpoint the log lists with size > `after`, ascending, page by page."""
        while True:
            body = self._json(
                f"/api/v1/log/checkpoints?after={after}&limit={LIST_PAGE}", MAX_LIST_BYTES
            )
            page = body.get("checkpoints") if isinstance(body, dict) else None
            if not isinstance(page, list):
                raise LogClientError("/api/v1/log/checkpoints did not answer a list")
            for entry in page:
                size = entry.get("size") if isinstance(entry, dict) else None
                if (
                    not isinstance(size, int)
                    or size <= after
                    or not isinstance(entry.get("note"), str)
                ):
                    raise LogClientError("/api/v1/log/checkpoints listed a malformed entry")
                after = size
                yield entry
            if len(page) < LIST_PAGE:
                return

    def _json(self, path: str, limit: int) -> Any:
        try:
            return json.loads(self._get(path, limit))
        except (ValueError, RecursionError) as exc:
            raise LogClientError(f"{path.split('?')[0]} did not answer JSON") from exc

    def _get(self, path: str, limit: int, auth: bool = False) -> bytes:
        with self._open(path, auth) as response:
            body = b"".join(self._chunks(response, path, limit))
        return body

    def _remaining(self) -> float:
        """Seconds left in the run; LogClientError once the deadline has passed."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise LogClientError(
                f"the log at {self.base} did not answer within the run's {self.timeout:g} s"
            )
        return left

    def _open(self, path: str, auth: bool = False) -> Any:
        request = urllib.request.Request(self.base + path)
        if auth and self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        where = path.split("?")[0]
        timeout = min(READ_TIMEOUT, self._remaining())
        try:
            return urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as exc:
            detail = _inconsistency(exc)
            if detail is not None:
                raise LogInconsistent(detail) from None
            error = NotFound if exc.code == 404 else LogClientError
            raise error(f"{where} answered HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise LogClientError(f"cannot reach {self.base}: {_reason(exc)}") from None

    def _chunks(self, response: Any, path: str, limit: int) -> Iterator[bytes]:
        """The body as it arrives, at most `limit` bytes, checking the deadline between reads."""
        where, total = path.split("?")[0], 0
        while True:
            self._remaining()
            try:
                chunk = response.read1(CHUNK)
            except (urllib.error.URLError, OSError) as exc:
                raise LogClientError(f"cannot read {where}: {_reason(exc)}") from None
            if not chunk:
                return
            total += len(chunk)
            if total > limit:
                raise LogClientError(f"{where} answered more than {limit} bytes")
            yield chunk


def _reason(exc: BaseException) -> object:
    return getattr(exc, "reason", exc) or type(exc).__name__


def _lines(chunks: Iterator[bytes], path: str) -> Iterator[str]:
    """Decoded lines of an ndjson body as its chunks arrive."""
    pending = b""
    for chunk in chunks:
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for raw in complete:
            yield _decoded(raw, path)
    if pending:
        yield _decoded(pending, path)


def _decoded(raw: bytes, path: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LogClientError(f"{path.split('?')[0]} answered text that is not UTF-8") from exc


def _parse_line(line: str, number: int) -> Any:
    """The line's JSON, None if it is not JSON; nesting too deep to parse is a client error."""
    try:
        return json.loads(line)
    except ValueError:
        return None
    except RecursionError:
        raise LogClientError(
            f"event line {number} of the page nests too deeply to be parsed"
        ) from None


def _inconsistency(error: urllib.error.HTTPError) -> str | None:
    """The detail of a `tiles-inconsistent` problem (RFC 9457) answer, else None."""
    try:
        body = json.loads(error.read(MAX_PROBLEM_BYTES))
    except (ValueError, OSError, RecursionError):
        return None
    if not isinstance(body, dict) or body.get("type") != INCONSISTENT:
        return None
    return str(body.get("detail", ""))[:300]
