"""bench/national.py runs end to end on PostgreSQL with tiny settings and prints its summary.

Timings are not asserted (they depend on the machine); what is: the set-up, each
step's lines, the summary, and that at a low rate the mix is accepted (no error
responses: every answer, batch and lookup the load generator sends is valid).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import PG_URL

ROOT = Path(__file__).resolve().parent.parent


def test_national_bench_prints_its_summary() -> None:
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "national.py"), "--database", PG_URL,
         "--seconds", "4", "--start", "20", "--step", "20", "--max-rate", "40",
         "--courses", "12", "--generators", "2"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    out = run.stdout
    assert run.returncode in (0, 1), run.stderr[-3000:]
    assert "set-up (PostgreSQL" in out and "courses started" in out
    assert "step     20 answers/s: achieved" in out
    for kind in ("certification", "positioning", "lookup"):
        assert f"    {kind} " in out
    assert "summary (PostgreSQL, ledger serve --workers 2, LEDGER_PROJECTIONS=" in out
    assert "2 load generator(s)" in out
    assert "highest sustained:" in out and "national peak target 2,000" in out
    assert "projection lag after the last step:" in out
    assert "where the time goes at" in out and "CPU per answer: ledger" in out
    assert "errors:" not in out
