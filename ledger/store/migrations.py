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
from ledger.store.db import Database, StoreError
from ledger.store.schema import POSITIONING_SCHEMA, ROSTER_SCHEMA, SCHEMA

VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS ledger_schema (
    version INTEGER PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at TEXT NOT NULL
)
"""


@dataclass(frozen=True)
class Migration:
    """One schema step: SQL per dialect (`sqlite`, `postgresql`), statements split on `;`."""

    version: int
    description: str
    sql: dict[str, str]

    def statements(self, kind: str) -> list[str]:
        return [s.strip() for s in self.sql[kind].split(";") if s.strip()]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "ledger core tables", {"sqlite": SCHEMA, "postgresql": SCHEMA}),
    Migration(2, "answer-id index and positioning folds", POSITIONING_SCHEMA),
    Migration(3, "roster folds", {"sqlite": ROSTER_SCHEMA, "postgresql": ROSTER_SCHEMA}),
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
        for statement in migration.statements(db.kind):
            cur.execute(statement)
        cur.execute(
            "INSERT INTO ledger_schema (version, description, applied_at) VALUES (?, ?, ?)",
            (migration.version, migration.description, clock.format_time(clock.now())),
        )


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
