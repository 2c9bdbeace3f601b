"""Runs projections: read envelopes after the saved position, apply, save position.

Applying a page of events and moving the position happen in one transaction,
so a crash or restart neither skips nor applies an event twice. Each
projection has its own lock, so several workers catching up at once take
turns instead of racing. Projections only read the log; they write only their
own tables.

A projection can never wedge the service: an event it fails to apply rolls
its transaction back, is recorded in `projection_stalls` with its `seq`, and
the projection keeps the state just before that event while the others go on;
it is retried with exponential backoff (a fix deployed, it catches up alone).
A rebuild replays the log into fresh shadow tables (`<table>__rebuild`), a
page per short transaction, while readers keep the live tables and appends go
on; only when every projection replayed cleanly does one short transaction
apply the events appended meanwhile, drop the live tables, rename the shadows
in and set the positions. A failure drops the shadows: the live read models
and positions stay exactly as they were.

A read model whose schema changed since it was built (a new release adds a
column) is rebuilt when the tables are created, in one transaction under its
lock: a crash leaves the old tables, a concurrent worker waits and then finds
it done. `projection_schemas` keeps the digest of the schema each was built by.
"""

from __future__ import annotations

import hashlib
import logging
import re
import zlib
from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta
from typing import Any, Protocol

from ledger.domain import clock
from ledger.envelope import Envelope
from ledger.store.db import Database, StoreError
from ledger.store.recorder import COLUMNS, row_to_envelope

PAGE = 2000
MAX_BACKOFF_SECONDS = 300
log = logging.getLogger("ledger.projections")


class Projection(Protocol):
    """A read model: its tables, the event types it reads, and how it applies one."""

    name: str
    types: frozenset[str]
    schema: str
    tables: Sequence[str]

    def apply(self, cur: Any, env: Envelope) -> None: ...


class ProjectionStalled(Exception):
    """A projection could not apply the event at `seq`; its read model stays before it."""

    def __init__(self, name: str, seq: int, error: str):
        super().__init__(f"projection {name} stalled at seq {seq}: {error}")
        self.name, self.seq, self.error = name, seq, error


def _lock_id(name: str) -> int:
    return zlib.crc32(f"projection:{name}".encode())


def position(db: Database, name: str) -> int:
    with db.read() as cur:
        cur.execute("SELECT position FROM projection_positions WHERE name = ?", (name,))
        row = cur.fetchone()
    return row[0] if row else 0


def head(db: Database) -> int:
    return db.scalar("SELECT COALESCE(MAX(seq), 0) FROM ledger_events")


def _set_position(cur: Any, name: str, seq: int) -> None:
    cur.execute(
        "INSERT INTO projection_positions (name, position) VALUES (?, ?) "
        "ON CONFLICT (name) DO UPDATE SET position = excluded.position",
        (name, seq),
    )


def _describe(exc: Exception) -> str:
    """The error's type and first line, bounded: never a whole row of data."""
    first = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {first}"[:300]


def _apply_all(cur: Any, projection: Projection, envelopes: Iterable[Envelope]) -> None:
    """Apply each envelope the projection reads; a failure names the event's seq."""
    for env in envelopes:
        try:
            if env.type in projection.types:
                projection.apply(cur, env)
        except Exception as exc:
            raise ProjectionStalled(projection.name, env.seq, _describe(exc)) from exc


def _read_page(
    cur: Any, after: int, stop: int | None = None, size: int | None = None
) -> list[Envelope]:
    sql = f"SELECT {COLUMNS} FROM ledger_events WHERE seq > ?"
    params: list[Any] = [after]
    if stop is not None:
        sql += " AND seq <= ?"
        params.append(stop)
    cur.execute(sql + " ORDER BY seq LIMIT ?", (*params, size or PAGE))
    return [row_to_envelope(r) for r in cur.fetchall()]


def _apply_page(
    db: Database, projection: Projection, stop: int | None = None, size: int | None = None
) -> int:
    """Apply up to one page of `size` (up to `stop`); return how many envelopes were read."""
    with db.write(lock=_lock_id(projection.name)) as cur:
        cur.execute("SELECT position FROM projection_positions WHERE name = ?", (projection.name,))
        row = cur.fetchone()
        envelopes = _read_page(cur, row[0] if row else 0, stop, size)
        _apply_all(cur, projection, envelopes)
        if envelopes:
            _set_position(cur, projection.name, envelopes[-1].seq)
    return len(envelopes)


def _never() -> bool:
    return False


def _advance(
    db: Database, projection: Projection, size: int | None = None, stop: Callable[[], bool] = _never
) -> None:
    """Apply pages until the head or `stop()`; on a bad event keep those before it, then raise."""
    size = size or PAGE
    try:
        while _apply_page(db, projection, size=size) == size and not stop():
            pass
    except ProjectionStalled as stalled:
        while _apply_page(db, projection, stop=stalled.seq - 1, size=size) == size:
            pass
        raise


# --- stalls --------------------------------------------------------------------


def stalls(db: Database) -> dict[str, dict[str, Any]]:
    """Stalled projections by name: the seq they stopped before, why, since when."""
    with db.read() as cur:
        cur.execute("SELECT name, seq, error, since, attempts, retry_at FROM projection_stalls")
        keys = ("seq", "error", "since", "attempts", "retry_at")
        return {r[0]: dict(zip(keys, r[1:], strict=True)) for r in cur.fetchall()}


def _record_stall(
    db: Database, stalled: ProjectionStalled, previous: dict[str, Any] | None
) -> None:
    attempts = (previous["attempts"] if previous else 0) + 1
    now = clock.now()
    wait = timedelta(seconds=min(2**attempts, MAX_BACKOFF_SECONDS))
    since = previous["since"] if previous and previous["seq"] == stalled.seq else None
    log.error("%s (attempt %d)", stalled, attempts)
    with db.write(lock=None) as cur:
        cur.execute(
            "INSERT INTO projection_stalls (name, seq, error, since, attempts, retry_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET seq = excluded.seq,"
            " error = excluded.error, since = excluded.since, attempts = excluded.attempts,"
            " retry_at = excluded.retry_at",
            (stalled.name, stalled.seq, stalled.error, since or clock.format_time(now),
             attempts, clock.format_time(now + wait)),
        )  # fmt: skip


def _clear_stall(db: Database, name: str) -> None:
    with db.write(lock=None) as cur:
        cur.execute("DELETE FROM projection_stalls WHERE name = ?", (name,))


def _statements(schema: str) -> list[str]:
    return [s.strip() for s in schema.split(";") if s.strip()]


def create_tables(db: Database, projections: Iterable[Projection]) -> None:
    """Create missing read-model tables; rebuild those built by an older schema.

    Tables created here start at position 0, so catch-up applies the whole log
    to them, even where a position row outlived them.
    """
    for projection in projections:
        statements = _statements(projection.schema)
        with db.write(lock=_lock_id(projection.name)) as cur:
            fresh = not any(db.table_exists(cur, table) for table in projection.tables)
            for statement in (s for s in statements if not _is_index(s)):
                cur.execute(statement)
            if fresh:  # built by this very schema: nothing to rebuild, the whole log to apply
                _set_position(cur, projection.name, 0)
                _set_digest(cur, projection)
        try:
            _upgrade(db, projection)
        except ProjectionStalled as exc:  # the old tables stay; the stall is shown by /ready
            _record_stall(db, exc, stalls(db).get(exc.name))
            log.error("read model %s kept its old schema: %s", projection.name, exc)
            continue
        with db.write(lock=_lock_id(projection.name)) as cur:  # indexes may name new columns
            for statement in (s for s in statements if _is_index(s)):
                cur.execute(statement)


def schema_digest(projection: Projection) -> str:
    return hashlib.sha256(projection.schema.encode()).hexdigest()[:32]


def _set_digest(cur: Any, projection: Projection) -> None:
    cur.execute(
        "INSERT INTO projection_schemas (name, digest) VALUES (?, ?) "
        "ON CONFLICT (name) DO UPDATE SET digest = excluded.digest",
        (projection.name, schema_digest(projection)),
    )


def _upgrade(db: Database, projection: Projection) -> None:
    """Rebuild in one transaction a read model built by another (or an unrecorded) schema.

    Even one that never applied an event: its tables may still have older columns.
    """
    with db.write(lock=_lock_id(projection.name)) as cur:
        cur.execute("SELECT digest FROM projection_schemas WHERE name = ?", (projection.name,))
        row = cur.fetchone()
        if row is not None and row[0] == schema_digest(projection):
            return
        if row is not None:
            log.warning("read model %s: schema changed, rebuilding it", projection.name)
        _shadow_tables(cur, db.kind, projection)
        after, count = 0, PAGE
        while count == PAGE:
            after, count = _replay(cur, projection, after)
        _rename_in(cur, db.kind, projection)
        _set_position(cur, projection.name, after)
        _set_digest(cur, projection)


def catch_up(
    db: Database,
    projections: Iterable[Projection],
    page: int | None = None,
    stop: Callable[[], bool] = _never,
    latest: int | None = None,
) -> set[str]:
    """Bring each projection up to the head of the log (cheap when already there).

    Applies `page` events per transaction (default PAGE); returns early, between
    pages, once `stop()` is true. Returns the names of stalled projections; they
    never stop the others, and one waiting for its backoff is skipped. `latest`:
    the head when the caller has just read it.
    """
    latest = head(db) if latest is None else latest
    stalled = stalls(db)
    now = clock.format_time(clock.now())
    still: set[str] = set()
    for projection in projections:
        if stop():
            break
        previous = stalled.get(projection.name)
        if previous and previous["retry_at"] > now:
            still.add(projection.name)
            continue
        if position(db, projection.name) < latest:
            try:
                _advance(db, projection, page, stop)
            except ProjectionStalled as exc:
                _record_stall(db, exc, previous)
                still.add(projection.name)
                continue
        if previous and not stop():  # stopped early, it may not have passed the event yet
            _clear_stall(db, projection.name)
    return still


# --- rebuild into shadow tables ----------------------------------------------

SHADOW = "__rebuild"
Progress = Callable[[str, int], None]  # (projection, last seq replayed) after each page
_INDEX = re.compile(r"CREATE\s+(?:UNIQUE\s+)?INDEX\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)", re.I)


def _is_index(statement: str) -> bool:
    return _INDEX.match(statement) is not None


def shadow_names(projection: Projection) -> dict[str, str]:
    """Each table and index the projection declares, and the name its shadow copy takes."""
    names = [*projection.tables]
    names += [m.group(1) for s in _statements(projection.schema) if (m := _INDEX.match(s))]
    return {name: name + SHADOW for name in names}


class _Renamed:
    """A cursor that sends a projection's statements to its shadow tables.

    Projections write SQL naming their live tables; each declared table (and
    index) name, as a whole word, becomes its shadow's name.
    """

    def __init__(self, cur: Any, names: dict[str, str]):
        self._cur = cur
        self._names = names
        self._pattern = re.compile(r"\b(" + "|".join(map(re.escape, names)) + r")\b")

    def sql(self, sql: str) -> str:
        return self._pattern.sub(lambda m: self._names[m.group(1)], sql)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._cur.execute(self.sql(sql), params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> Any:
        return self._cur.executemany(self.sql(sql), rows)

    def fetchone(self) -> Any:
        return self._cur.fetchone()

    def fetchall(self) -> list[Any]:
        return self._cur.fetchall()

    @property
    def rowcount(self) -> int:
        return self._cur.rowcount


def _drop_shadow(cur: Any, projection: Projection) -> None:
    for table in projection.tables:
        cur.execute(f"DROP TABLE IF EXISTS {table}{SHADOW}")  # its indexes go with it


def _create_shadow(db: Database, projection: Projection) -> None:
    """Empty shadow tables (a crashed rebuild's leftovers dropped first).

    PostgreSQL builds the indexes there too and renames them on the swap;
    SQLite cannot rename an index, so it creates them on the swap instead.
    """
    with db.write(lock=None) as cur:
        _shadow_tables(cur, db.kind, projection)


def _shadow_tables(cur: Any, kind: str, projection: Projection) -> None:
    _drop_shadow(cur, projection)
    shadow = _Renamed(cur, shadow_names(projection))
    for statement in _statements(projection.schema):
        if kind == "postgresql" or not _is_index(statement):
            shadow.execute(statement)


def _replay(cur: Any, projection: Projection, after: int) -> tuple[int, int]:
    """Apply one page after `after` to the shadow; return the last seq and the page's size."""
    envelopes = _read_page(cur, after)
    _apply_all(_Renamed(cur, shadow_names(projection)), projection, envelopes)
    return (envelopes[-1].seq if envelopes else after), len(envelopes)


def _build(db: Database, projection: Projection, progress: Progress | None) -> int:
    """Replay the log into the shadow a page per transaction; return the last seq applied."""
    after, count = 0, PAGE
    while count == PAGE:
        with db.write(lock=None) as cur:  # short: appends and catch-up go on between pages
            after, count = _replay(cur, projection, after)
        if progress:
            progress(projection.name, after)
    return after


def _rename_in(cur: Any, kind: str, projection: Projection) -> None:
    """Replace the live tables by their shadows (same transaction as the positions)."""
    for table in projection.tables:
        cur.execute(f"DROP TABLE IF EXISTS {table}")
        cur.execute(f"ALTER TABLE {table}{SHADOW} RENAME TO {table}")
        if kind == "postgresql":
            _rename_pg_objects(cur, table)
    if kind != "postgresql":
        for statement in _statements(projection.schema):
            if _is_index(statement):
                cur.execute(statement)


def _rename_pg_objects(cur: Any, table: str) -> None:
    """Indexes (with their primary key or unique constraints) and constraints lose the suffix."""
    cur.execute(
        "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
        " WHERE i.indrelid = to_regclass(?)",
        (table,),
    )
    for (index,) in cur.fetchall():
        if SHADOW in index:
            cur.execute(f'ALTER INDEX "{index}" RENAME TO "{index.replace(SHADOW, "")}"')
    cur.execute(
        "SELECT conname FROM pg_constraint WHERE conrelid = to_regclass(?)"
        " AND contype NOT IN ('p', 'u', 'x')",
        (table,),
    )
    for (constraint,) in cur.fetchall():
        if SHADOW in constraint:
            new = constraint.replace(SHADOW, "")
            cur.execute(f'ALTER TABLE {table} RENAME CONSTRAINT "{constraint}" TO "{new}"')


def _swap(db: Database, projections: list[Projection], built: dict[str, int]) -> None:
    """One short transaction: the events appended meanwhile, then every shadow in at once."""
    locks = sorted({_lock_id(p.name) for p in projections})
    with db.write(lock=None) as cur:
        if db.kind == "postgresql":  # catch-up of these projections waits for the swap
            for lock in locks:
                cur.execute("SELECT pg_advisory_xact_lock(?)", (lock,))
        for projection in projections:
            after, count = built[projection.name], PAGE
            while count == PAGE:
                after, count = _replay(cur, projection, after)
            _rename_in(cur, db.kind, projection)
            _set_position(cur, projection.name, after)
            _set_digest(cur, projection)


def _drop_shadows(db: Database, projections: list[Projection]) -> None:
    try:
        with db.write(lock=None) as cur:
            for projection in projections:
                _drop_shadow(cur, projection)
    except StoreError as exc:  # the next rebuild drops them first
        log.warning("could not drop the rebuild's shadow tables: %s", exc)


def rebuild(
    db: Database, projections: Iterable[Projection], progress: Progress | None = None
) -> None:
    """Replay the whole log into fresh shadow tables, then swap them in: all or nothing.

    Pages are replayed in short transactions (appends are not held up, readers
    keep the old read models); `progress(name, seq)` is called after each page.
    Once every projection is built, one transaction applies the events appended
    meanwhile, replaces the live tables and sets the positions. An event a
    projection cannot apply drops every shadow, leaves the live read models and
    positions as they were, records the stall and raises ProjectionStalled.
    """
    projections = list(projections)
    try:
        built = {}
        for projection in projections:
            _create_shadow(db, projection)
            built[projection.name] = _build(db, projection, progress)
        _swap(db, projections, built)
    except ProjectionStalled as exc:
        _record_stall(db, exc, stalls(db).get(exc.name))
        raise
    finally:
        _drop_shadows(db, projections)  # nothing left after a swap; every shadow after a failure
    for projection in projections:
        _clear_stall(db, projection.name)


def dump(db: Database, projections: Iterable[Projection]) -> dict[str, list[tuple]]:
    """Every row of every projection table, sorted: to compare live and rebuilt state."""
    state: dict[str, list[tuple]] = {}
    with db.read() as cur:
        for projection in projections:
            for table in projection.tables:
                cur.execute(f"SELECT * FROM {table}")
                state[table] = sorted(tuple(r) for r in cur.fetchall())
    return state
