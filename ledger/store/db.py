"""One small database interface over SQLite and PostgreSQL.

The ledger needs three things from a database: read transactions, write
transactions that hold the single append lock (so concurrent writers, threads
or processes or nodes, are serialized and can never fork the chain), and
errors mapped to a few meaningful exceptions. SQL is written once with `?`
placeholders; PostgreSQL gets them rewritten to `%s`.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Protocol

from ledger.store.schema import SCHEMA

APPEND_LOCK_ID = 0x1ED6E5  # PostgreSQL advisory lock that serializes appends
BUSY_TIMEOUT_MS = 30_000
PURGE_WAIT_MS = 5_000  # how long a purge after erasure waits for readers before giving up


class StoreError(Exception):
    """The database refused or failed an operation."""


class UniqueViolation(StoreError):
    """A unique constraint was hit: a stale write or a duplicate."""


class Cursor(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ...) -> Any: ...
    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> Any: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...


class Database:
    """Interface both backends implement."""

    url: str
    kind: str

    def read(self) -> AbstractContextManager[Cursor]:
        raise NotImplementedError

    def write(self, lock: int | None = APPEND_LOCK_ID) -> AbstractContextManager[Cursor]:
        raise NotImplementedError

    def create_schema(self) -> None:
        raise NotImplementedError

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """One value from one statement, without an explicit transaction (hot reads)."""
        raise NotImplementedError

    def purge_deleted(self, table: str) -> None:
        """Leave no copy of `table`'s deleted or overwritten values in the database files."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


def connect(url: str) -> Database:
    if url.startswith("sqlite:///"):
        return SQLiteDatabase(url)
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresDatabase(url)
    raise StoreError(f"unsupported database URL scheme: {url.split(':')[0]}")


class SQLiteDatabase(Database):
    """File-based SQLite in WAL mode; one connection per thread.

    A write transaction starts with BEGIN IMMEDIATE, which takes SQLite's
    single writer lock up front: across threads and processes, appends run
    one at a time and each sees the latest chain head.
    """

    kind = "sqlite"

    def __init__(self, url: str):
        self.url = url
        self.path = url[len("sqlite:///") :]
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA secure_delete=ON")  # freed content is zeroed (erasure)
            self._local.conn = conn
            with self._all_lock:
                self._all.append(conn)
        return conn

    @contextmanager
    def _transaction(self, begin: str) -> Iterator[sqlite3.Cursor]:
        conn = self._conn()
        cur = conn.cursor()
        try:
            cur.execute(begin)
            yield cur
            conn.execute("COMMIT")
        except sqlite3.IntegrityError as exc:
            conn.execute("ROLLBACK")
            raise UniqueViolation(str(exc)) from exc
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise StoreError(str(exc)) from exc
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        finally:
            cur.close()

    def read(self) -> Any:
        return self._transaction("BEGIN")

    def write(self, lock: int | None = APPEND_LOCK_ID) -> Any:
        return self._transaction("BEGIN IMMEDIATE")

    def create_schema(self) -> None:
        conn = self._conn()
        conn.executescript(SCHEMA)

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        try:
            return self._conn().execute(sql, params).fetchone()[0]
        except sqlite3.Error as exc:
            raise StoreError(str(exc)) from exc

    def purge_deleted(self, table: str) -> None:
        """secure_delete already zeroed the freed bytes; drop the WAL's older page images too."""
        conn = self._conn()
        conn.execute(f"PRAGMA busy_timeout={PURGE_WAIT_MS}")
        try:
            busy = self.scalar("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        if busy:
            raise StoreError("a reader kept the write-ahead log from being truncated")

    def close(self) -> None:
        with self._all_lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()


class _PgCursor:
    """psycopg cursor that accepts `?` placeholders."""

    def __init__(self, cursor: Any):
        self._cursor = cursor

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._cursor.execute(sql.replace("?", "%s"), params, prepare=True)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> Any:
        return self._cursor.executemany(sql.replace("?", "%s"), rows)

    def fetchone(self) -> Any:
        return self._cursor.fetchone()

    def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()


class PostgresDatabase(Database):
    """PostgreSQL through a psycopg connection pool.

    Appends take a transaction-scoped advisory lock: every writer on every
    node queues on it, so sequence numbers are assigned in commit order and
    never skipped (no SERIAL, whose values are lost on rollback).
    """

    kind = "postgresql"

    def __init__(self, url: str, pool_size: int = 8):
        import psycopg
        from psycopg_pool import ConnectionPool

        self.url = url
        self._psycopg = psycopg
        self._pool = ConnectionPool(
            url, min_size=1, max_size=pool_size, open=True, timeout=30, kwargs={}
        )

    @contextmanager
    def _transaction(self, lock: int | None, readonly: bool) -> Iterator[_PgCursor]:
        psycopg = self._psycopg
        try:
            with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
                if lock is not None:
                    cur.execute("SELECT pg_advisory_xact_lock(%s)", (lock,))
                elif readonly:
                    cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                yield _PgCursor(cur)
        except psycopg.errors.UniqueViolation as exc:
            raise UniqueViolation(str(exc).splitlines()[0]) from exc
        except psycopg.Error as exc:
            raise StoreError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from exc

    def read(self) -> Any:
        return self._transaction(None, readonly=True)

    def write(self, lock: int | None = APPEND_LOCK_ID) -> Any:
        return self._transaction(lock, readonly=False)

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        try:
            with self._pool.connection() as conn:
                return conn.execute(sql.replace("?", "%s"), params, prepare=True).fetchone()[0]
        except self._psycopg.Error as exc:
            raise StoreError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from exc

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

    def create_schema(self) -> None:
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (APPEND_LOCK_ID,))
            cur.execute(SCHEMA)

    def close(self) -> None:
        self._pool.close()
