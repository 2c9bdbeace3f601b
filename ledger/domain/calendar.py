"""National certification windows per audience (configuration, not code).

Final-year upper-secondary pupils are certified in one window, final-year
lower-secondary pupils in another; adults any time. A window is a range of
month-day pairs, inclusive, e.g. `upper-secondary=01-05:03-31`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from ledger.domain.base import DomainError

DEFAULT_WINDOWS = "upper-secondary=01-05:03-31,lower-secondary=03-01:05-31"


class OutsideWindow(DomainError):
    code = "outside-certification-window"


class CalendarError(ValueError):
    """The calendar configuration cannot be read."""


@dataclass(frozen=True)
class Window:
    start: tuple[int, int]
    end: tuple[int, int]

    def contains(self, day: date) -> bool:
        return self.start <= (day.month, day.day) <= self.end

    def __str__(self) -> str:
        return f"{self.start[1]:02d}/{self.start[0]:02d}–{self.end[1]:02d}/{self.end[0]:02d}"


def _month_day(text: str) -> tuple[int, int]:
    month, day = (int(part) for part in text.split("-"))
    date(2024, month, day)  # validates (leap year allows 02-29)
    return month, day


def parse_windows(spec: str) -> dict[str, Window]:
    """`audience=MM-DD:MM-DD,...` -> windows; audiences without one are unrestricted."""
    windows: dict[str, Window] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        try:
            audience, span = item.split("=")
            start, end = (_month_day(x) for x in span.split(":"))
        except ValueError as exc:
            raise CalendarError(f"bad calendar window {item!r}: use audience=MM-DD:MM-DD") from exc
        if start > end:
            raise CalendarError(f"calendar window {item!r} ends before it starts")
        windows[audience.strip()] = Window(start, end)
    return windows


def check_window(windows: dict[str, Window], audience: str, day: date) -> None:
    window = windows.get(audience)
    if window is not None and not window.contains(day):
        raise OutsideWindow(
            f"{audience} candidates are certified between {window} (day/month); "
            f"this session is on {day.isoformat()}"
        )
