"""A real `ledger witness serve` process cosigning checkpoints signed by a real ledger.

The ledger runs on SQLite and PostgreSQL (the `ledger` fixture); its LogTree
gives roots and consistency proofs; the witness is reached over HTTP only.
"""

from __future__ import annotations

import hashlib
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ledger.audit.checkpoint import Checkpoint, sign_checkpoint
from ledger.audit.cosignature import parse_vkey, verified_cosigners, with_cosignatures
from ledger.audit.log_tree import LogTree
from ledger.audit.merkle import consistency_proof, root_hash
from ledger.crypto import SigningKey, b64
from ledger.store.application import Ledger
from ledger.trust import Anchor
from tests.witness_process import witness_process


def post(base: str, raw: bytes, path: str = "/add-checkpoint") -> tuple[int, str, str]:
    """(status, content type, body) of one POST."""
    request = urllib.request.Request(f"{base}{path}", data=raw, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.headers["Content-Type"], answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


def request(old: int, proof: list[bytes], note: str) -> bytes:
    return (f"old {old}\n" + "".join(f"{b64(h)}\n" for h in proof) + "\n" + note).encode()


def grow(ledger: Ledger, count: int) -> None:
    start = LogTree(ledger).refresh()
    for i in range(count):
        ledger.recorder.record_fact(f"witness-test-{start + i}", "test.Fact", {"n": start + i})


def signed(ledger: Ledger, size: int, root: bytes) -> str:
    cp = Checkpoint(ledger.config.log_origin, size, root)
    return sign_checkpoint(cp, ledger.signing_key())


def leaves(ledger: Ledger) -> list[bytes]:
    with ledger.db.read() as cur:
        cur.execute("SELECT hash FROM ledger_events ORDER BY seq")
        return [bytes.fromhex(row[0]) for row in cur.fetchall()]


@pytest.fixture
def log(ledger: Ledger) -> tuple[Ledger, str]:
    """The ledger with its first key event and some events, and its log vkey."""
    ledger.recorder.announce_active_key()
    grow(ledger, 6)
    anchor = ledger.trust_anchor()
    assert anchor is not None
    return ledger, anchor.to_string()


def test_checkpoints_of_a_real_ledger_are_cosigned_and_a_rewrite_is_refused(
    log: tuple[Ledger, str], tmp_path: Path
) -> None:
    ledger, log_vkey = log
    tree = LogTree(ledger)
    directory = tmp_path / "witness"
    with witness_process([log_vkey], directory, workers=2) as (base, vkey_text, _):
        witness = parse_vkey(vkey_text)
        first = tree.refresh()
        note = signed(ledger, first, tree.root(first))
        status, kind, lines = post(base, request(0, [], note))
        assert (status, kind) == (200, "text/plain; charset=utf-8"), lines
        assert set(verified_cosigners(with_cosignatures(note, [lines]), [witness])) == {
            witness.name
        }

        grow(ledger, 5)
        size = tree.refresh()
        note = signed(ledger, size, tree.root(size))
        status, _, lines = post(base, request(first, tree.consistency(first, size), note))
        assert status == 200 and verified_cosigners(with_cosignatures(note, [lines]), [witness])

        # a rollback: an older view than the one cosigned
        old_note = signed(ledger, first, tree.root(first))
        assert post(base, request(0, [], old_note))[:2] == (409, "text/x.tlog.size")
        assert post(base, request(first, [], old_note)) == (409, "text/x.tlog.size", f"{size}\n")

        # the operator rewrites the tail behind the witness's back and re-signs it
        rewritten = leaves(ledger)[:first] + [hashlib.sha256(b"x%d" % i).digest() for i in range(8)]
        fork = signed(ledger, size, root_hash(rewritten[:size]))
        status, kind, text = post(base, request(size, [], fork))
        assert (status, kind) == (409, "text/plain; charset=utf-8") and "fork" in text
        longer = len(rewritten)
        status, _, text = post(
            base,
            request(
                size,
                consistency_proof(rewritten, size),
                signed(ledger, longer, root_hash(rewritten)),
            ),
        )
        assert status == 422 and "does not verify" in text

    # restarted on the same directory: the state and the evidence are still there
    with witness_process([log_vkey], directory) as (base, _, _):
        assert post(base, request(0, [], note)) == (409, "text/x.tlog.size", f"{size}\n")
        assert post(base, request(size, [], note))[0] == 200
    shown = subprocess.run(
        [sys.executable, "-m", "ledger.cli", "witness", "status", "--dir", str(directory)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert f"{ledger.config.log_origin} size {size} " in shown
    assert shown.count("EVIDENCE") == 2


def test_concurrent_requests_over_http_cannot_roll_back(
    log: tuple[Ledger, str], tmp_path: Path
) -> None:
    """Two workers, four threads each: of racing extensions from one size, one wins."""
    ledger, log_vkey = log
    tree = LogTree(ledger)
    base_size = tree.refresh()
    grow(ledger, 12)
    top = tree.refresh()
    with witness_process([log_vkey], tmp_path / "w", workers=2) as (base, _, _):
        assert post(base, request(0, [], signed(ledger, base_size, tree.root(base_size))))[0] == 200
        bodies = [
            request(
                base_size, tree.consistency(base_size, size), signed(ledger, size, tree.root(size))
            )
            for size in range(base_size + 1, top + 1)
        ]
        with ThreadPoolExecutor(len(bodies)) as pool:
            answers = list(pool.map(lambda raw: post(base, raw), bodies))
        winners = [i for i, (status, _, _) in enumerate(answers) if status == 200]
        assert len(winners) == 1, answers
        won = base_size + 1 + winners[0]
        assert all(a == (409, "text/x.tlog.size", f"{won}\n") for a in answers if a[0] != 200)
        assert post(base, request(0, [], signed(ledger, top, tree.root(top))))[2] == f"{won}\n"


def test_http_edges_are_plain_text_one_liners(tmp_path: Path) -> None:
    log_vkey = Anchor.of(SigningKey.generate().public_raw, "ledger.test/log").to_string()
    with witness_process([log_vkey], tmp_path / "w") as (base, _, _):
        with pytest.raises(urllib.error.HTTPError) as got:
            urllib.request.urlopen(f"{base}/add-checkpoint", timeout=5)
        assert got.value.code == 405 and got.value.headers["Allow"] == "POST"
        for path, raw, status in (
            ("/nothing", b"", 404),
            ("/add-checkpoint", b"old 0\n", 400),
            ("/add-checkpoint", b"x" * (64 * 1024 + 1), 413),
        ):
            code, kind, text = post(base, raw, path)
            assert (code, kind) == (status, "text/plain; charset=utf-8")
            assert text.count("\n") == 1 and "Traceback" not in text
        host, port = base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as raw_http:
            raw_http.sendall(b"POST /add-checkpoint HTTP/1.1\r\nContent-Length: x\r\n\r\n")
            answer = raw_http.recv(4096).decode()
        assert answer.startswith("HTTP/1.1 400 ") and "text/plain" in answer
        assert answer.split("\r\n\r\n", 1)[1].count("\n") == 1  # gunicorn's own refusal
