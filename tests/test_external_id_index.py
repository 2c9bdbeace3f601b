"""The INE index rebuilt from the log: after a restore, or for registrations older than it.

On SQLite and PostgreSQL: the rows are emptied as an old database or a restore
leaves them, the gap is shown (a second registration of the same INE goes
through), then `ledger external-ids rebuild` and `ledger init` put the rows
back from the verified registrations, skip the erased, and report the
duplicate without failing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ledger.cli import main
from tests.conftest import make_token
from tests.helpers import IDENTITY, register

KEPT, ERASED, TWICE = "INE00000011K", "INE00000012E", "INE00000013T"


@pytest.fixture
def cli(config: Any, monkeypatch: pytest.MonkeyPatch):
    """The `ledger` command on the app's own database and keys."""
    monkeypatch.setenv("LEDGER_DATABASE_URL", config.database_url)
    monkeypatch.setenv("LEDGER_KEYS_DIR", str(Path(config.keys_dir)))

    def invoke(*args: str) -> str:
        result = CliRunner().invoke(main, list(args), catch_exceptions=False)
        assert result.exit_code == 0, result.output + result.stderr
        return result.stdout

    return invoke


def _empty_index(app: Any) -> None:
    with app.extensions["ledger"].ledger.db.write(lock=None) as cur:
        cur.execute("DELETE FROM external_ids")


def _holder(app: Any, ine: str) -> str | None:
    held = app.extensions["ledger"].candidates.external_ids.holder(ine)
    return held[0] if held else None


def _registrations(app: Any, client: Any) -> dict[str, Any]:
    """Three pupils with an INE, one erased, the index then emptied; the same INE given twice."""
    platform, admin = make_token(app, "events:append"), make_token(app, "admin")
    ids = {ine: register(client, platform, external_id=ine)["id"] for ine in (KEPT, ERASED, TWICE)}
    subject = app.extensions["ledger"].candidates.answering(ids[ERASED]).subject
    erased = client.post(
        f"/api/v1/subjects/{subject}/erasure", json={"reason": "consent-withdrawn"}, headers=admin
    )
    assert erased.status_code == 201, erased.get_json()
    _empty_index(app)
    assert _holder(app, KEPT) is None  # the gap: nobody found by INE
    ids["duplicate"] = register(client, platform, external_id=TWICE)["id"]  # not refused
    _empty_index(app)
    return {"ids": ids, "platform": platform}


def test_rebuild_restores_the_rows_and_reports_the_duplicate(app, client, cli) -> None:
    story = _registrations(app, client)
    ids = story["ids"]
    out = cli("external-ids", "rebuild")
    assert "2 added, 0 already there, 1 erased skipped, 0 unverified skipped, 1 conflicts" in out
    assert f"candidate {ids['duplicate']} has the external id of candidate {ids[TWICE]}" in out
    assert KEPT not in out and TWICE not in out  # the report names candidates, never an INE
    assert (_holder(app, KEPT), _holder(app, TWICE), _holder(app, ERASED)) == (
        ids[KEPT], ids[TWICE], None
    )  # fmt: skip
    again = client.post(
        "/api/v1/candidates",
        json={**IDENTITY, "external_id": KEPT},
        headers=story["platform"],
    )
    assert again.status_code == 409 and again.get_json()["candidate"] == ids[KEPT]
    assert "0 added, 2 already there" in cli("external-ids", "rebuild")  # idempotent


def test_init_rebuilds_an_empty_index_only(app, client, cli) -> None:
    ids = _registrations(app, client)["ids"]
    out = cli("init")
    assert "external-id index: 2 added" in out and _holder(app, KEPT) == ids[KEPT]
    assert "external-id index" not in cli("init")  # rows there: nothing to do


def test_a_registration_that_does_not_verify_adds_no_row(app, client, cli) -> None:
    """The database is untrusted: an edited event is reported, never indexed."""
    story = _registrations(app, client)
    ledger = app.extensions["ledger"].ledger
    (env,) = [e for e in ledger.recorder.stream_envelopes(story["ids"][KEPT]) if e.version == 1]
    with ledger.db.write(lock=None) as cur:
        cur.execute(
            "UPDATE ledger_events SET time = '2020-01-01T00:00:00.000000Z' WHERE seq = ?",
            (env.seq,),
        )
    out = cli("external-ids", "rebuild")
    assert "1 added" in out and "1 unverified skipped" in out
    assert f"unverified registration at seq {env.seq}" in out and _holder(app, KEPT) is None
