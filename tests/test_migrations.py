"""The versioned schema: `ledger init` migrates once and is idempotent; serving never migrates."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from ledger.cli import main
from ledger.config import Config
from ledger.store import migrations
from ledger.store.application import Ledger
from ledger.store.db import connect
from ledger.store.migrations import Migration, SchemaOutdated, SchemaTooNew

NEXT = Migration(
    migrations.latest() + 1,
    "a table that cannot be created twice",
    dict.fromkeys(("sqlite", "postgresql"), "CREATE TABLE once_only (id INTEGER PRIMARY KEY)"),
)


@pytest.fixture
def run(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("LEDGER_DATABASE_URL", database_url)
    monkeypatch.setenv("LEDGER_KEYS_DIR", str(tmp_path / "keys"))

    def invoke(*args: str, ok: bool = True):
        result = CliRunner().invoke(main, list(args), catch_exceptions=False)
        assert (result.exit_code == 0) == ok, result.output + result.stderr
        return result

    return invoke


def _schema_rows(url: str) -> list[tuple]:
    db = connect(url)
    try:
        with db.read() as cur:
            cur.execute("SELECT version, description, applied_at FROM ledger_schema")
            return [tuple(row) for row in cur.fetchall()]
    finally:
        db.close()


def test_init_twice_changes_nothing_and_prints_the_version(run, database_url: str) -> None:
    latest = migrations.latest()
    assert f"schema version {latest} (migrated from 0)" in run("init").stdout
    rows = _schema_rows(database_url)
    assert [r[0] for r in rows] == list(range(1, latest + 1))
    assert f"schema version {latest} (up to date)" in run("init").stdout
    assert _schema_rows(database_url) == rows


def test_a_ledger_from_before_versions_is_refused_until_init_migrates_it(
    run, database_url: str
) -> None:
    run("init")
    run("demo", "--candidates", "2")
    db = connect(database_url)
    with db.write() as cur:
        cur.execute("DROP TABLE ledger_schema")
    db.close()

    refused = run("projections", "status", ok=False)
    assert refused.stderr.startswith("error: the database schema is at version 0")
    assert "run `ledger init`" in refused.stderr and len(refused.stderr.splitlines()) == 1
    assert "migrated from 0" in run("init").stdout
    assert run("audit", "verify").stdout.startswith("OK:")  # the history is untouched


def test_a_schema_newer_than_the_code_is_refused_by_serving_and_by_init(
    run, config: Config
) -> None:
    run("init")
    db = connect(config.database_url)
    migrations.migrate(db, (*migrations.MIGRATIONS, NEXT))
    db.close()

    with pytest.raises(SchemaTooNew, match="newer than this release"):
        Ledger.open_existing(config)
    for command in (("serve",), ("init",)):
        refused = run(*command, ok=False)
        assert "never downgrade" in refused.stderr and len(refused.stderr.splitlines()) == 1


def test_migrations_run_in_order_once_when_nodes_start_together(ledger: Ledger) -> None:
    url = ledger.config.database_url
    steps = (*migrations.MIGRATIONS, NEXT)
    with pytest.raises(SchemaOutdated):
        migrations.check(ledger.db, steps)
    failures: list[BaseException] = []

    def node() -> None:
        db = connect(url)
        try:
            migrations.migrate(db, steps)  # NEXT fails if it runs twice
        except BaseException as exc:
            failures.append(exc)
        finally:
            db.close()

    nodes = [threading.Thread(target=node) for _ in range(4)]
    for thread in nodes:
        thread.start()
    for thread in nodes:
        thread.join()
    assert failures == []
    assert migrations.check(ledger.db, steps) == NEXT.version
    assert [r[0] for r in _schema_rows(url)] == [m.version for m in steps]
