"""Trust anchor and key endorsement chain (format section 3, v1.1), on SQLite and PostgreSQL.

The attacker here can write to the database but holds no ledger key: whatever
they insert or re-sign must be refused by the audit, the key history and the
JWKS. Saved checkpoints catch what signatures cannot: a truncated or forked log.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ledger import crypto, envelope, trust
from ledger.audit.export import live_records
from ledger.audit.verify import AuditReport, verify_records
from ledger.cli import main
from ledger.config import Config
from ledger.crypto import SigningKey
from ledger.envelope import Envelope
from ledger.keys import KeyFileError
from ledger.store.application import Ledger
from ledger.store.recorder import INSERT, key_stream
from ledger.trust import Anchor, TrustError
from tests.test_store import Counter


def fill(ledger: Ledger, n: int = 4) -> None:
    counter = Counter(label="x")
    for i in range(n):
        counter.add(amount=i)
    ledger.save(counter)


def audit(ledger: Ledger, anchor: Any = "configured", since: str | None = None) -> AuditReport:
    fresh = Ledger(ledger.config, ledger.db)  # no cached key history: read what is stored
    chosen = fresh.trust_anchor() if anchor == "configured" else anchor
    return verify_records(live_records(fresh), chosen, since_checkpoint=since)


def envelopes(ledger: Ledger) -> list[Envelope]:
    return list(ledger.recorder.iter_envelopes())


def _row(seq: int, prev: str, env: Envelope, key: SigningKey) -> tuple:
    hashed = (seq, env.id, env.stream, env.version, env.type, env.time, env.data_json, prev)
    digest = crypto.sha256(envelope.hashed_bytes(*hashed))
    return (*hashed, digest.hex(), key.kid, crypto.b64url(key.sign(digest)))


def key_envelope(type_name: str, payload: dict[str, Any], kid: str, version: int = 1) -> Envelope:
    data = crypto.canonical_json(payload).decode()
    return Envelope(0, "e-" + kid[:8], key_stream(kid), version, type_name,
                    "2026-11-02T09:15:00.000000Z", data, "", "", "", "")  # fmt: skip


def rewrite(ledger: Ledger, start: int, key: SigningKey, insert: list[Envelope] = ()) -> None:
    """With database access only: put `insert` at `start`, re-sign everything after with `key`.

    The hash chain is repaired, so only the keys can tell the rewrite apart.
    """
    envs = envelopes(ledger)
    tail = [*insert, *envs[start - 1 :]]
    prev = envs[start - 2].hash if start > 1 else crypto.ZERO_HASH
    rows = []
    for seq, env in enumerate(tail, start):
        rows.append(_row(seq, prev, env, key))
        prev = rows[-1][8]
    with ledger.db.write() as cur:
        cur.execute("DELETE FROM ledger_events WHERE seq >= ?", (start,))
        cur.executemany(INSERT, rows)


def append_signed(ledger: Ledger, env: Envelope, key: SigningKey) -> None:
    """Append one event at the head, properly chained, signed by `key`."""
    last = envelopes(ledger)[-1]
    with ledger.db.write() as cur:
        cur.execute(INSERT, _row(last.seq + 1, last.hash, env, key))


def truncate(ledger: Ledger, keep: int) -> None:
    with ledger.db.write() as cur:
        cur.execute("DELETE FROM ledger_events WHERE seq > ?", (keep,))


def jwks_kids(ledger: Ledger) -> set[str]:
    return {k["kid"] for k in Ledger(ledger.config, ledger.db).key_history().jwks()["keys"]}


# --- the anchor ---------------------------------------------------------------------


def test_init_writes_the_anchor_and_it_round_trips(ledger: Ledger) -> None:
    anchor = ledger.trust_anchor()
    assert anchor is not None and anchor.kid == ledger.keyring.active().kid
    assert anchor.origin == ledger.config.log_origin
    assert Anchor.parse(anchor.to_string()) == anchor
    assert Anchor.load(str(ledger.config.keys_dir / trust.ANCHOR_FILE)) == anchor
    fill(ledger)
    assert envelopes(ledger)[0].type == trust.KEY_ACTIVATED
    assert audit(ledger).ok and audit(ledger).anchor_kid == anchor.kid


@pytest.mark.parametrize(
    "text",
    ["", "nope", "a+b+c", "ledger.local/crcn+00000000+AAAA", "{}", '{"origin": "o", "x": 5}'],
)
def test_a_malformed_anchor_is_refused(text: str) -> None:
    with pytest.raises(TrustError):
        Anchor.load(text)


def test_an_anchor_with_a_wrong_key_hash_is_refused(ledger: Ledger) -> None:
    origin, key_hash, key = ledger.trust_anchor().to_string().split("+", 2)
    with pytest.raises(TrustError, match="key hash"):
        Anchor.parse(f"{origin}+{'0' * 8 if key_hash != '0' * 8 else '1' * 8}+{key}")


# --- the rewrite-with-own-key attack -----------------------------------------------------


def test_a_self_announced_key_with_a_re_signed_tail_is_rejected(ledger: Ledger) -> None:
    fill(ledger, 6)
    assert audit(ledger).ok
    attacker = SigningKey.generate()
    forged = key_envelope(trust.KEY_ACTIVATED, trust.activation(attacker), attacker.kid)
    rewrite(ledger, 4, attacker, insert=[forged])
    for anchor in ("configured", None):  # even trusting the log's own first key
        report = audit(ledger, anchor)
        assert not report.ok and report.first_bad_seq == 4
        assert "rotation signed by the key it replaces" in report.problem
    history = Ledger(ledger.config, ledger.db).key_history()
    assert attacker.kid not in history.keys and history.rejected[0][0] == 4
    assert attacker.kid not in jwks_kids(ledger)
    assert not history.verify_one(envelopes(ledger)[5])


def test_a_rotation_signed_by_the_attackers_key_is_rejected(ledger: Ledger) -> None:
    fill(ledger, 3)
    current = ledger.signing_key().kid
    attacker = SigningKey.generate()
    forged = key_envelope(trust.KEY_ROTATED, trust.rotation(attacker, current), attacker.kid)
    rewrite(ledger, 3, attacker, insert=[forged])
    report = audit(ledger)
    assert report.first_bad_seq == 3 and "not signed by the current key" in report.problem
    assert attacker.kid not in jwks_kids(ledger)


def test_a_history_rewritten_from_its_first_event_fails_only_against_the_anchor(
    ledger: Ledger,
) -> None:
    fill(ledger, 3)
    forged_log(ledger, SigningKey.generate())
    report = audit(ledger)
    assert report.first_bad_seq == 1 and "not the trust anchor" in report.problem
    assert audit(ledger, None).ok  # the weaker audit trusts the database: it passes
    # a genuine writer refuses to extend a log whose first key is not its anchor
    with pytest.raises(KeyFileError, match="trust anchor"):
        Ledger(ledger.config, ledger.db).save(Counter(label="after"))


def forged_log(ledger: Ledger, attacker: SigningKey) -> None:
    """A whole log of the attacker's own: genesis with their key, then events."""
    with ledger.db.write() as cur:
        cur.execute("DELETE FROM ledger_events WHERE seq > 0")
    genesis = key_envelope(trust.KEY_ACTIVATED, trust.activation(attacker), attacker.kid)
    event = Envelope(0, "e-1", "00000000-0000-0000-0000-000000000001", 1, "test.CounterStarted",
                     "2026-11-02T09:15:00.000000Z", '{"label":"forged"}', "", "", "", "")  # fmt: skip
    first = _row(1, crypto.ZERO_HASH, genesis, attacker)
    second = _row(2, first[8], event, attacker)
    with ledger.db.write() as cur:
        cur.executemany(INSERT, [first, second])


# --- rotation, retirement, compromise ---------------------------------------------------


def rotate(ledger: Ledger) -> tuple[str, SigningKey, int]:
    old = ledger.signing_key().kid
    new = ledger.keyring.generate()
    seq = ledger.recorder.rotate(new)
    ledger.keyring.activate(new.kid)
    return old, new, seq


def test_a_rotation_is_signed_by_the_key_it_replaces(ledger: Ledger) -> None:
    fill(ledger, 2)
    old, new, seq = rotate(ledger)
    rotation = envelopes(ledger)[seq - 1]
    assert rotation.type == trust.KEY_ROTATED and rotation.kid == old
    assert rotation.data == {"kid": new.kid, "jwk": new.public_jwk(), "replaces": old}
    fill(ledger, 2)
    assert envelopes(ledger)[-1].kid == new.kid
    report = audit(ledger)
    assert report.ok and report.keys_used == {old, new.kid}
    assert jwks_kids(ledger) == {old, new.kid}
    history = Ledger(ledger.config, ledger.db).key_history()
    assert history.keys[old].valid_until == seq and history.keys[new.kid].valid_from == seq + 1


def test_the_chain_not_the_active_file_decides_which_key_signs(ledger: Ledger) -> None:
    fill(ledger, 1)
    old, new, _ = rotate(ledger)
    ledger.keyring.activate(old)  # a node that did not see the rotation
    fill(ledger, 1)
    assert envelopes(ledger)[-1].kid == new.kid and audit(ledger).ok


def test_a_replaced_key_may_not_sign_after_its_rotation(ledger: Ledger) -> None:
    fill(ledger, 2)
    old, _, seq = rotate(ledger)
    event = Envelope(0, "e-late", "00000000-0000-0000-0000-000000000002", 1, "test.CounterStarted",
                     "2026-11-02T09:15:00.000000Z", '{"label":"late"}', "", "", "", "")  # fmt: skip
    append_signed(ledger, event, ledger.keyring.get(old))
    report = audit(ledger)
    assert report.first_bad_seq == seq + 1 and "replaced or retired" in report.problem


def test_a_rotation_signed_by_a_replaced_key_is_rejected(ledger: Ledger) -> None:
    """Whoever kept an old key cannot use it to take over the chain."""
    fill(ledger, 2)
    old, new, _ = rotate(ledger)
    intruder = SigningKey.generate()
    forged = key_envelope(trust.KEY_ROTATED, trust.rotation(intruder, new.kid), intruder.kid)
    append_signed(ledger, forged, ledger.keyring.get(old))
    report = audit(ledger)
    assert not report.ok and "not signed by the current key" in report.problem
    assert intruder.kid not in jwks_kids(ledger)


def test_a_compromised_keys_later_signatures_are_rejected(ledger: Ledger) -> None:
    fill(ledger, 4)  # seqs 1..5 signed by the anchor key
    old, new, _ = rotate(ledger)
    seq = ledger.recorder.declare(trust.KEY_COMPROMISED, trust.compromise(old, 4))
    assert envelopes(ledger)[seq - 1].kid == new.kid
    report = audit(ledger)
    assert report.first_bad_seq == 4 and "compromised from seq 4" in report.problem
    assert old not in jwks_kids(ledger) and new.kid in jwks_kids(ledger)
    history = Ledger(ledger.config, ledger.db).key_history()
    assert history.verify_one(envelopes(ledger)[2]) and not history.verify_one(envelopes(ledger)[3])


def test_the_serving_tail_audit_honours_a_later_compromise(ledger: Ledger) -> None:
    """/api/v1/ready's own audit applies the same rule as `ledger audit verify`."""
    from ledger.audit.tail import TailVerifier

    fill(ledger, 4)
    old, _, _ = rotate(ledger)
    tail = TailVerifier(ledger)
    verified = tail.advance().size
    assert not tail.problem and verified == len(envelopes(ledger))
    ledger.recorder.declare(trust.KEY_COMPROMISED, trust.compromise(old, 4))
    tail.advance()
    assert tail.problem_seq == 4 and "compromised from seq 4" in tail.problem


def test_a_compromise_after_the_rotation_keeps_the_history_valid(ledger: Ledger) -> None:
    fill(ledger, 2)
    old, _, rotation_seq = rotate(ledger)
    ledger.recorder.declare(trust.KEY_COMPROMISED, trust.compromise(old, rotation_seq + 1))
    fill(ledger, 1)
    assert audit(ledger).ok


def test_invalid_declarations_are_refused_and_write_nothing(ledger: Ledger) -> None:
    fill(ledger, 1)
    current = ledger.signing_key().kid
    before = len(envelopes(ledger))
    with pytest.raises(TrustError, match="rotate first"):
        ledger.recorder.declare(trust.KEY_COMPROMISED, trust.compromise(current, 1))
    with pytest.raises(TrustError, match="never endorsed"):
        ledger.recorder.declare(trust.KEY_RETIRED, trust.retirement("unknown-kid"))
    assert len(envelopes(ledger)) == before and audit(ledger).ok


def test_retiring_the_current_key_closes_the_log(ledger: Ledger) -> None:
    fill(ledger, 1)
    ledger.recorder.declare(trust.KEY_RETIRED, trust.retirement(ledger.signing_key().kid))
    assert audit(ledger).ok
    with pytest.raises(KeyFileError, match="no key may sign"):
        Ledger(ledger.config, ledger.db).save(Counter(label="after"))


def test_the_api_jwks_is_derived_from_the_chain(app: Any, client: Any) -> None:
    ledger = app.extensions["ledger"].ledger
    fill(ledger, 2)
    attacker = SigningKey.generate()
    forged = key_envelope(trust.KEY_ACTIVATED, trust.activation(attacker), attacker.kid)
    append_signed(ledger, forged, attacker)
    kids = {k["kid"] for k in client.get("/.well-known/jwks.json").get_json()["keys"]}
    assert kids == {ledger.trust_anchor().kid}


# --- saved checkpoints -------------------------------------------------------------------


def saved_checkpoint(ledger: Ledger) -> str:
    from ledger.audit.export import checkpoint_note

    fresh = Ledger(ledger.config, ledger.db)
    report = verify_records(live_records(fresh), fresh.trust_anchor(), checkpoint_note(fresh))
    assert report.ok and report.checkpoint_note
    return report.checkpoint_note


def test_a_truncated_tail_fails_against_a_saved_checkpoint(ledger: Ledger) -> None:
    fill(ledger, 6)
    note = saved_checkpoint(ledger)
    fill(ledger, 2)
    assert audit(ledger, since=note).ok and audit(ledger, since=note).since_size == 8
    truncate(ledger, 5)
    assert audit(ledger).ok  # signatures alone cannot see a missing tail
    report = audit(ledger, since=note)
    assert report.first_bad_seq == 6 and "truncated" in report.problem


def test_a_forked_history_fails_against_a_saved_checkpoint(ledger: Ledger) -> None:
    """Even re-signed with the genuine key, a changed past contradicts the checkpoint."""
    fill(ledger, 6)
    note = saved_checkpoint(ledger)
    envs = envelopes(ledger)
    changed = dataclasses.replace(envs[4], data_json='{"amount":99,"note":""}')
    key = ledger.signing_key()
    with ledger.db.write() as cur:
        cur.execute("DELETE FROM ledger_events WHERE seq >= 5")
    prev = envs[3].hash
    for seq, env in enumerate([changed, *envs[5:]], 5):
        row = _row(seq, prev, env, key)
        with ledger.db.write() as cur:
            cur.execute(INSERT, row)
        prev = row[8]
    assert audit(ledger).ok
    report = audit(ledger, since=note)
    assert not report.ok and "rewritten or forked" in report.problem


def test_a_saved_checkpoint_signed_by_an_unknown_key_is_refused(ledger: Ledger) -> None:
    from ledger.audit.checkpoint import Checkpoint, parse_checkpoint, sign_checkpoint

    fill(ledger, 2)
    cp, _ = parse_checkpoint(saved_checkpoint(ledger))
    forged = sign_checkpoint(Checkpoint(cp.origin, cp.size, cp.root), SigningKey.generate())
    report = audit(ledger, since=forged)
    assert not report.ok and "saved checkpoint" in report.problem


# --- the command line --------------------------------------------------------------------


@pytest.fixture
def cli(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("LEDGER_DATABASE_URL", database_url)
    monkeypatch.setenv("LEDGER_KEYS_DIR", str(tmp_path / "keys"))
    monkeypatch.delenv("LEDGER_TRUST_ANCHOR", raising=False)
    runner = CliRunner()

    def invoke(*args: str, code: int = 0):
        result = runner.invoke(main, list(args), catch_exceptions=False)
        assert result.exit_code == code, result.output + result.stderr
        return result

    return invoke


def one_line(text: str) -> bool:
    return len(text.strip().splitlines()) == 1 and "Traceback" not in text


def test_cli_prints_the_anchor_and_audits_against_it(cli, tmp_path: Path) -> None:
    printed = cli("init").stdout
    anchor = cli("keys", "anchor").stdout.strip()
    assert anchor in printed and "log origin" in printed
    ledger = Ledger(Config.from_env())
    fill(ledger, 3)
    saved = tmp_path / "checkpoint.txt"
    ok = cli("audit", "verify", "--trust-anchor", anchor, "--save-checkpoint", str(saved)).stdout
    assert ok.startswith("OK:") and "--trust-anchor" in ok and saved.is_file()
    fill(ledger, 2)
    assert (
        "extends the saved checkpoint"
        in cli("audit", "verify", "--trust-anchor", anchor, "--since-checkpoint", str(saved)).stdout
    )
    truncate(ledger, 3)
    failed = cli("audit", "verify", "--trust-anchor", anchor, "--since-checkpoint", str(saved),
                 code=1)  # fmt: skip
    assert one_line(failed.stderr) and "truncated" in failed.stderr
    other = Anchor.of(SigningKey.generate().public_raw, ledger.config.log_origin).to_string()
    wrong = cli("audit", "verify", "--trust-anchor", other, code=1)
    assert wrong.stderr.strip().startswith("FAILED at seq 1:") and one_line(wrong.stderr)
    bad = cli("audit", "verify", "--trust-anchor", "not-an-anchor", code=1)
    assert bad.stderr.strip().startswith("error:") and one_line(bad.stderr)


def test_cli_rejects_the_attack_and_a_bundle_audit_needs_the_anchor(cli, tmp_path: Path) -> None:
    cli("init")
    anchor = cli("keys", "anchor").stdout.strip()
    ledger = Ledger(Config.from_env())
    fill(ledger, 4)
    attacker = SigningKey.generate()
    forged = key_envelope(trust.KEY_ACTIVATED, trust.activation(attacker), attacker.kid)
    rewrite(ledger, 3, attacker, insert=[forged])
    failed = cli("audit", "verify", code=1)
    assert failed.stderr.strip().startswith("FAILED at seq 3:") and one_line(failed.stderr)
    bundle = tmp_path / "bundle"
    cli("export", str(bundle))
    assert attacker.kid not in (bundle / "jwks.json").read_text()
    assert "FAILED at seq 3" in cli("audit", "verify", str(bundle), "--trust-anchor", anchor,
                                    code=1).stderr  # fmt: skip


def test_cli_audit_without_an_anchor_says_it_is_weaker(cli, tmp_path: Path) -> None:
    cli("init")
    fill(Ledger(Config.from_env()), 2)
    bundle = tmp_path / "bundle"
    cli("export", str(bundle))
    (tmp_path / "keys" / trust.ANCHOR_FILE).unlink()
    result = cli("audit", "verify", str(bundle))
    assert result.stdout.startswith("OK:") and "weaker" in result.stderr


def test_cli_rotate_then_compromise(cli) -> None:
    cli("init")
    ledger = Ledger(Config.from_env())
    fill(ledger, 2)
    old = ledger.signing_key().kid
    assert "endorsed by" in cli("keys", "rotate").stdout
    assert (
        "compromised from seq 6" in cli("keys", "compromised", "--kid", old, "--since", "6").stdout
    )
    assert cli("audit", "verify").stdout.startswith("OK:")
    listing = cli("keys", "list").stdout
    assert "compromised" in listing and "current" in listing
    refused = cli("keys", "compromised", "--kid", "nobody", "--since", "1", code=1)
    assert "never endorsed" in refused.stderr and one_line(refused.stderr)


def test_the_example_verifier_follows_the_chain(cli, tmp_path: Path) -> None:
    import subprocess
    import sys

    cli("init")
    anchor = cli("keys", "anchor").stdout.strip()
    ledger = Ledger(Config.from_env())
    fill(ledger, 3)
    cli("keys", "rotate")
    fill(Ledger(Config.from_env()), 2)
    bundle = tmp_path / "bundle"
    cli("export", str(bundle))
    example = Path(__file__).resolve().parent.parent / "docs" / "verify_example.py"

    def run_example(given: str = anchor, *saved: Path, of: Path = bundle) -> Any:
        return subprocess.run(
            [sys.executable, str(example), str(of), given, *map(str, saved)],
            capture_output=True, text=True,
        )  # fmt: skip

    checked = run_example()
    assert checked.returncode == 0 and checked.stdout.startswith("OK "), checked.stderr
    assert "2 key(s)" in checked.stdout
    fill(Ledger(Config.from_env()), 2)
    later = tmp_path / "later"
    cli("export", str(later))
    saved = later / "checkpoint.txt"  # what an auditor kept from the longer log
    assert run_example(anchor, bundle / "checkpoint.txt", of=later).returncode == 0
    truncated = run_example(anchor, saved)  # the earlier, shorter log no longer extends it
    assert truncated.returncode == 1 and "truncated" in truncated.stdout, truncated.stdout
    other = Anchor.of(SigningKey.generate().public_raw, ledger.config.log_origin).to_string()
    checked = run_example(other)
    assert (
        checked.returncode == 1 and "seq 1: the first key is not the trust anchor" in checked.stdout
    )
    lines = (bundle / "events.ndjson").read_text().splitlines()
    attacker = SigningKey.generate()
    record = json.loads(lines[-1])
    record["kid"] = attacker.kid  # a tail re-signed by a key nobody endorsed
    record["sig"] = crypto.b64url(attacker.sign(bytes.fromhex(record["hash"])))
    (bundle / "events.ndjson").write_text("\n".join([*lines[:-1], json.dumps(record)]) + "\n")
    checked = run_example()
    assert checked.returncode != 0 and "not endorsed" in checked.stdout + checked.stderr


def test_cli_refuses_to_serve_a_log_whose_first_key_is_not_the_anchor(cli) -> None:
    cli("init")
    ledger = Ledger(Config.from_env())
    forged_log(ledger, SigningKey.generate())
    refused = cli("serve", "--port", "1", code=1)
    assert "refusing to serve" in refused.stderr and "trust anchor" in refused.stderr
    assert one_line(refused.stderr)


def test_the_app_refuses_to_serve_without_an_anchor_or_for_another_origin(
    ledger: Ledger, config: Config
) -> None:
    from ledger.api import create_app

    fill(ledger)
    anchor_file = config.keys_dir / trust.ANCHOR_FILE
    saved = anchor_file.read_text()
    anchor_file.unlink()  # no anchor: the database would vouch for its own keys
    with pytest.raises(TrustError, match="no trust anchor"):
        create_app(config)
    anchor_file.write_text(saved)
    other = dataclasses.replace(config, log_origin="elsewhere.example/ledger")
    with pytest.raises(TrustError, match="log origin"):
        create_app(other)
    application = create_app(config)  # the right anchor for the right origin serves
    assert application.test_client().get("/api/v1/health").status_code == 200
    application.extensions["ledger"].ledger.close()


def test_init_never_adopts_a_first_key_this_node_does_not_hold(
    ledger: Ledger, config: Config, tmp_path: Path
) -> None:
    fill(ledger)
    forged_log(ledger, SigningKey.generate())  # the whole log rewritten under a stranger's key
    (config.keys_dir / trust.ANCHOR_FILE).unlink()
    with pytest.raises(TrustError, match="not held in the keys directory"):
        Ledger(config, ledger.db).init()
    assert not (config.keys_dir / trust.ANCHOR_FILE).exists()
