"""The domain's clock: one injectable source of "now".

Validity, expiry and time limits all read this clock, so tests can move time
to a boundary instead of sleeping, and every event timestamp comes from it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta

_source: Callable[[], datetime] = lambda: datetime.now(UTC)  # noqa: E731


def now() -> datetime:
    """Timezone-aware UTC now, from the current source."""
    return _source()


def set_source(source: Callable[[], datetime]) -> None:
    global _source
    _source = source


@contextmanager
def frozen_at(moment: datetime) -> Iterator[None]:
    """Within the block, `now()` returns `moment` (tests, replays)."""
    previous = _source
    set_source(lambda: moment)
    try:
        yield
    finally:
        set_source(previous)


def format_time(moment: datetime) -> str:
    """The wire format of times: YYYY-MM-DDTHH:MM:SS.ffffffZ, UTC."""
    m = moment.astimezone(UTC)
    return (
        f"{m.year:04d}-{m.month:02d}-{m.day:02d}T{m.hour:02d}:{m.minute:02d}:{m.second:02d}"
        f".{m.microsecond:06d}Z"
    )


# ASCII digits only (`\d` also matches other scripts' digits) and `fullmatch`
# (`$` would accept a trailing newline).
_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
EARLIEST_BIRTH = date(1900, 1, 1)
MAX_SCHEDULE_AHEAD = timedelta(days=2 * 366)


def parse_time(text: str) -> datetime:
    """Inverse of `format_time`: exactly YYYY-MM-DDTHH:MM:SS.ffffffZ, a real instant.

    Raises ValueError on anything else, so no lookalike digit, trailing newline
    or impossible date (Feb 30) ever reaches a signed event.
    """
    if not isinstance(text, str) or not _TIME.fullmatch(text):
        raise ValueError(f"not a time of the form YYYY-MM-DDTHH:MM:SS.ffffffZ: {text!r}")
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def parse_date(text: str) -> date:
    """Exactly YYYY-MM-DD with ASCII digits and a real calendar date; else ValueError."""
    if not isinstance(text, str) or not _DATE.fullmatch(text):
        raise ValueError(f"not a date of the form YYYY-MM-DD: {text!r}")
    return date(int(text[:4]), int(text[5:7]), int(text[8:]))


def check_birth_date(day: date, today: date) -> None:
    """A birth date is plausible: after 1900 and in the past; else ValueError."""
    if not EARLIEST_BIRTH <= day < today:
        raise ValueError(f"a birth date lies between {EARLIEST_BIRTH} and yesterday")


def check_session_date(day: date, today: date) -> None:
    """A session is scheduled from today to two years ahead; else ValueError."""
    if day < today:
        raise ValueError("a session cannot be scheduled in the past")
    if day > today + MAX_SCHEDULE_AHEAD:
        raise ValueError("a session is scheduled at most two years ahead")
