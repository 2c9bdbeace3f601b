"""Backups: one consistent, portable snapshot of what cannot be rebuilt, and its restore.

A backup is gzip'd JSON lines: a header (format, schema version, log head),
then one `[table, row]` line per row, then a trailer with the row count of
every table, so a truncated file is refused. Every table is read in one
snapshot transaction (PostgreSQL REPEATABLE READ, SQLite's read transaction
in WAL mode): the events, tiles, checkpoints, vault keys and tokens all stand
at the same instant, while appends go on. The format is the same on both
backends, so a SQLite ledger restores into PostgreSQL and back.

What is kept: the log and its Merkle evidence, the personal-data vault
(`subject_keys` wrapped by the master key, which is not in the backup, and the
links), the INE index, tokens (hashed) and webhooks. What is not: read models
and projection positions (rebuilt from the log after a restore), the
idempotency cache (short-lived, sealed under callers' tokens), the schema
table (the restore migrates the target). Nothing in a backup is trusted:
`ledger audit verify` on the restored copy is the proof it is the log.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ledger.domain import clock
from ledger.domain.erasure import Erasure
from ledger.envelope import ENVELOPE_FIELDS
from ledger.store import migrations
from ledger.store.db import Cursor, Database, StoreError

FORMAT = "crcn-ledger-backup/1"
PAGE = 5000
ERASED = Erasure.Erased.TYPE


@dataclass(frozen=True)
class Table:
    """A backed-up table: its columns, the first `keys` of them its primary key."""

    name: str
    columns: tuple[str, ...]
    keys: int = 1

    def select(self, after: bool) -> str:
        cols, pk = ", ".join(self.columns), ", ".join(self.columns[: self.keys])
        where = f" WHERE ({pk}) > ({', '.join('?' * self.keys)})" if after else ""
        return f"SELECT {cols} FROM {self.name}{where} ORDER BY {pk} LIMIT {PAGE}"

    def insert(self) -> str:
        marks = ", ".join("?" * len(self.columns))
        return f"INSERT INTO {self.name} ({', '.join(self.columns)}) VALUES ({marks})"


TABLES = (
    Table("ledger_events", ENVELOPE_FIELDS),
    Table("tlog_tiles", ("level", "idx", "hashes"), keys=2),
    Table("tlog_checkpoints", ("size", "root", "note", "created_at")),
    Table("tlog_cosignatures", ("size", "witness", "line", "timestamp"), keys=2),
    Table("subject_keys", ("subject", "wrapped", "created", "erased")),
    Table("subject_links", ("owner", "subject"), keys=2),
    Table("external_ids", ("blind", "candidate", "subject", "created")),
    Table("api_tokens", ("id", "token_hash", "scopes", "label", "created", "revoked")),
    Table("webhooks", ("id", "school", "url", "created", "after_seq", "host")),
    Table(
        "webhook_deliveries",
        ("webhook", "seq", "body", "attempts", "next_attempt", "status", "last_error", "delivered"),
        keys=2,
    ),
)
BY_NAME = {table.name: table for table in TABLES}


class BackupError(StoreError):
    """A backup cannot be written or read, or its target is not empty."""


@dataclass(frozen=True)
class Summary:
    head: int
    rows: dict[str, int]


def _encode(value: Any) -> Any:
    if isinstance(value, bytes | memoryview):
        return {"b64": base64.b64encode(bytes(value)).decode()}
    return value


def _decode(value: Any) -> Any:
    return base64.b64decode(value["b64"]) if isinstance(value, dict) else value


def _rows(cur: Cursor, table: Table) -> Iterator[tuple[Any, ...]]:
    """Every row of `table` in primary-key order, a page at a time (constant memory)."""
    cur.execute(table.select(after=False))
    while page := cur.fetchall():
        yield from page
        cur.execute(table.select(after=True), page[-1][: table.keys])


def backup(db: Database, out: Path) -> Summary:
    """Write a snapshot of `db` to `out` (refused if it exists); a failure leaves no file.

    The file is the owner's only: it holds wrapped personal-data keys and token hashes.
    """
    if out.exists():
        raise BackupError(f"{out} exists; give a new file name")
    partial = out.with_name(out.name + ".partial")
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # owner only
        with os.fdopen(fd, "wb") as raw:
            with gzip.open(raw, "wt", encoding="utf-8") as file, db.read() as cur:
                summary = _dump(cur, migrations.current(db), file)
            raw.flush()
            os.fsync(raw.fileno())
        partial.rename(out)
    finally:
        partial.unlink(missing_ok=True)
    return summary


def _dump(cur: Cursor, schema: int, file: IO[str]) -> Summary:
    cur.execute("SELECT COALESCE(MAX(seq), 0) FROM ledger_events")
    head = int(cur.fetchone()[0])
    created = clock.format_time(clock.now())
    header = {"format": FORMAT, "schema": schema, "head": head, "created": created}
    file.write(json.dumps({**header, "tables": {t.name: t.columns for t in TABLES}}) + "\n")
    rows: dict[str, int] = {}
    for table in TABLES:
        rows[table.name] = 0
        for row in _rows(cur, table):
            file.write(json.dumps([table.name, [_encode(v) for v in row]]) + "\n")
            rows[table.name] += 1
    file.write(json.dumps({"end": rows}) + "\n")
    return Summary(head, rows)


def restore(source: Path, db: Database) -> Summary:
    """Load a backup into an empty database, in one transaction: all of it or nothing."""
    _require_empty(db)
    try:
        return _restore(source, db)
    except (OSError, EOFError, ValueError, LookupError, TypeError) as exc:
        raise BackupError(f"{source} is not a readable ledger backup: {exc}") from exc


def _restore(source: Path, db: Database) -> Summary:
    with gzip.open(source, "rt", encoding="utf-8") as file:
        lines = (json.loads(line) for line in file)
        header = _header(next(lines, None), source)
        if header["schema"] > migrations.latest():
            raise migrations.SchemaTooNew(
                f"{source} was taken at schema version {header['schema']}, newer than this"
                f" release's {migrations.latest()}: restore it with that release or a later one"
            )
        migrations.migrate(db)
        with db.write() as cur:
            rows = _load(cur, lines, source)
    return Summary(int(header["head"]), rows)


def _require_empty(db: Database) -> None:
    for table in TABLES:
        if db.has_table(table.name) and db.scalar(f"SELECT COUNT(*) FROM {table.name}"):
            raise BackupError(f"the target database is not empty ({table.name} has rows)")


def _header(line: Any, source: Path) -> dict[str, Any]:
    if not isinstance(line, dict) or line.get("format") != FORMAT:
        raise BackupError(f"{source} is not a ledger backup ({FORMAT})")
    if any(tuple(line["tables"].get(t.name, ())) != t.columns for t in TABLES):
        raise BackupError(f"{source} holds tables of another layout than this release's")
    return line


def _load(cur: Cursor, lines: Iterable[Any], source: Path) -> dict[str, int]:
    """Insert every row, a batch at a time; BackupError unless the trailer's counts match."""
    rows = {table.name: 0 for table in TABLES}
    batch: list[list[Any]] = []
    name = ""
    for line in lines:
        if isinstance(line, dict):
            _flush(cur, name, batch)
            if line.get("end") != rows:
                raise BackupError(f"{source} is inconsistent: rows do not match its trailer")
            return rows
        if line[0] != name or len(batch) >= PAGE:
            _flush(cur, name, batch)
            name = line[0]
        if name not in BY_NAME:
            raise BackupError(f"{source} holds an unknown table {name!r}")
        batch.append([_decode(v) for v in line[1]])
        rows[name] += 1
    raise BackupError(f"{source} is truncated: no trailer")


def _flush(cur: Cursor, name: str, batch: list[list[Any]]) -> None:
    if batch:
        cur.executemany(BY_NAME[name].insert(), batch)
        batch.clear()


def erased_subjects(lines: Iterable[str]) -> list[str]:
    """The subjects of every erasure event in ndjson envelopes (an export's `events.ndjson`)."""
    subjects = []
    for number, line in enumerate(lines, 1):
        if ERASED in line:
            try:
                record = json.loads(line)
                if record.get("type") == ERASED:
                    subjects.append(str(record["data"]["subject"]))
            except (ValueError, LookupError, TypeError, AttributeError) as exc:
                raise BackupError(f"line {number} is not an erasure envelope: {exc}") from exc
    return subjects


def logged_erasures(db: Database) -> list[str]:
    """The subjects the log itself says were erased (each must stay erased after a restore)."""
    with db.read() as cur:
        cur.execute("SELECT data FROM ledger_events WHERE type = ? ORDER BY seq", (ERASED,))
        return [json.loads(row[0])["subject"] for row in cur.fetchall()]
