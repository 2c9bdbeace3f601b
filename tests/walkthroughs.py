"""The README's walk-throughs, taken from the README itself and run in bash as written.

Each is a fenced `sh` block between `<!-- walkthrough:NAME -->` and
`<!-- /walkthrough:NAME -->`. The platform's starts from an empty ledger; the
others continue its shell, so `after_platform` replays the platform's variables
(saved with `declare -p`) before them, as a reader pasting them in order would have.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(
    r"<!-- walkthrough:(?P<name>[a-z]+) -->\s*```sh\n(?P<body>.*?)```\s*"
    r"<!-- /walkthrough:(?P=name) -->",
    re.S,
)
ASSIGNED = re.compile(r"^(?:export )?([A-Z][A-Z0-9_]*)=", re.M)


def walkthrough(name: str) -> str:
    """The shell commands of one README walk-through (exactly one block by that name)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    found = [m["body"] for m in BLOCK.finditer(readme) if m["name"] == name]
    assert len(found) == 1, f"the README holds exactly one {name} walk-through"
    return found[0]


def saving_variables(script: str, state: Path) -> str:
    """`script`, then the variables it assigned saved to `state` for the next walk-through."""
    names = " ".join(dict.fromkeys(ASSIGNED.findall(script)))
    return f"{script}\ndeclare -p {names} > {state}\n"


def after(state: Path, script: str) -> str:
    """`script` in a shell where the walk-through that saved `state` ran before."""
    return f"source {state}\n{script}"


def run_bash(
    script: str, env: Mapping[str, str], timeout: float = 180
) -> subprocess.CompletedProcess:
    """Run `script` in the repository with bash -e -o pipefail, as a careful reader would."""
    return subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script],
        cwd=ROOT, env=dict(env), capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
