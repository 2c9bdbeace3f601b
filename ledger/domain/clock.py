"""The domain's clock: one injectable source of "now".

Validity, expiry and time limits all read this clock, so tests can move time
to a boundary instead of sleeping, and every event timestamp comes from it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

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


def parse_time(text: str) -> datetime:
    """Inverse of `format_time`; raises ValueError on anything else."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
