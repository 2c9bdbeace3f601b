"""The README's platform walk-through, run as written against a real `ledger serve`.

A platform must be able to integrate from the docs alone, so the commands are
taken from the README itself (between the `platform-walkthrough` comments), not
copied here: when the API changes and the README does not, this test fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from ledger.config import Config
from ledger.store.application import Ledger
from tests.served import serve

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(
    r"<!-- platform-walkthrough -->\s*```sh\n(.*?)```\s*<!-- /platform-walkthrough -->", re.S
)


def walkthrough() -> str:
    """The shell commands of the README's "For the platform" section."""
    found = BLOCK.findall((ROOT / "README.md").read_text(encoding="utf-8"))
    assert len(found) == 1, "the README holds exactly one platform walk-through"
    return found[0]


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
        script = walkthrough() + '\necho "CODE=$CODE"\n'
        done = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", script],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert json.loads("\n".join(lines[-6:-1]))["status"] == "valid", done.stdout
    assert re.fullmatch(r"CODE=P-\S{8}", lines[-1]), done.stdout
    assert '"course_completed":true,"status":"validated"' in done.stdout
    assert '"eligible": true' in done.stdout
