"""A rebuild replays into shadow tables and swaps them in only on success.

Meanwhile appends go on (SQLite's write lock is held a page at a time) and
readers keep the old read models; events appended during the rebuild are in
the read models after the swap; no shadow table is left behind.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from ledger.projections import runner
from ledger.projections.runner import (
    ProjectionStalled,
    catch_up,
    dump,
    head,
    position,
    rebuild,
    stalls,
)
from tests.certification_flow import Flow
from tests.test_projection_faults import _centre, _centre_names, _poison, _shadows

PAGE = 7  # small pages: several per projection, and a partial last one


@pytest.fixture
def certified(app, client, admin, monkeypatch) -> Any:
    """A published certificate: every projection has rows; incremental catch-up done."""
    Flow(app, client, admin).certified()
    st = app.extensions["ledger"]
    st.fresh()
    monkeypatch.setattr(runner, "PAGE", PAGE)
    return st


def _indexes(db: Any) -> list[tuple[str, str]]:
    """(index, table) of every projection table: names must survive the swap."""
    if db.kind == "sqlite":
        sql = "SELECT name, tbl_name FROM sqlite_master WHERE type = 'index' AND tbl_name LIKE 'proj%'"
    else:
        sql = (
            "SELECT indexname, tablename FROM pg_indexes"
            " WHERE schemaname = current_schema() AND left(tablename, 4) = 'proj'"
        )
    with db.read() as cur:
        cur.execute(sql)
        return sorted(tuple(r) for r in cur.fetchall())


def _positions(st: Any) -> dict[str, int]:
    return {p.name: position(st.ledger.db, p.name) for p in st.projections}


def test_a_rebuild_gives_the_read_models_of_incremental_catch_up(certified) -> None:
    st = certified
    db = st.ledger.db
    live = dump(db, st.projections)
    assert set(live) == {t for p in st.projections for t in p.tables}
    assert all(live.values())  # every table of every projection has rows to compare
    indexes = _indexes(db)
    pages: list[tuple[str, int]] = []
    rebuild(db, st.projections, progress=lambda name, seq: pages.append((name, seq)))
    assert dump(db, st.projections) == live
    assert _positions(st) == dict.fromkeys(_positions(st), head(db))
    assert _indexes(db) == indexes  # same index (and key) names, none duplicated
    assert _shadows(db) == []
    assert len([p for p in pages if p[0] == "profiles"]) > 1  # replayed in several pages
    rebuild(db, st.projections)  # again: the swapped-in names do not collide with new shadows
    runner.create_tables(db, st.projections)  # a restart creates nothing twice
    assert dump(db, st.projections) == live and _indexes(db) == indexes


def test_appends_and_reads_go_on_during_a_rebuild(certified, client, admin) -> None:
    st = certified
    db = st.ledger.db
    with db.write() as cur:  # a visibly stale live read model
        cur.execute("UPDATE proj_centres SET city = 'stale'")
    during: list[dict[str, Any]] = []

    def between_pages(name: str, seq: int) -> None:
        if during and during[-1]["projection"] == name:
            return
        started = time.monotonic()
        with ThreadPoolExecutor(1) as pool:  # another connection, as another request would
            centre = pool.submit(_centre, client, admin, f"Centre during {name}").result(10)
        with db.read() as cur:
            cur.execute("SELECT DISTINCT city FROM proj_centres")
            cities = {r[0] for r in cur.fetchall()}
        during.append({"projection": name, "centre": centre, "cities": cities,
                       "seconds": time.monotonic() - started})  # fmt: skip

    rebuild(db, st.projections, progress=between_pages)
    assert [d["projection"] for d in during] == [p.name for p in st.projections]
    for seen in during:
        assert seen["seconds"] < 4  # never waited out the rebuild (SQLite gives up after 5 s)
        assert "stale" in seen["cities"]  # readers still on the old read model
    names = _centre_names(st)
    assert {f"Centre during {p.name}" for p in st.projections} <= names  # appended meanwhile
    with db.read() as cur:
        cur.execute("SELECT DISTINCT city FROM proj_centres")
        assert "stale" not in {r[0] for r in cur.fetchall()}
    assert _positions(st) == dict.fromkeys(_positions(st), head(db))
    assert _shadows(db) == []
    rebuilt = dump(db, st.projections)
    catch_up(db, st.projections)
    assert dump(db, st.projections) == rebuilt  # nothing was left for catch-up to apply


def test_an_event_appended_during_a_rebuild_that_fails_leaves_everything_as_it_was(
    certified,
) -> None:
    """The poison arrives after its projection was built: the swap itself fails, and rolls back."""
    st = certified
    db = st.ledger.db
    before, positions = dump(db, st.projections), _positions(st)
    poisoned: list[int] = []

    def poison_late(name: str, seq: int) -> None:
        if name == "certificates" and not poisoned:  # sessions already built
            poisoned.append(_poison(st, "certification.CentreCreated", {"kind": "school"}))

    with pytest.raises(ProjectionStalled) as caught:
        rebuild(db, st.projections, progress=poison_late)
    assert caught.value.name == "sessions" and caught.value.seq == poisoned[0]
    assert dump(db, st.projections) == before
    assert _positions(st) == positions
    assert stalls(db)["sessions"]["seq"] == poisoned[0]
    assert _shadows(db) == []


def test_a_crashed_rebuild_leaves_shadows_the_next_one_replaces(certified) -> None:
    st = certified
    db = st.ledger.db
    before = dump(db, st.projections)

    def crash(name: str, seq: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        rebuild(db, st.projections, progress=crash)
    assert dump(db, st.projections) == before and _shadows(db) == []
    sessions = next(p for p in st.projections if p.name == "sessions")
    runner._create_shadow(db, sessions)  # as a process killed mid-rebuild leaves it
    assert _shadows(db)
    rebuild(db, st.projections)
    assert dump(db, st.projections) == before and _shadows(db) == []


@pytest.mark.parametrize(
    "older", ["a recorded older digest", "no digest (built before digests)", "never caught up"]
)
def test_a_read_model_built_by_an_older_schema_is_rebuilt_when_tables_are_created(
    certified, older: str
) -> None:
    db = certified.ledger.db
    live, indexes, positions = dump(db, certified.projections), _indexes(db), _positions(certified)
    with db.write(lock=None) as cur:  # the sessions read model as an older release left it
        cur.execute("DROP TABLE proj_sessions")
        cur.execute("CREATE TABLE proj_sessions (session TEXT PRIMARY KEY, centre TEXT NOT NULL)")
        if older.startswith("no digest"):
            cur.execute("DELETE FROM projection_schemas")
        else:
            cur.execute("UPDATE projection_schemas SET digest = 'older' WHERE name = 'sessions'")
        if older == "never caught up":  # an empty read model of the older release
            cur.execute("DELETE FROM projection_positions WHERE name = 'sessions'")
    runner.create_tables(db, certified.projections)
    assert dump(db, certified.projections) == live
    assert _indexes(db) == indexes and _positions(certified) == positions
    assert not _shadows(db) and not stalls(db)
    with db.write(lock=None) as cur:  # recorded: the next start rebuilds nothing
        cur.execute("INSERT INTO proj_centres (centre, name, kind, city, created_at)"
                    " VALUES ('marker', 'm', 'school', 'c', 't')")  # fmt: skip
    runner.create_tables(db, certified.projections)
    assert "marker" in {row[0] for row in dump(db, certified.projections)["proj_centres"]}


def test_a_read_model_whose_tables_are_gone_is_replayed_from_the_whole_log(certified) -> None:
    """Its position row outlived the tables: recreated empty, they start again at seq 0."""
    db = certified.ledger.db
    live, positions = dump(db, certified.projections), _positions(certified)
    sessions = next(p for p in certified.projections if p.name == "sessions")
    with db.write(lock=None) as cur:
        for table in sessions.tables:
            cur.execute(f"DROP TABLE {table}")
    runner.create_tables(db, certified.projections)
    assert position(db, "sessions") == 0 and not stalls(db)
    catch_up(db, certified.projections)
    assert dump(db, certified.projections) == live and _positions(certified) == positions
