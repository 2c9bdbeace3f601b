"""The README's platform walk-through, run as written against a real `ledger serve`.

A platform must be able to integrate from the docs alone, so the commands are
taken from the README itself (`tests/walkthroughs.py`), not copied here: when
the API changes and the README does not, this test fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from ledger.config import Config
from ledger.store.application import Ledger
from tests.served import serve
from tests.walkthroughs import ROOT, run_bash, walkthrough


def test_the_readme_names_real_ids_only() -> None:
    """The single-answer example in "Using it" names a challenge of the shipped referential."""
    from ledger.domain.referential import load_referential

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ref = load_referential()
    for challenge in re.findall(r'"challenge":"([^"$\\]+)"', readme):
        ref.challenge(challenge)


@pytest.mark.skipif(not shutil.which("jq"), reason="the walk-through uses jq")
def test_the_platform_walkthrough_goes_from_an_empty_ledger_to_a_certificate(
    tmp_path: Path,
) -> None:
    database_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    keys = tmp_path / "keys"
    ledger = Ledger(Config.from_env(database_url=database_url, keys_dir=keys))
    ledger.init()
    ledger.close()
    with serve(database_url, keys) as (base, _):
        env = {**os.environ, "LEDGER": base, "LEDGER_DATABASE_URL": database_url}
        env["LEDGER_KEYS_DIR"] = str(keys)
        done = run_bash(walkthrough("platform") + '\necho "CODE=$CODE"\n', env)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert json.loads("\n".join(lines[-6:-1]))["status"] == "valid", done.stdout
    assert re.fullmatch(r"CODE=P-\S{8}", lines[-1]), done.stdout
    assert '"course_completed":true,"status":"validated"' in done.stdout
    assert '"eligible": true' in done.stdout


def test_the_docs_link_only_to_files_of_the_repository() -> None:
    """The repository stands alone: every relative link of README and docs/ resolves inside it."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    for page in pages:
        text = page.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text):
            resolved = (page.parent / target).resolve()
            assert resolved.is_relative_to(ROOT) and resolved.exists(), (page.name, target)
        assert "DOMAIN.md" not in text and "../shared" not in text, page.name
