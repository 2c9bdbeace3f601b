"""The one check every event payload passes before it is hashed and signed.

A signed event can never be taken back, and every read model must be able to
store what it says (PostgreSQL refuses NUL in text, JSON cannot carry a lone
surrogate). So whatever enters the log is checked here, whichever door it came
through: NFC strings without NUL, lone surrogates or control characters (free
text may hold newlines and tabs), bounded lengths, integers JavaScript can
represent exactly, no floating point (format section 1), string keys and
bounded nesting.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from ledger.domain.base import DomainError

MAX_SAFE_INTEGER = 2**53 - 1
MAX_STRING = 100_000  # sealed blobs and referential texts included; the API is stricter
MAX_DEPTH = 16
FREE_TEXT_FIELDS = frozenset({"reason", "description", "incidents", "note", "status_reason"})
# C0 and C1 controls (NUL included) and surrogates, which in a str are always lone.
_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_FORBIDDEN_IN_FREE_TEXT = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


class InvalidInput(DomainError):
    """A value may not enter the log; `field` is its path, e.g. `aborts[0].reason`."""

    code = "invalid-input"

    def __init__(self, field: str, reason: str):
        super().__init__(f"{field or 'payload'}: {reason}", field=field, errors={field: [reason]})
        self.field, self.reason = field, reason


def text_problem(value: str, free_text: bool = False, max_length: int = MAX_STRING) -> str | None:
    """Why `value` may not be logged, or None: the rule shared with the API's schemas."""
    if len(value) > max_length:
        return f"longer than {max_length} characters"
    found = (_FORBIDDEN_IN_FREE_TEXT if free_text else _FORBIDDEN).search(value)
    if found:
        point = ord(found.group())
        if point == 0:
            return "contains a NUL character"
        if point >= 0xD800:
            return "contains a lone surrogate"
        return f"contains the control character U+{point:04X}"
    if not value.isascii() and not unicodedata.is_normalized("NFC", value):
        return "is not in Unicode NFC form"
    return None


def check_payload(payload: dict[str, Any]) -> None:
    """Raise InvalidInput naming the first field that may not enter the log."""
    _check(payload, "", False, 0)


def _check(value: Any, path: str, free_text: bool, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise InvalidInput(path, f"nested deeper than {MAX_DEPTH} levels")
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, str):
        reason = text_problem(value, free_text)
        if reason:
            raise InvalidInput(path, reason)
    elif isinstance(value, int):
        if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise InvalidInput(path, "integer outside ±(2**53 - 1)")
    elif isinstance(value, float):
        raise InvalidInput(path, "floating-point numbers are not allowed (format section 1)")
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidInput(path, f"key {key!r} is not a string")
            inner = f"{path}.{key}" if path else key
            if text_problem(key, max_length=200):
                raise InvalidInput(inner, "invalid key")
            _check(item, inner, key in FREE_TEXT_FIELDS, depth + 1)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check(item, f"{path}[{index}]", free_text, depth + 1)
    else:
        raise InvalidInput(path, f"{type(value).__name__} is not a JSON value")
