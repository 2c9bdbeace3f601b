"""The C2SP tlog-witness rules, its state and its CLI, in process (real SQLite state files).

Requests are built from the specification's text: `old N`, proof lines, a blank
line, then a checkpoint signed by the log key. Each protocol case is data: what
is sent, and the status and body the witness must answer with.
"""

from __future__ import annotations

import base64
import hashlib
import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from ledger.audit.checkpoint import Checkpoint, sign_checkpoint
from ledger.audit.cosignature import parse_vkey, verified_cosigners, with_cosignatures
from ledger.audit.merkle import consistency_proof, root_hash
from ledger.cli import main
from ledger.crypto import SigningKey, b64
from ledger.trust import Anchor
from ledger.witness import identity
from ledger.witness.request import MAX_BODY_BYTES, Refusal
from ledger.witness.server import build
from ledger.witness.witness import Witness

ORIGIN = "ledger.test/log"
LOG_KEY = SigningKey.generate()
OTHER_KEY = SigningKey.generate()
LEAVES = [hashlib.sha256(b"event %d" % i).digest() for i in range(64)]
FORGED = LEAVES[:3] + [hashlib.sha256(b"rewritten %d" % i).digest() for i in range(3, 64)]


def note(size: int, leaves: list[bytes] = LEAVES, key: SigningKey = LOG_KEY, origin=ORIGIN) -> str:
    return sign_checkpoint(Checkpoint(origin, size, root_hash(leaves[:size])), key)


def proof(old: int, new: int, leaves: list[bytes] = LEAVES) -> list[bytes]:
    return consistency_proof(leaves[:new], old) if old else []


def body(old: int, hashes: list[bytes], note_text: str) -> bytes:
    return (f"old {old}\n" + "".join(f"{b64(h)}\n" for h in hashes) + "\n" + note_text).encode()


def add(old: int, new: int, leaves: list[bytes] = LEAVES) -> bytes:
    """A well-formed request from `old` to `new` over `leaves`."""
    return body(old, proof(old, new, leaves), note(new, leaves))


@pytest.fixture
def witness(tmp_path: Path) -> Witness:
    """A witness at size 5 of LEAVES, trusting LOG_KEY for ORIGIN."""
    identity.init(tmp_path / "w", "witness.test/w1")
    log_vkey = Anchor.of(LOG_KEY.public_raw, ORIGIN).to_string()
    built = build(tmp_path / "w", [log_vkey])
    built.add_checkpoint(add(0, 5))
    return built


def refusal(witness: Witness, raw: bytes) -> Refusal:
    with pytest.raises(Refusal) as caught:
        witness.add_checkpoint(raw)
    return caught.value


def cosigners(witness: Witness, note_text: str, line: str) -> dict[str, int]:
    return verified_cosigners(with_cosignatures(note_text, [line]), [witness.vkey])


# --- protocol cases, as data -----------------------------------------------------


def _with_extension() -> bytes:
    cp = Checkpoint(ORIGIN, 6, root_hash(LEAVES[:6]))
    text = cp.body().decode() + "extension line\n"
    signed = f"{text}\n\u2014 {ORIGIN} {b64(b'x' * 68)}\n"
    return body(5, proof(5, 6), signed)


def _bad_signature() -> bytes:
    good = note(6)
    head, line = good.rsplit("\u2014 ", 1)
    blob = bytearray(base64.b64decode(line.split()[1]))
    blob[-1] ^= 1
    return body(5, proof(5, 6), f"{head}\u2014 {ORIGIN} {b64(bytes(blob))}\n")


CASES: list[tuple[str, Callable[[], bytes], int, str]] = [
    ("not UTF-8", lambda: b"old 5\n\xff\n\n" + note(6).encode(), 400, "UTF-8"),
    ("no old line", lambda: note(6).encode(), 400, "old <tree size>"),
    ("old with a leading zero", lambda: body(5, [], note(6)).replace(b"old 5", b"old 05"), 400,
     "leading zeros"),
    ("old negative", lambda: body(5, [], note(6)).replace(b"old 5", b"old -5"), 400, "old"),
    ("old beyond 2^64-1", lambda: body(5, [], note(6)).replace(b"old 5", b"old 18446744073709551616"),
     400, "2^64-1"),
    ("proof line not base64", lambda: b"old 5\n!!!!\n\n" + note(6).encode(), 400, "not base64"),
    ("proof line of 31 bytes", lambda: body(5, [b"x" * 31], note(6)), 400, "32-byte hash"),
    ("proof line in non-canonical base64", lambda: b"old 5\n" + b"A" * 42 + b"B=\n\n"
     + note(6).encode(), 400, "32-byte hash"),
    ("64 proof lines", lambda: body(5, [LEAVES[0]] * 64, note(6)), 400, "at most 63"),
    ("no blank line before the checkpoint", lambda: b"old 5\n", 400, "empty line"),
    ("checkpoint with an extension line", _with_extension, 400, "malformed checkpoint"),
    ("checkpoint without signature", lambda: b"old 5\n\n" + Checkpoint(ORIGIN, 6, root_hash(
        LEAVES[:6])).body(), 400, "malformed checkpoint"),
    ("body over the limit", lambda: b"old 5\n" + b"A" * MAX_BODY_BYTES, 413, "larger"),
    ("unknown origin", lambda: body(0, [], note(6, origin="other.test/log")), 404, "unknown"),
    ("signed by an untrusted key", lambda: body(5, proof(5, 6), note(6, key=OTHER_KEY)), 403,
     "no signature by a trusted key"),
    ("trusted key, signature does not verify", _bad_signature, 403, "does not verify"),
    ("old size beyond the checkpoint", lambda: body(7, [], note(6)), 400, "larger than"),
    ("stale client: old 0", lambda: add(0, 6), 409, "5\n"),
    ("rollback: old below the cosigned size", lambda: add(3, 8), 409, "5\n"),
    ("old above the cosigned size", lambda: add(6, 8), 409, "5\n"),
    ("same size, other root: a fork", lambda: body(5, [], note(5, FORGED)), 409, "fork"),
    ("same size with a proof", lambda: body(5, [LEAVES[0]], note(5)), 422, "must be empty"),
    ("proof from another tree", lambda: body(5, proof(5, 9, FORGED), note(9, FORGED)), 422,
     "does not verify"),
    ("proof for another size", lambda: body(5, proof(4, 9), note(9)), 422, "does not verify"),
    ("truncated proof", lambda: body(5, proof(5, 9)[:-1], note(9)), 422, "does not verify"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("raw", "status", "says"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_protocol_refusals(
    witness: Witness, raw: Callable[[], bytes], status: int, says: str
) -> None:
    refused = refusal(witness, raw())
    assert refused.status == status
    if status == 409 and says.endswith("\n"):
        assert f"{refused.size}\n" == says  # the text/x.tlog.size body
    else:
        assert refused.size is None and says in refused.reason
    assert witness.state.origins()[0].size == 5  # nothing refused changes the state


def test_a_consistent_checkpoint_is_cosigned_and_stored(witness: Witness) -> None:
    line = witness.add_checkpoint(add(5, 9), clock=lambda: 4_000_000_000)
    assert line.startswith("\u2014 witness.test/w1 ") and line.endswith("\n")
    assert cosigners(witness, note(9), line) == {"witness.test/w1": 4_000_000_000}
    (stored,) = witness.state.origins()
    assert (stored.origin, stored.size, stored.root) == (ORIGIN, 9, root_hash(LEAVES[:9]))
    # the same checkpoint again is cosigned again (a client retrying after a lost answer)
    assert cosigners(witness, note(9), witness.add_checkpoint(body(9, [], note(9))))
    # and a further one builds on it; its time never goes back, even if the clock does
    line = witness.add_checkpoint(add(9, 64), clock=lambda: 1_700_000_000)
    assert cosigners(witness, note(64), line) == {"witness.test/w1": 4_000_000_000}


def test_the_first_checkpoint_needs_old_zero_and_an_empty_proof(tmp_path: Path) -> None:
    identity.init(tmp_path / "w", "witness.test/w1")
    fresh = build(tmp_path / "w", [Anchor.of(LOG_KEY.public_raw, ORIGIN).to_string()])
    assert refusal(fresh, add(3, 5)).size == 0
    assert refusal(fresh, body(0, [LEAVES[0]], note(5))).status == 422
    assert cosigners(fresh, note(5), fresh.add_checkpoint(add(0, 5)))


def test_a_rotated_log_key_is_trusted_next_to_the_old_one(tmp_path: Path) -> None:
    identity.init(tmp_path / "w", "witness.test/w1")
    vkeys = [Anchor.of(k.public_raw, ORIGIN).to_string() for k in (LOG_KEY, OTHER_KEY)]
    both = build(tmp_path / "w", vkeys)
    both.add_checkpoint(add(0, 5))
    assert both.add_checkpoint(body(5, proof(5, 8), note(8, key=OTHER_KEY)))


def test_refusals_that_prove_misbehaviour_are_kept_and_cannot_be_erased(witness: Witness) -> None:
    for raw in (body(5, [], note(5, FORGED)), body(5, proof(5, 9, FORGED), note(9, FORGED))):
        refusal(witness, raw)
    for harmless in (add(3, 8), body(5, proof(5, 9), note(9, key=OTHER_KEY))):
        refusal(witness, harmless)
    kept = witness.state.evidence()
    assert [(origin, status) for _, origin, status, _, _ in kept] == [(ORIGIN, 409), (ORIGIN, 422)]
    assert kept[1][4] == body(5, proof(5, 9, FORGED), note(9, FORGED))  # the whole request
    with sqlite3.connect(witness.state.path) as conn, pytest.raises(sqlite3.DatabaseError):
        conn.execute("DELETE FROM evidence")


def test_concurrent_requests_never_roll_the_state_back(witness: Witness) -> None:
    """Threads each with their own connection: exactly one of the racing sizes wins."""
    results: dict[int, int] = {}

    def send(size: int) -> None:
        try:
            witness.add_checkpoint(add(5, size))
            results[size] = 200
        except Refusal as refused:
            results[size] = refused.status

    threads = [threading.Thread(target=send, args=(size,)) for size in range(6, 30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [size for size, status in results.items() if status == 200]
    assert len(winners) == 1 and set(results.values()) == {200, 409}
    assert witness.state.origins()[0].size == winners[0]


# --- CLI ---------------------------------------------------------------------------


def test_init_creates_a_private_key_prints_the_vkey_and_never_overwrites(tmp_path: Path) -> None:
    runner = CliRunner()
    directory = tmp_path / "w"
    done = runner.invoke(main, ["witness", "init", "--dir", str(directory), "--name", "gov.test/w"])
    assert done.exit_code == 0, done.output
    vkey = parse_vkey(done.stdout.strip())
    assert vkey.name == "gov.test/w" and vkey.alg == 0x04
    assert os.stat(directory / "witness.key").st_mode & 0o777 == 0o600
    before = (directory / "witness.key").read_bytes()
    again = runner.invoke(
        main, ["witness", "init", "--dir", str(directory), "--name", "gov.test/w"]
    )
    assert again.exit_code == 1 and "never overwritten" in again.stderr
    assert (directory / "witness.key").read_bytes() == before
    bad = runner.invoke(main, ["witness", "init", "--dir", str(tmp_path / "b"), "--name", "a b"])
    assert bad.exit_code == 1 and bad.stderr.startswith("error: witness name")


def test_status_lists_origins_and_evidence(witness: Witness, tmp_path: Path) -> None:
    refusal(witness, body(5, [], note(5, FORGED)))
    done = CliRunner().invoke(main, ["witness", "status", "--dir", str(tmp_path / "w")])
    assert done.exit_code == 0, done.output
    assert f"{ORIGIN} size 5 root {b64(root_hash(LEAVES[:5]))}" in done.stdout
    assert "EVIDENCE" in done.stdout and "fork" in done.stdout


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["status", "--dir", "missing"], "no witness key"),
        (["serve", "--dir", "missing", "--log", "x"], "no witness key"),
    ],
)
def test_cli_failures_are_one_line(tmp_path: Path, args: list[str], says: str) -> None:
    args = [str(tmp_path / a) if a == "missing" else a for a in args]
    done = CliRunner().invoke(main, ["witness", *args])
    assert done.exit_code == 1 and says in done.stderr and len(done.stderr.splitlines()) == 1


def test_serve_refuses_a_bad_log_key_before_serving(witness: Witness, tmp_path: Path) -> None:
    done = CliRunner().invoke(
        main, ["witness", "serve", "--dir", str(tmp_path / "w"), "--log", "not+a+key"]
    )
    assert done.exit_code == 1 and done.stderr.startswith("error: ")
    key = tmp_path / "w" / "witness.key"
    key.chmod(0o644)
    loose = CliRunner().invoke(main, ["witness", "status", "--dir", str(tmp_path / "w")])
    assert loose.exit_code == 1 and "readable by others" in loose.stderr
