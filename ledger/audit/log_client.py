"""A strict HTTP client for the parts of a ledger's API a monitor reads.

The log is an untrusted peer: every answer is size-bounded and parsed strictly,
and anything that is not a well-formed answer is a `LogClientError` (the run
cannot tell what the log says, which is not an alarm about the log itself).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from ledger.crypto import CryptoError, b64_decode

MAX_NOTE_BYTES = 64 * 1024
MAX_PROOF_BYTES = 64 * 1024
MAX_PAGE_BYTES = 64 * 1024 * 1024
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
    def __init__(self, base_url: str, token: str | None = None, timeout: float = 30.0) -> None:
        parsed = urllib.parse.urlsplit(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise LogClientError(f"{base_url[:80]!r} is not an http(s) URL")
        self.base = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout

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
        """Up to `limit` envelopes with seq > after, each parsed (a line that is not JSON: None)."""
        if not self.token:
            raise LogClientError("reading events needs an audit:read token (--token)")
        raw = self._get(f"/api/v1/events?after={after}&limit={limit}", MAX_PAGE_BYTES, auth=True)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise LogClientError("the events are not UTF-8 text") from exc
        return [_parse_line(line) for line in text.splitlines() if line.strip()]

    def _json(self, path: str, limit: int) -> Any:
        try:
            return json.loads(self._get(path, limit))
        except ValueError as exc:
            raise LogClientError(f"{path.split('?')[0]} did not answer JSON") from exc

    def _get(self, path: str, limit: int, auth: bool = False) -> bytes:
        request = urllib.request.Request(self.base + path)
        if auth and self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        where = path.split("?")[0]
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                body = response.read(limit + 1)
        except urllib.error.HTTPError as exc:
            detail = _inconsistency(exc)
            if detail is not None:
                raise LogInconsistent(detail) from None
            error = NotFound if exc.code == 404 else LogClientError
            raise error(f"{where} answered HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise LogClientError(f"cannot reach {self.base}: {reason}") from None
        if len(body) > limit:
            raise LogClientError(f"{where} answered more than {limit} bytes")
        return body


def _parse_line(line: str) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        return None


def _inconsistency(error: urllib.error.HTTPError) -> str | None:
    """The detail of a `tiles-inconsistent` problem (RFC 9457) answer, else None."""
    try:
        body = json.loads(error.read(MAX_PROBLEM_BYTES))
    except (ValueError, OSError):
        return None
    if not isinstance(body, dict) or body.get("type") != INCONSISTENT:
        return None
    return str(body.get("detail", ""))[:300]
