"""The `ledger` command end to end: init, keys, tokens, demo, export, audit, erasure."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from ledger.cli import main


@pytest.fixture
def run(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("LEDGER_DATABASE_URL", database_url)
    monkeypatch.setenv("LEDGER_KEYS_DIR", str(tmp_path / "keys"))
    runner = CliRunner()

    def invoke(*args: str, ok: bool = True):
        result = runner.invoke(main, list(args), catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, result.output + result.stderr
        return result

    invoke("init")
    return invoke


def test_demo_export_and_offline_audit(run, tmp_path: Path) -> None:
    run("demo", "--candidates", "6")
    bundle = tmp_path / "bundle"
    out = run("export", str(bundle)).stdout
    assert "exported" in out
    assert {p.name for p in bundle.iterdir()} == {"events.ndjson", "jwks.json", "checkpoint.txt"}
    assert run("audit", "verify", str(bundle)).stdout.startswith("OK:")
    assert run("audit", "verify").stdout.startswith("OK:")
    _assert_every_certification_rule_applies(bundle / "events.ndjson")


def _assert_every_certification_rule_applies(events: Path) -> None:
    """The demo history shows each rule at least once (docs/domain.md, "Certification")."""
    records = [json.loads(line) for line in events.read_text().splitlines()]
    of = lambda kind: [r for r in records if r["type"] == f"certification.{kind}"]  # noqa: E731
    scored = [r["data"] for r in of("CourseScored")]
    assert {(s["abort_reason"], s["result"]["status"]) for s in scored} >= {
        ("technical", "cancelled"),
        ("candidate", "validated"),
    }
    sources = {n["source"] for s in scored for n in s.get("neutralizations", [])}
    assert sources >= {"issue-report", "operator", "technical-abort"}
    assert any(s.get("kept") for s in scored) and of("ChallengeNeutralized")
    assert all(s["result"]["rules"] == "2" for s in scored)
    assert {r["data"]["cause"] for r in of("CertificateRescored")} >= {"late-issue-report"}
    tiers = {r["stream"]: r["data"] for r in of("CourseStarted") if r["data"]["extra_time_percent"]}
    late = [
        r for r in of("ChallengeAnswered") if r["stream"] in tiers
        and r["data"]["answered_at"] > _plus_minutes(tiers[r["stream"]]["started_at"], 105)
    ]  # fmt: skip
    assert late, "a tiers-temps candidate answers after the usual 105 minutes"


def _plus_minutes(moment: str, minutes: int) -> str:
    from datetime import timedelta

    from ledger.domain import clock

    return clock.format_time(clock.parse_time(moment) + timedelta(minutes=minutes))


def test_the_independent_example_verifier_agrees(run, tmp_path: Path) -> None:
    """docs/verify_example.py shares no code with the ledger and must accept its bundles."""
    import subprocess
    import sys

    run("demo", "--candidates", "2")
    bundle = tmp_path / "bundle"
    run("export", str(bundle))
    anchor = run("keys", "anchor").stdout.strip()
    example = Path(__file__).resolve().parent.parent / "docs" / "verify_example.py"

    def check() -> subprocess.CompletedProcess:
        command = [sys.executable, str(example), str(bundle), anchor]
        return subprocess.run(command, capture_output=True, text=True)

    checked = check()
    assert checked.returncode == 0 and checked.stdout.startswith("OK "), checked.stdout
    lines = (bundle / "events.ndjson").read_text().splitlines()
    record = json.loads(lines[3])
    record["time"] = "2020-01-01T00:00:00.000000Z"
    lines[3] = json.dumps(record)
    (bundle / "events.ndjson").write_text("\n".join(lines) + "\n")
    checked = check()
    assert checked.returncode == 1 and checked.stdout.strip() == "seq 4: hash mismatch"
    (bundle / "events.ndjson").write_text("not json\n")
    checked = check()
    assert checked.returncode == 1 and checked.stdout.startswith("malformed input")


def test_audit_names_the_first_tampered_seq_in_a_bundle(run, tmp_path: Path) -> None:
    run("demo", "--candidates", "3")
    bundle = tmp_path / "b"
    run("export", str(bundle))
    lines = (bundle / "events.ndjson").read_text().splitlines()
    record = json.loads(lines[6])
    record["data"]["result"] = "ok" if record["data"].get("result") != "ok" else "ko"
    lines[6] = json.dumps(record)
    (bundle / "events.ndjson").write_text("\n".join(lines) + "\n")
    result = run("audit", "verify", str(bundle), ok=False)
    assert result.exit_code == 1
    assert "seq 7" in result.stderr


def test_audit_of_a_bundle_with_a_deleted_line(run, tmp_path: Path) -> None:
    run("demo", "--candidates", "2")
    bundle = tmp_path / "b"
    run("export", str(bundle))
    lines = (bundle / "events.ndjson").read_text().splitlines()
    del lines[4]
    (bundle / "events.ndjson").write_text("\n".join(lines) + "\n")
    result = run("audit", "verify", str(bundle), ok=False)
    assert result.exit_code == 1 and "seq 5" in result.stderr


def test_live_audit_detects_a_changed_row(run, database_url: str) -> None:
    run("demo", "--candidates", "2")
    from ledger.config import Config
    from ledger.store.application import Ledger

    ledger = Ledger(Config.from_env())
    with ledger.db.write() as cur:
        cur.execute("UPDATE ledger_events SET time = '2020-01-01T00:00:00.000000Z' WHERE seq = 9")
    ledger.close()
    result = run("audit", "verify", ok=False)
    assert result.exit_code == 1 and "seq 9" in result.stderr


def test_keys_rotate_and_list(run) -> None:
    run("keys", "init")
    rotated = run("keys", "rotate").stdout
    assert "rotated:" in rotated
    listing = run("keys", "list").stdout
    assert listing.count("yes") == 2  # both held
    assert listing.count("current") == 1 and listing.count("replaced") == 1
    run("demo", "--candidates", "1")
    assert run("audit", "verify").stdout.startswith("OK:")


def test_tokens_create_list_revoke(run) -> None:
    created = run("tokens", "create", "--scope", "audit:read", "--label", "auditor")
    token = created.stdout.strip().splitlines()[-1]
    assert token.startswith("lt_")
    assert "auditor" in run("tokens", "list").stdout
    token_id = token.split("_")[1]
    assert "revoked" in run("tokens", "revoke", token_id).stdout


def test_subject_erasure_keeps_the_audit_green(run) -> None:
    from ledger.config import Config
    from ledger.store.application import Ledger

    run("demo", "--candidates", "2")
    ledger = Ledger(Config.from_env())
    subject = next(
        iter(ledger.recorder.iter_envelopes_of_type("candidates.CandidateRegistered"))
    ).data["subject"]
    ledger.close()
    assert "erased" in run("subjects", "erase", subject, "--reason", "consent-withdrawn").stdout
    assert run("audit", "verify").stdout.startswith("OK:")


def test_projections_rebuild(run) -> None:
    run("demo", "--candidates", "3")
    assert "rebuilt profiles" in run("projections", "rebuild").stdout
    *lines, lag = run("projections", "status").stdout.splitlines()
    assert lag == "lag: 0 events, 0.0 s"
    assert [line.split(":")[0] for line in lines] == [
        "profiles",
        "sessions",
        "courses",
        "certificates",
    ]
    for line in lines:
        position, head = line.split(":")[1].split("/")
        assert int(position) == int(head) > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("tokens", "create", "--scope", "root"), "unknown scope"),
        (("audit", "verify", "no-such-dir"), "not a bundle"),
        (("subjects", "erase", "nobody"), "no subject"),
        (("subjects", "erase", "nobody", "--reason", "asked by phone"), "reason must be one of"),
        (("tokens", "revoke", "nothing"), "no token"),
    ],
)
def test_bad_input_is_one_line_and_non_zero(run, args, message) -> None:
    result = run(*args, ok=False)
    assert result.exit_code != 0
    assert message in result.stderr and "Traceback" not in result.output + result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_export_refuses_to_overwrite_a_bundle(run, tmp_path: Path) -> None:
    run("export", str(tmp_path / "x"))
    result = run("export", str(tmp_path / "x"), ok=False)
    assert result.exit_code == 1 and "already holds a bundle" in result.stderr


def test_bad_database_url_is_a_clear_error(run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGER_DATABASE_URL", "mysql://nope")
    result = run("audit", "verify", ok=False)
    assert result.exit_code != 0 and "LEDGER_DATABASE_URL" in result.stderr


def test_readme_documents_every_setting() -> None:
    """The configuration table in README is exactly what `ledger config` prints."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    printed = CliRunner().invoke(main, ["config"]).stdout.strip()
    assert printed in readme


def test_the_suite_reads_its_settings_through_config() -> None:
    """A variable the tests read is in the README's table: they read it with `suite_setting`."""
    tests = Path(__file__).resolve().parent
    reads = re.compile(r"os\.environ\.get\(|os\.getenv\(|os\.environ\[")
    sources = [p for p in tests.rglob("*.py") if "node_modules" not in p.parts]
    offenders = [p.name for p in sources if reads.search(p.read_text(encoding="utf-8"))]
    assert offenders == []
