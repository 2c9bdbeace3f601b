"""The README's walk-throughs for centres, institutions, verifiers and auditors, run as written.

Each continues the platform walk-through's shell, as the README says: one served
ledger per module (with a real witness, so the auditors' witness check runs too)
goes through the platform walk-through once, then each section runs after it;
the centres' section (the one that writes the most) also runs on PostgreSQL.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from ledger.config import Config
from ledger.store.application import Ledger
from tests.conftest import BACKENDS
from tests.served import serve
from tests.walkthroughs import after, run_bash, saving_variables, walkthrough
from tests.witness_process import witness_process


@dataclass(frozen=True)
class Shell:
    """Where the platform walk-through ran: its environment and its saved variables."""

    env: dict[str, str]
    state: Path
    base: str

    def run(self, name: str, out: Path) -> str:
        """Run the README walk-through `name` after the platform's; its output."""
        done = run_bash(after(self.state, walkthrough(name)), {**self.env, "OUT": str(out)})
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout


@contextmanager
def platform_shell(database_url: str, where: Path) -> Iterator[Shell]:
    """A served ledger with a witness, after the README's platform walk-through."""
    keys = where / "keys"
    ledger = Ledger(Config.from_env(database_url=database_url, keys_dir=keys))
    ledger.init()
    anchor = ledger.trust_anchor()
    ledger.close()
    assert anchor is not None
    with witness_process([anchor.to_string()]) as (witness, vkey, _):
        settings = {"LEDGER_WITNESSES": f"{vkey} {witness}", "LEDGER_CHECKPOINT_SECONDS": "1",
                    "LEDGER_WEBHOOK_ALLOW_PRIVATE": "1"}  # fmt: skip
        with serve(database_url, keys, env=settings) as (base, _):
            env = {**os.environ, **settings, "LEDGER": base, "WITNESS": vkey,
                   "HOOK": "http://127.0.0.1:9/hook"}  # fmt: skip
            env.update(LEDGER_DATABASE_URL=database_url, LEDGER_KEYS_DIR=str(keys))
            state = where / "platform.sh"
            done = run_bash(saving_variables(walkthrough("platform"), state), env)
            assert done.returncode == 0, done.stdout + done.stderr
            yield Shell(env, state, base)


@pytest.fixture(scope="module")
def shell(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shell]:
    """On SQLite, shared by the module's tests: each section only reads or adds."""
    where = tmp_path_factory.mktemp("walkthroughs")
    with platform_shell(f"sqlite:///{where / 'ledger.db'}", where) as ready:
        yield ready


@pytest.fixture
def pg_shell(pg_schema: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shell]:
    with platform_shell(pg_schema, tmp_path_factory.mktemp("walkthroughs-pg")) as ready:
        yield ready


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_centres_walkthrough(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    shell = request.getfixturevalue("shell" if backend == "sqlite" else "pg_shell")
    out = shell.run("centres", tmp_path)
    assert '"extra_time_percent":33,"accessibility":true' in out
    assert '"Alarme incendie de 14 h 20 à 14 h 30"' in out  # the report, in clear
    assert '"Connexion perdue à 15 h 40"' in out
    assert '"result_status":"validated","reproducibility_rate":100,"neutralized":1' in out
    rows = (tmp_path / "session.csv").read_text(encoding="utf-8").splitlines()
    assert rows[0].startswith("\ufeffine,") and len(rows) == 2
    assert rows[1].startswith("INE0123456789,")
    with zipfile.ZipFile(tmp_path / "attestations.zip") as bundle:
        (name,) = bundle.namelist()
    assert name.endswith("-fr.pdf")


def test_the_institutions_walkthrough(shell: Shell, tmp_path: Path) -> None:
    out = shell.run("institutions", tmp_path)
    assert '{"ine":"INE0123456789","status":"valid","pix_score":256,' in out
    assert "signature valid, kid" in out
    assert (tmp_path / "school.csv").read_text(encoding="utf-8").startswith("\ufeffine,")
    assert out.rstrip().endswith("[]")  # the new webhook's log: nothing published since
    assert '"url":"http://127.0.0.1:9/hook"}' in out  # the school's webhooks, listed


def test_the_verifiers_walkthrough(shell: Shell, tmp_path: Path) -> None:
    out = shell.run("verifiers", tmp_path)
    facts = json.loads(out.splitlines()[0])
    assert facts["status"] == "valid" and facts["checked"] is True
    assert facts["holder"]["last_name"] == "Lefèvre" and facts["levels"]["5.2"] >= 1
    assert '"type":"certification.CertificateIssued"}],"witnessed":' in out
    assert "VALID signature: certificate P-" in out


def test_the_auditors_walkthrough(shell: Shell, tmp_path: Path) -> None:
    _wait_for_a_witnessed_checkpoint(shell.base)
    out = shell.run("auditors", tmp_path)
    assert out.count("all signatures valid") == 2, out  # the second one with --witness
    assert "\n\u2014 witness.test/w1 " in (tmp_path / "bundle" / "checkpoint.txt").read_text()
    assert "replayed " in out and "proj_certificates 1" in out
    assert "consistent with size" in out


def _wait_for_a_witnessed_checkpoint(base: str) -> None:
    """The service signs and has its checkpoint cosigned in the background: wait for it."""
    for _ in range(300):
        with urllib.request.urlopen(f"{base}/api/v1/ready", timeout=5) as answer:
            checks = json.load(answer)["checks"]
        signed = checks["signed_checkpoint"]
        if signed["size"] == checks["database"]["head"] and signed["cosigners"]:
            return
        time.sleep(0.1)
    raise AssertionError(f"no witnessed checkpoint of the whole log: {checks}")
