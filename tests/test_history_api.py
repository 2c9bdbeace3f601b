"""GET /api/v1/certificates/<code>/history: events with inclusion proofs to a signed checkpoint.

Proofs are checked by an RFC 9162 verifier written here from the RFC text
(section 2.1.3.2), independent of ledger/audit/merkle.py.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
from datetime import UTC, datetime
from typing import Any

import pytest

from ledger.audit.checkpoint import Checkpoint, parse_note, sign_checkpoint, verify_checkpoint
from ledger.audit.cosignature import cosign, parse_vkey, verified_cosigners, witness_vkey
from ledger.crypto import SigningKey
from ledger.domain import clock
from ledger.services.checkpoints import Checkpointer, latest_note
from ledger.services.history import NOT_YET, ProofTarget, certificate_history, page_trust
from ledger.store.checkpoints import CheckpointStore, Cosignature
from tests.certification_flow import Flow
from tests.spec_witness import spec_witness


def _root_from_path(index: int, size: int, leaf: bytes, path: list[bytes]) -> bytes | None:
    """RFC 9162 2.1.3.2, step by step: the root the audit path leads to, or None."""
    if index >= size:
        return None
    fn, sn = index, size - 1
    r = hashlib.sha256(b"\x00" + leaf).digest()
    for p in path:
        if sn == 0:
            return None
        if fn % 2 == 1 or fn == sn:
            r = hashlib.sha256(b"\x01" + p + r).digest()
            while fn % 2 == 0 and fn != 0:
                fn, sn = fn // 2, sn // 2
        else:
            r = hashlib.sha256(b"\x01" + r + p).digest()
        fn, sn = fn // 2, sn // 2
    return r if sn == 0 else None


@pytest.fixture
def certified(app: Any, client: Any, admin: dict[str, str]) -> tuple[Flow, str]:
    flow = Flow(app, client, admin)
    _, code, _ = flow.certified()
    return flow, code


def _checked(body: dict[str, Any]) -> None:
    """Every proof leads to the note's root, and a served log key signed the note."""
    cp = body["checkpoint"]
    keys = [parse_vkey(k).public_raw for k in body["log_keys"]]
    origin = parse_vkey(body["log_keys"][0]).name
    verified = verify_checkpoint(cp["note"], origin, keys)
    assert (verified.size, base64.b64encode(verified.root).decode()) == (cp["size"], cp["root"])
    for event in body["events"]:
        proof = event["inclusion"]
        assert proof["leaf_index"] == event["seq"] - 1 and proof["tree_size"] == cp["size"]
        path = [base64.b64decode(h) for h in proof["hashes"]]
        leaf = bytes.fromhex(event["hash"])
        assert _root_from_path(proof["leaf_index"], cp["size"], leaf, path) == verified.root


def test_history_of_a_cancelled_certificate(certified, client, admin) -> None:
    flow, code = certified
    with clock.frozen_at(datetime(2026, 12, 2, 9, tzinfo=UTC)):
        flow.post(f"/api/v1/certificates/{code}/cancellation", {"reason": "fraude"}, admin)
    response = client.get(f"/api/v1/certificates/{code.lower()[2:]}/history")
    assert response.status_code == 200, response.json
    body = response.json
    assert body["code"] == code and body["status"] == "cancelled"
    assert [e["type"] for e in body["events"]] == [
        "certification.CertificateIssued",
        "certification.CertificateCancelled",
    ]
    assert set(body["events"][0]) == {
        "seq", "version", "type", "time", "hash", "prev", "kid", "sig", "inclusion"
    }  # fmt: skip
    assert body["checkpoint"]["witnessed"] is False
    _checked(body)
    assert "X-RateLimit-Limit" in response.headers


def test_a_tampered_proof_does_not_lead_to_the_root(certified, client) -> None:
    _, code = certified
    body = client.get(f"/api/v1/certificates/{code}/history").json
    proof = body["events"][0]["inclusion"]
    first = bytearray(base64.b64decode(proof["hashes"][0]))
    first[0] ^= 1
    proof["hashes"][0] = base64.b64encode(bytes(first)).decode()
    with pytest.raises(AssertionError):
        _checked(body)


def test_unknown_code_is_a_problem(client) -> None:
    for code in ("P-BBBBBBBB", "nonsense"):
        response = client.get(f"/api/v1/certificates/{code}/history")
        assert response.status_code == 404
        assert response.mimetype == "application/problem+json"


def test_events_after_the_checkpoint_have_no_proof_yet(certified, app, admin) -> None:
    flow, code = certified
    st = app.extensions["ledger"]
    from ledger.api.log import shared_tree

    with app.app_context():
        tree = shared_tree()
    size = tree.refresh()
    cp = Checkpoint(st.config.log_origin, size, tree.root(size))
    target = ProofTarget(sign_checkpoint(cp, st.ledger.signing_key()), size, cp.root, False)
    with clock.frozen_at(datetime(2026, 12, 2, 9, tzinfo=UTC)):
        flow.post(f"/api/v1/certificates/{code}/cancellation", {"reason": "fraude"}, admin)
    tree.refresh()
    body = certificate_history(st.ledger, tree, code, "cancelled", target)
    issued, cancelled = body["events"]
    assert issued["inclusion"]["tree_size"] == size
    assert cancelled["inclusion"] is None and cancelled["reason"] == NOT_YET
    body["events"] = [issued]
    _checked(body)


def test_openapi_documents_the_history_with_an_example(client) -> None:
    spec = client.get("/api/v1/openapi.json").json
    operation = spec["paths"]["/api/v1/certificates/{code}/history"]["get"]
    example = operation["responses"]["200"]["content"]["application/json"]["example"]
    assert example["events"][1]["inclusion"] is None


def cosign_latest(
    ledger: Any, name: str = "witness.example/univ", when: int = 1_795_000_000
) -> str:
    """Configure one witness (quorum 1) and store its valid cosignature on the latest checkpoint."""
    key = SigningKey.generate()
    vkey = witness_vkey(name, key)
    witnesses = f"{vkey} http://127.0.0.1:9"
    ledger.config = dataclasses.replace(ledger.config, witnesses=witnesses, witness_quorum=1)
    latest_note(ledger)  # the first checkpoint, if none is stored yet
    store = CheckpointStore(ledger.db)
    cp = store.latest()
    line = cosign(parse_note(cp.note)[2], name, key, when)
    store.add_cosignatures(cp.size, [Cosignature(name, line, when)])
    return str(vkey)


def test_proofs_lead_to_the_witnessed_checkpoint(certified, app, client) -> None:
    _, code = certified
    vkey = cosign_latest(app.extensions["ledger"].ledger)
    body = client.get(f"/api/v1/certificates/{code}/history").json
    cp = body["checkpoint"]
    assert cp["witnessed"] is True and cp["quorum"] == 1
    assert cp["cosigners"] == {"witness.example/univ": 1_795_000_000}
    assert body["witness_keys"] == [vkey]
    assert verified_cosigners(cp["note"], [parse_vkey(vkey)]) == cp["cosigners"]
    _checked(body)


def test_a_quorum_of_zero_is_not_witnessed_without_a_cosigner(certified, app, client) -> None:
    """LEDGER_WITNESS_QUORUM=0 with a witness set: zero cosignatures is not "witnessed"."""
    _, code = certified
    ledger = app.extensions["ledger"].ledger
    vkey = witness_vkey("witness.example/idle", SigningKey.generate())
    ledger.config = dataclasses.replace(
        ledger.config, witnesses=f"{vkey} http://127.0.0.1:9", witness_quorum=0
    )
    latest_note(ledger)  # a stored checkpoint no witness cosigned
    cp = client.get(f"/api/v1/certificates/{code}/history").json["checkpoint"]
    assert cp["witnessed"] is False and cp["cosigners"] == {} and cp["quorum"] == 0


def test_the_page_trusts_configured_keys_not_the_history(certified, app) -> None:
    """The page's trust: the anchor first, the configured witnesses and quorum, 2x max age."""
    ledger = app.extensions["ledger"].ledger
    vkey = cosign_latest(ledger)
    trust = page_trust(ledger)
    assert trust["log_keys"][0] == ledger.trust_anchor().to_string()
    assert trust["witness_keys"] == [vkey] and trust["quorum"] == 1
    assert trust["max_age"] == 2 * ledger.config.checkpoint_max_age_s


def test_a_witness_over_http_cosigns_and_later_events_wait(certified, app, client, admin) -> None:
    """A witness written from the spec, over HTTP: proofs go to what it cosigned, not beyond."""
    flow, code = certified
    st = app.extensions["ledger"]
    ledger = st.ledger
    key, origin = ledger.signing_key().public_raw, ledger.config.log_origin
    with spec_witness("w1.example/a", origin, key) as witness:
        ledger.config = dataclasses.replace(
            ledger.config, witnesses=witness.config_entry(), witness_quorum=1
        )
        signer = Checkpointer(ledger, st.checkpoints.tree)
        try:
            size = signer.tick()
        finally:
            signer.close()
    assert size
    with clock.frozen_at(datetime(2026, 12, 2, 9, tzinfo=UTC)):
        flow.post(f"/api/v1/certificates/{code}/cancellation", {"reason": "fraude"}, admin)
    body = client.get(f"/api/v1/certificates/{code}/history").json
    cp = body["checkpoint"]
    assert cp["witnessed"] is True and cp["size"] == size
    assert set(cp["cosigners"]) == {"w1.example/a"}
    issued, cancelled = body["events"]
    assert cancelled["inclusion"] is None and cancelled["reason"] == NOT_YET
    body["events"] = [issued]
    _checked(body)


def test_a_checkpoint_beyond_the_log_is_an_alarm_not_a_proof(certified, app, client) -> None:
    """A stored checkpoint larger than the log (its tail truncated): 503 and an alarm."""
    _, code = certified
    st = app.extensions["ledger"]
    head = st.ledger.db.scalar("SELECT MAX(seq) FROM ledger_events")
    cp = Checkpoint(st.config.log_origin, head + 10, bytes(32))
    note = sign_checkpoint(cp, st.ledger.signing_key())
    with st.ledger.db.write(lock=None) as cur:
        cur.execute(
            "INSERT INTO tlog_checkpoints (size, root, note, created_at) VALUES (?, ?, ?, ?)",
            (cp.size, cp.root.hex(), note, "2026-12-01T00:00:00.000000Z"),
        )
    response = client.get(f"/api/v1/certificates/{code}/history")
    assert response.status_code == 503, response.json
    assert response.mimetype == "application/problem+json"
    assert any(a.get("check") == "checkpoint" for a in st.integrity_alarms)
