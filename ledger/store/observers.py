"""What the store tells whoever watches it (metrics), without knowing who that is.

The store calls `lock_waited` once the append lock is held and `appended`
once an append committed; listeners are registered by `ledger.metrics`. No
listener, no cost beyond a clock read.
"""

from __future__ import annotations

from collections.abc import Callable

LockListener = Callable[[float], None]  # seconds waited for the append lock
AppendListener = Callable[[int], None]  # events appended in one committed transaction

_lock_listeners: list[LockListener] = []
_append_listeners: list[AppendListener] = []


def on_lock_wait(listener: LockListener) -> None:
    if listener not in _lock_listeners:
        _lock_listeners.append(listener)


def on_append(listener: AppendListener) -> None:
    if listener not in _append_listeners:
        _append_listeners.append(listener)


def lock_waited(seconds: float) -> None:
    for listener in _lock_listeners:
        listener(seconds)


def appended(events: int) -> None:
    for listener in _append_listeners:
        listener(events)
