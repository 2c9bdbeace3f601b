"""The versioned schema: ordered migrations, each run once, and the check before serving.

`ledger_schema` records every migration applied (version, what it does,
when). `ledger init` applies the pending ones in order, each in its own
transaction under the append lock, re-reading the version once it holds the
lock: several nodes starting together queue on that lock and the later ones
find the work done. Serving never migrates: a database behind the code (or
created before versions existed) or ahead of it is refused with one line, so
a node of an older release cannot write into a schema it does not know.

Migration 1 is the schema the ledger had when versions were introduced; it
only creates what is missing, so a ledger created before then adopts it
unchanged. Later migrations only add (tables, columns, indexes): nodes of the
previous release keep serving while an upgrade is rolled out. Read models are not here: they rebuild themselves from the log
when their schema digest changes (`ledger/projections/runner.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ledger.domain import clock
from ledger.store.db import Cursor, Database, StoreError
from ledger.store.schema import POSITIONING_SCHEMA, SCHEMA, WEBHOOK_DUE, WEBHOOK_HOST_COLUMN

VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS ledger_schema (
    version INTEGER PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at TEXT NOT NULL
)
"""


@dataclass(frozen=True)
class Migration:
    """One schema step: SQL per dialect (`sqlite`, `postgresql`), statements split on `;`.

    `columns` (table, column, declaration) are added unless present: SQLite has no
    `ADD COLUMN IF NOT EXISTS`, and a ledger whose versions were lost re-runs every step.
    """

    version: int
    description: str
    sql: dict[str, str]
    columns: tuple[tuple[str, str, str], ...] = ()

    def statements(self, kind: str) -> list[str]:
        return [s.strip() for s in self.sql[kind].split(";") if s.strip()]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "ledger core tables", {"sqlite": SCHEMA, "postgresql": SCHEMA}),
    Migration(2, "answer-id index and positioning folds", POSITIONING_SCHEMA),
    Migration(3, "webhook target host and due-delivery index", WEBHOOK_DUE, (WEBHOOK_HOST_COLUMN,)),
)


class SchemaOutdated(StoreError):
    """The database is behind the code: `ledger init` migrates it."""


class SchemaTooNew(StoreError):
    """The database was migrated by a newer release: this code must not touch it."""


def latest(migrations: Sequence[Migration] = MIGRATIONS) -> int:
    return migrations[-1].version if migrations else 0


def current(db: Database) -> int:
    """The version applied to `db` (0: none, or a ledger from before versions)."""
    if not db.has_table("ledger_schema"):
        return 0
    return int(db.scalar("SELECT COALESCE(MAX(version), 0) FROM ledger_schema"))


def migrate(db: Database, migrations: Sequence[Migration] = MIGRATIONS) -> tuple[int, int]:
    """Apply the pending migrations in order; return (version before, version after)."""
    before = current(db)
    if before > latest(migrations):
        raise _too_new(before, migrations)
    for migration in migrations:
        _apply_once(db, migration)
    return before, current(db)


def _apply_once(db: Database, migration: Migration) -> None:
    """Run one migration and record it, in one transaction, unless another node did."""
    with db.write() as cur:
        cur.execute(VERSION_TABLE)
        cur.execute("SELECT COUNT(*) FROM ledger_schema WHERE version = ?", (migration.version,))
        if cur.fetchone()[0]:
            return
        for table, column, declaration in migration.columns:
            if not _has_column(cur, db.kind, table, column):
                cur.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
        for statement in migration.statements(db.kind):
            cur.execute(statement)
        cur.execute(
            "INSERT INTO ledger_schema (version, description, applied_at) VALUES (?, ?, ?)",
            (migration.version, migration.description, clock.format_time(clock.now())),
        )


COLUMN_EXISTS = {
    "sqlite": "SELECT COUNT(*) FROM pragma_table_info(?) WHERE name = ?",
    "postgresql": "SELECT COUNT(*) FROM information_schema.columns WHERE table_schema ="
    " current_schema() AND table_name = ? AND column_name = ?",
}


def _has_column(cur: Cursor, kind: str, table: str, column: str) -> bool:
    cur.execute(COLUMN_EXISTS[kind], (table, column))
    return bool(cur.fetchone()[0])


def check(db: Database, migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """The database's version when it is exactly the code's; SchemaOutdated/SchemaTooNew otherwise."""
    version = current(db)
    if version > latest(migrations):
        raise _too_new(version, migrations)
    if version < latest(migrations):
        raise SchemaOutdated(
            f"the database schema is at version {version}, this release needs"
            f" {latest(migrations)}: run `ledger init` once to migrate it"
        )
    return version


def _too_new(version: int, migrations: Sequence[Migration]) -> SchemaTooNew:
    return SchemaTooNew(
        f"the database schema is at version {version}, newer than this release's"
        f" {latest(migrations)}: upgrade the code, never downgrade a migrated database"
    )
