"""One small database interface over SQLite and PostgreSQL.

The ledger needs three things from a database: read transactions, write
transactions that hold the single append lock (so concurrent writers, threads
or processes or nodes, are serialized and can never fork the chain), and
errors mapped to a few meaningful exceptions. SQL is written once with `?`
placeholders; PostgreSQL gets them rewritten to `%s`.

Every wait is bounded (connect, statement, SQLite's busy lock): a database
that is down, locked or overloaded raises `StoreUnavailable` quickly instead
of hanging a request, and the next request simply tries again, so the service
recovers on its own when the database comes back.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ledger.store import observers

APPEND_LOCK_ID = 0x1ED6E5  # PostgreSQL advisory lock that serializes appends
EVENTS_CHANNEL = "ledger_events"  # PostgreSQL NOTIFY channel: payload is the new head seq
COPY_MIN_ROWS = 64  # below, a pipelined multi-row INSERT costs less than COPY's extra round trip
SQLITE_UNAVAILABLE = ("locked", "busy", "unable to open", "disk i/o")
WRITER_POLL_S = 0.0005  # how often a writer of another process retries SQLite's writer queue


@dataclass(frozen=True)
class Timeouts:
    """Upper bounds on every database wait, in milliseconds."""

    connect_ms: int = 800
    statement_ms: int = 10_000
    busy_ms: int = 5000


PURGE_WAIT_MS = 5_000  # how long a purge after erasure waits for readers before giving up


class StoreError(Exception):
    """The database refused or failed an operation."""


class UniqueViolation(StoreError):
    """A unique constraint was hit: a stale write or a duplicate."""


class StoreUnavailable(StoreError):
    """The database cannot be reached, is locked or timed out: retry later (503)."""


class LedgerMissing(StoreError):
    """No ledger exists at the configured database: `ledger init` creates it."""


class Cursor(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ...) -> Any: ...
    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> Any: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    @property
    def rowcount(self) -> int: ...


class Database:
    """Interface both backends implement."""

    url: str
    kind: str
    TABLE_EXISTS: str  # one statement: a single truthy value when the table `?` exists

    def read(self) -> AbstractContextManager[Cursor]:
        raise NotImplementedError

    def write(
        self, lock: int | None = APPEND_LOCK_ID, pipelined: bool = False
    ) -> AbstractContextManager[Cursor]:
        """A write transaction under `lock`; `pipelined` sends statements without waiting
        for each one's answer until a result is fetched or the commit (fewer round trips)."""
        raise NotImplementedError

    def insert_rows(
        self, cur: Cursor, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
    ) -> None:
        """Insert `rows` in the write transaction of `cur`, the fastest way the backend has."""
        marks = ", ".join("?" * len(columns))
        cur.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)

    def create_schema(self) -> None:
        """Bring the schema to this release's version (`ledger/store/migrations.py`)."""
        from ledger.store.migrations import migrate

        migrate(self)

    def has_table(self, name: str) -> bool:
        """True when the table exists (schema checks, empty targets of a restore)."""
        return bool(self.scalar(self.TABLE_EXISTS, (name,)))

    def table_exists(self, cur: Any, name: str) -> bool:
        """`has_table` inside the caller's transaction."""
        cur.execute(self.TABLE_EXISTS, (name,))
        return bool(cur.fetchone()[0])

    def exists(self) -> bool:
        """True when `ledger init` created the ledger's tables here."""
        return self.has_table("ledger_events")

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """One value from one statement, without an explicit transaction (hot reads)."""
        return self.rows(sql, params)[0][0]

    def row(self, sql: str, params: Sequence[Any] = ()) -> Any | None:
        """The first row of one statement, or None, without an explicit transaction."""
        found = self.rows(sql, params)
        return found[0] if found else None

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Every row of one statement, without an explicit transaction: one round trip,
        one snapshot (hot reads)."""
        raise NotImplementedError

    def purge_deleted(self, table: str) -> None:
        """Leave no copy of `table`'s deleted or overwritten values in the database files."""
        raise NotImplementedError

    def notify(self, cur: Cursor, seq: int) -> None:
        """Tell listeners, at commit, that the log grew to `seq` (a no-op where none can listen)."""

    def listener(self) -> Listener:
        """Something to wait on for new events: polling unless the database can push."""
        return Listener()

    def close(self) -> None:
        raise NotImplementedError


class Listener:
    """Waits for new events; this base one only sleeps (polling)."""

    def wait(self, timeout: float) -> bool:
        """Block up to `timeout` seconds; True when woken by a notification."""
        threading.Event().wait(timeout)
        return False

    def close(self) -> None:
        """Release what the listener holds."""


def connect(url: str, timeouts: Timeouts | None = None) -> Database:
    timeouts = timeouts or Timeouts()
    if url.startswith("sqlite:///"):
        return SQLiteDatabase(url, timeouts)
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresDatabase(url, timeouts)
    raise StoreError(f"unsupported database URL scheme: {url.split(':')[0]}")


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _sqlite_error(exc: sqlite3.Error) -> StoreError:
    if isinstance(exc, sqlite3.OperationalError) and any(
        word in str(exc).lower() for word in SQLITE_UNAVAILABLE
    ):
        return StoreUnavailable(f"database unavailable: {exc}")
    return StoreError(str(exc))


class SQLiteDatabase(Database):
    """File-based SQLite in WAL mode; one connection per thread.

    A write transaction starts with BEGIN IMMEDIATE, which takes SQLite's
    single writer lock up front: across threads and processes, appends run
    one at a time and each sees the latest chain head. A writer waits at most
    the busy timeout for that lock, then gets `StoreUnavailable`.
    """

    kind = "sqlite"
    TABLE_EXISTS = "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?"

    def __init__(self, url: str, timeouts: Timeouts | None = None):
        self.url = url
        self.path = url[len("sqlite:///") :]
        self.timeouts = timeouts or Timeouts()
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        self._writer = threading.Lock()
        self._writer_fd: int | None = None

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            busy_ms = self.timeouts.busy_ms
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=busy_ms / 1000
            )
            conn.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA secure_delete=ON")  # freed content is zeroed (erasure)
            self._local.conn = conn
            with self._all_lock:
                self._all.append(conn)
        return conn

    @contextmanager
    def _transaction(
        self, begin: str, waiting_since: float | None = None
    ) -> Iterator[sqlite3.Cursor]:
        """`waiting_since`: when an append began to wait for the writer queue and lock."""
        try:
            conn = self._conn()
            cur = conn.cursor()
            cur.execute(begin)
            if waiting_since is not None:  # the queue and BEGIN IMMEDIATE: the append lock
                observers.lock_waited(time.perf_counter() - waiting_since)
        except sqlite3.Error as exc:
            raise _sqlite_error(exc) from exc
        try:
            yield cur
            conn.execute("COMMIT")
        except sqlite3.IntegrityError as exc:
            conn.execute("ROLLBACK")
            raise UniqueViolation(str(exc)) from exc
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise _sqlite_error(exc) from exc
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        finally:
            cur.close()

    def read(self) -> Any:
        return self._transaction("BEGIN")

    @contextmanager
    def write(self, lock: int | None = APPEND_LOCK_ID, pipelined: bool = False) -> Iterator[Any]:
        since = time.perf_counter() if lock == APPEND_LOCK_ID else None
        with self._queued(), self._transaction("BEGIN IMMEDIATE", since) as cur:
            yield cur

    @contextmanager
    def _queued(self) -> Iterator[None]:
        """This host's writer turn: this process's lock, then the host's `flock`, bounded."""
        deadline = time.monotonic() + self.timeouts.busy_ms / 1000
        if not self._writer.acquire(timeout=self.timeouts.busy_ms / 1000):
            raise StoreUnavailable("database unavailable: the write lock is busy")
        try:
            fd = self._writer_file()
            while not _try_flock(fd):
                if time.monotonic() > deadline:
                    raise StoreUnavailable("database unavailable: the write lock is busy")
                time.sleep(WRITER_POLL_S)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            self._writer.release()

    def _writer_file(self) -> int:
        if self._writer_fd is None:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._writer_fd = os.open(f"{self.path}.writer", os.O_RDWR | os.O_CREAT, 0o600)
        return self._writer_fd

    def has_table(self, name: str) -> bool:
        return Path(self.path).is_file() and super().has_table(name)

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        try:
            return self._conn().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise _sqlite_error(exc) from exc

    def purge_deleted(self, table: str) -> None:
        """secure_delete already zeroed the freed bytes; drop the WAL's older page images too."""
        conn = self._conn()
        conn.execute(f"PRAGMA busy_timeout={PURGE_WAIT_MS}")
        try:
            busy = self.scalar("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.execute(f"PRAGMA busy_timeout={int(self.timeouts.busy_ms)}")
        if busy:
            raise StoreError("a reader kept the write-ahead log from being truncated")

    def close(self) -> None:
        with self._all_lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()
        if self._writer_fd is not None:
            os.close(self._writer_fd)
            self._writer_fd = None


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


class _PgCursor:
    """psycopg cursor that accepts `?` placeholders."""

    def __init__(self, cursor: Any, pipelined: bool = False):
        self._cursor = cursor
        self.pipelined = pipelined

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._cursor.execute(sql.replace("?", "%s"), params, prepare=True)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> Any:
        return self._cursor.executemany(sql.replace("?", "%s"), rows)

    def fetchone(self) -> Any:
        return self._cursor.fetchone()

    def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount


class _PgPool:
    """A few idle psycopg connections, opened on demand within the connect timeout.

    libpq will not wait less than 2 s for a connection, so the attempt runs on a
    helper thread and the caller stops waiting at the configured timeout; a
    connection that arrives late joins the idle list. A broken connection
    empties the idle list (its siblings are likely dead too), so the first
    request after an outage connects afresh: no restart, no stale retries.
    """

    MAX_CONNECTING = 16  # attempts in flight; beyond that (an outage) fail at once

    def __init__(self, url: str, size: int, timeouts: Timeouts):
        import psycopg

        self._psycopg = psycopg
        self.url = url
        self.size = size
        self.timeouts = timeouts
        self._idle: list[Any] = []
        self._lock = threading.Lock()
        self._connecting = 0
        self._executor = ThreadPoolExecutor(self.MAX_CONNECTING, "ledger-pg-connect")
        self._closed = False

    def _open(self) -> Any:
        try:
            conn = self._psycopg.connect(self.url, autocommit=True, connect_timeout=2)
            try:
                conn.execute(f"SET statement_timeout = {int(self.timeouts.statement_ms)}")
            except BaseException:
                conn.close()
                raise
            return conn
        finally:
            with self._lock:
                self._connecting -= 1

    def _adopt_late(self, future: Future) -> None:
        if not future.cancelled() and future.exception() is None:
            self.put(future.result())

    def get(self) -> Any:
        with self._lock:
            if self._idle:
                return self._idle.pop()
            if self._connecting >= self.MAX_CONNECTING or self._closed:
                raise StoreUnavailable("database unavailable: connection attempts pending")
            self._connecting += 1
        future = self._executor.submit(self._open)
        try:
            return future.result(timeout=self.timeouts.connect_ms / 1000)
        except FutureTimeout as exc:
            future.add_done_callback(self._adopt_late)
            raise StoreUnavailable("database unavailable: connection timed out") from exc

    def put(self, conn: Any) -> None:
        """Keep a healthy idle connection; a broken one also drops its idle siblings."""
        broken = conn.closed or conn.broken
        if not broken and conn.info.transaction_status != self._psycopg.pq.TransactionStatus.IDLE:
            conn.close()  # left mid-transaction: never hand it to another request
            return
        with self._lock:
            keep = not broken and not self._closed and len(self._idle) < self.size
            if keep:
                self._idle.append(conn)
            stale = [] if not broken else self._idle
            if broken:
                self._idle = []
        for other in stale:
            other.close()
        if not keep:
            conn.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
        self._executor.shutdown(wait=False, cancel_futures=True)


class PostgresDatabase(Database):
    """PostgreSQL through a small pool of psycopg connections.

    Appends take a transaction-scoped advisory lock: every writer on every
    node queues on it, so sequence numbers are assigned in commit order and
    never skipped (no SERIAL, whose values are lost on rollback). Each
    connection carries a statement timeout, which bounds that wait too.
    """

    kind = "postgresql"
    TABLE_EXISTS = "SELECT to_regclass(?) IS NOT NULL"

    def __init__(self, url: str, timeouts: Timeouts | None = None, pool_size: int = 8):
        import psycopg

        self.url = url
        self._psycopg = psycopg
        self._pool = _PgPool(url, pool_size, timeouts or Timeouts())

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        """A pooled connection; psycopg errors become the store's own."""
        psycopg = self._psycopg
        try:
            conn = self._pool.get()
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(f"database unavailable: {_first_line(exc)}") from exc
        except psycopg.Error as exc:
            raise StoreError(_first_line(exc)) from exc
        try:
            yield conn
        except psycopg.errors.UniqueViolation as exc:
            raise UniqueViolation(_first_line(exc)) from exc
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(f"database unavailable: {_first_line(exc)}") from exc
        except psycopg.Error as exc:
            raise StoreError(_first_line(exc)) from exc
        finally:
            self._pool.put(conn)

    @contextmanager
    def _transaction(self, lock: int | None, pipelined: bool = False) -> Iterator[_PgCursor]:
        with (
            self._connection() as conn,
            conn.pipeline() if pipelined else nullcontext(),
            conn.transaction(),
            conn.cursor() as cur,
        ):
            if lock is not None:
                started = time.perf_counter()
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (lock,))
                if lock == APPEND_LOCK_ID:
                    observers.lock_waited(time.perf_counter() - started)
            yield _PgCursor(cur, pipelined)

    @contextmanager
    def read(self) -> Iterator[_PgCursor]:
        """One snapshot for several statements, begun in one round trip (not BEGIN, then SET).

        A read of a single statement needs no transaction at all: `rows` is one round trip.
        """
        with self._connection() as conn, conn.cursor() as cur:
            cur.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            try:
                yield _PgCursor(cur, False)
            finally:  # read only: ending it either way changes nothing
                if not conn.broken:
                    cur.execute("ROLLBACK")

    def write(self, lock: int | None = APPEND_LOCK_ID, pipelined: bool = False) -> Any:
        return self._transaction(lock, pipelined=pipelined)

    def insert_rows(
        self, cur: Cursor, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
    ) -> None:
        """COPY, about twice as fast as one INSERT per row; not allowed in a pipeline."""
        if not isinstance(cur, _PgCursor) or cur.pipelined:
            super().insert_rows(cur, table, columns, rows)
            return
        with cur._cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._connection() as conn:
            return conn.execute(sql.replace("?", "%s"), params, prepare=True).fetchall()

    def purge_deleted(self, table: str) -> None:
        """VACUUM FULL rewrites the table: a plain VACUUM leaves dead tuples' bytes in free space."""
        if not table.isidentifier():
            raise StoreError(f"not a table name: {table!r}")
        try:
            with self._psycopg.connect(self.url, autocommit=True, connect_timeout=5) as conn:
                conn.execute(f"SET lock_timeout = {int(PURGE_WAIT_MS)}")
                conn.execute(f"VACUUM FULL {table}")
        except self._psycopg.Error as exc:
            raise StoreError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from exc

    def notify(self, cur: Cursor, seq: int) -> None:
        cur.execute("SELECT pg_notify(?, ?)", (EVENTS_CHANNEL, str(seq)))

    def listener(self) -> Listener:
        return _PgListener(self.url, self._psycopg)

    def close(self) -> None:
        self._pool.close()


class _PgListener(Listener):
    """A dedicated connection LISTENing on the events channel (opened lazily, reopened if lost).

    Notifications that arrived while the caller was busy are drained at the
    next wait, which then returns at once: no append is missed between waits.
    """

    def __init__(self, url: str, psycopg: Any):
        self._url = url
        self._psycopg = psycopg
        self._conn: Any = None

    def _connection(self) -> Any:
        if self._conn is None or self._conn.closed:
            self._conn = self._psycopg.connect(self._url, autocommit=True, connect_timeout=5)
            self._conn.execute(f"LISTEN {EVENTS_CHANNEL}")
        return self._conn

    def wait(self, timeout: float) -> bool:
        try:
            conn = self._connection()
            woken = any(True for _ in conn.notifies(timeout=timeout, stop_after=1))
            if woken:
                for _ in conn.notifies(timeout=0):  # the rest of a burst: one wake for all
                    pass
            return woken
        except self._psycopg.Error as exc:
            self.close()
            raise StoreUnavailable(f"database unavailable: {_first_line(exc)}") from exc

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
