"""Fixtures: a fresh ledger on SQLite and on PostgreSQL, an API client and tokens.

Every store-level test runs twice, once per backend. PostgreSQL tests each get
their own schema in the `test` database, dropped afterwards.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ledger.config import Config, suite_setting
from ledger.store.application import Ledger
from ledger.store.db import APPEND_LOCK_ID

SUMMARY = pytest.StashKey[list[str]]()  # lines tests add to the terminal summary


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    for line in config.stash.get(SUMMARY, []):
        terminalreporter.write_line(line)


PG_URL = suite_setting("LEDGER_TEST_PG")
BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(autouse=True, scope="session")
def runtime_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Shared rate-limit counters and control sockets of this run, not the checkout's.

    Apps (and servers) catch read models up inline unless a test starts a
    projection runner and asks for runner mode itself.
    """
    path = tmp_path_factory.mktemp("run")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LEDGER_RUNTIME_DIR", str(path))
        patch.setenv("LEDGER_PROJECTIONS", "inline")
        yield path


@contextmanager
def scratch_schema(prefix: str = "t") -> Iterator[str]:
    """A database URL on a new, empty PostgreSQL schema, dropped afterwards."""
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@contextmanager
def append_lock_held(url: str) -> Iterator[None]:
    """Another writer holds the database's append lock until the block ends."""
    if url.startswith("sqlite:///"):
        holder = sqlite3.connect(url[len("sqlite:///") :], isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        return
    with psycopg.connect(url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (APPEND_LOCK_ID,))
        try:
            yield
        finally:
            holder.execute("SELECT pg_advisory_unlock(%s)", (APPEND_LOCK_ID,))


@pytest.fixture
def pg_schema() -> Iterator[str]:
    with scratch_schema() as url:
        yield url


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    return request.getfixturevalue("pg_schema")


@pytest.fixture
def config(database_url: str, tmp_path: Path) -> Config:
    return Config.from_env(database_url=database_url, keys_dir=tmp_path / "keys", master_key="")


def initialized(config: Config) -> None:
    """Run `ledger init` on `config` (schema, keys, anchor) and close what it opened."""
    setup = Ledger(config)
    try:
        setup.init()
    finally:
        setup.close()


@pytest.fixture
def ledger(config: Config) -> Iterator[Ledger]:
    instance = Ledger(config)
    instance.init()
    yield instance
    instance.close()


@pytest.fixture
def app(config: Config) -> Iterator[Any]:
    from ledger.api import create_app

    initialized(config)
    application = create_app(config)
    application.config["TESTING"] = True
    yield application
    application.extensions["ledger"].ledger.close()


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


def make_token(app: Any, *scopes: str) -> dict[str, str]:
    _, token = app.extensions["ledger"].tokens.create(list(scopes), label="test")
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def admin(app: Any) -> dict[str, str]:
    return make_token(app, "admin")


@pytest.fixture
def appender(app: Any) -> dict[str, str]:
    return make_token(app, "events:append")


@pytest.fixture
def auditor(app: Any) -> dict[str, str]:
    return make_token(app, "audit:read")
