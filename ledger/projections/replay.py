"""Build read models into a scratch database from a given (verified) stream of envelopes.

The scratch holds the read-model tables and their positions only: never the
events, so a truncated copy of the log, signed with the log's keys, is not left
lying around to be served as if it were the log. It must be empty: replaying
over a ledger, or over an earlier replay, would mix two states of the past.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice

from ledger.envelope import Envelope
from ledger.projections.runner import PAGE, Projection, _apply_all, _set_position, create_tables
from ledger.store.db import Database, StoreError


class ScratchNotEmpty(StoreError):
    """The target of a replay holds a ledger's events or read models already."""


def prepare_scratch(db: Database, projections: list[Projection]) -> None:
    """Create the read-model tables in an empty database; ScratchNotEmpty otherwise."""
    db.create_schema()
    if db.scalar("SELECT COUNT(*) FROM ledger_events"):
        raise ScratchNotEmpty("the target database holds a ledger's events; give an empty one")
    if db.scalar("SELECT COUNT(*) FROM projection_positions WHERE position > 0"):
        raise ScratchNotEmpty("the target database already holds replayed read models")
    create_tables(db, projections)


def _pages(envelopes: Iterable[Envelope]) -> Iterator[list[Envelope]]:
    it = iter(envelopes)
    while page := list(islice(it, PAGE)):
        yield page


def replay_into(db: Database, projections: list[Projection], envelopes: Iterable[Envelope]) -> int:
    """Apply the envelopes, a page per transaction; return the last seq applied (0: none)."""
    last = 0
    for page in _pages(envelopes):
        with db.write(lock=None) as cur:
            for projection in projections:
                _apply_all(cur, projection, page)
                _set_position(cur, projection.name, page[-1].seq)
        last = page[-1].seq
    return last


def table_counts(db: Database, projections: list[Projection]) -> dict[str, int]:
    """Rows per read-model table: what the replay built."""
    return {
        table: db.scalar(f"SELECT COUNT(*) FROM {table}")
        for projection in projections
        for table in projection.tables
    }
