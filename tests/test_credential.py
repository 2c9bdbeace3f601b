"""Verifiable credentials: Open Badges 3.0 with an eddsa-rdfc-2022 proof, did:web, status list.

Each credential is checked twice, by `verify_credential` and by digitalbazaar's
standard verifier (tests/js/verify.mjs, run with node and the bundled contexts
only), both on SQLite and PostgreSQL; any change to a signed credential must
make both fail. Cancelling a certificate sets its bit in the signed status list.
"""

from __future__ import annotations

import copy
import gzip
import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ledger import crypto
from ledger.domain import clock
from ledger.domain.certificate import certificate_id
from ledger.vc import did, jsonld, status_list
from ledger.vc.credential import CredentialError, status_bit, verify_credential
from tests.certification_flow import Flow
from tests.test_api_positioning import assert_problem

JS_VERIFIER = Path(__file__).parent / "js" / "verify.mjs"
LATER = datetime(2027, 1, 10, 9, tzinfo=UTC)  # after publication, before expiry
NOW = "2027-02-01T00:00:00Z"  # when the npm verifier judges validFrom/validUntil


@pytest.fixture
def flow(app, client, admin) -> Flow:
    return Flow(app, client, admin)


def _credential(flow: Flow, code: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    with clock.frozen_at(LATER):
        response = flow.client.get(
            f"/api/v1/certificates/{code}/credential", headers=headers or flow.staff
        )
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/vc+ld+json"
    return response.get_json()


def _did(client) -> dict[str, Any]:
    response = client.get("/.well-known/did.json")
    assert response.status_code == 200 and response.mimetype == "application/did+json"
    return response.get_json()


def _status_list(client, vc: dict[str, Any]) -> dict[str, Any]:
    url = vc["credentialStatus"]["statusListCredential"]
    response = client.get(url.removeprefix("http://127.0.0.1:8000"))
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def npm_verify(vc: dict[str, Any], did_doc: dict[str, Any], status: dict[str, Any]) -> dict:
    """Run digitalbazaar's verifier on `vc`, offline: it gets the documents it may load."""
    contexts = {url: jsonld.bundled_context(url) for url in jsonld.CONTEXT_FILES}
    given = {
        "credential": vc,
        "did": did_doc,
        "statusList": status,
        "contexts": contexts,
        "now": NOW,
    }
    run = subprocess.run(
        ["node", str(JS_VERIFIER)], input=json.dumps(given), capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def _tampered(vc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """One changed copy per kind of change a holder might try."""
    level, until, proof, added = (copy.deepcopy(vc) for _ in range(4))
    results = level["credentialSubject"]["result"]
    results[0]["value"] = str(int(results[0]["value"]) + 1)
    until["validUntil"] = "2035-12-01T23:59:59+01:00"
    value = proof["proof"]["proofValue"]
    proof["proof"]["proofValue"] = value[:-2] + ("1" if value[-2] != "1" else "2") + value[-1]
    added["credentialSubject"]["achievement"]["name"] += " (mention très bien)"
    return {"level": level, "validUntil": until, "proofValue": proof, "name": added}


def test_the_credential_is_an_open_badge_built_from_the_verified_certificate(flow, client):
    _, code, _ = flow.certified()
    vc = _credential(flow, code)
    public = client.get(f"/api/v1/certificates/{code}").get_json()
    issuer = did.did_web("http://127.0.0.1:8000")
    assert issuer == "did:web:127.0.0.1%3A8000"
    assert vc["@context"] == [jsonld.VC_V2, jsonld.OB_V3]
    assert vc["type"] == ["VerifiableCredential", "OpenBadgeCredential"]
    assert vc["id"].startswith("urn:uuid:") and vc["issuer"]["id"] == issuer
    assert vc["validFrom"] == "2026-12-01T00:00:00+01:00"
    assert vc["validUntil"] == "2029-12-01T23:59:59+01:00"  # 3 years, the certificate's own
    subject = vc["credentialSubject"]
    holder = public["holder"]
    assert (
        subject["identifier"][0]["identityHash"] == f"{holder['first_name']} {holder['last_name']}"
    )
    described = subject["achievement"]["resultDescription"]
    assert len(described) == 17 and described[-1]["valueMax"] == "640"  # 16 competences + pix
    levels = {r["resultDescription"].rsplit("#", 1)[1]: r["value"] for r in subject["result"]}
    expected = {c["code"]: str(c["level"]) for d in public["domains"] for c in d["competences"]}
    assert levels == {**expected, "pix": str(public["pix_score"])}
    assert public["proof"]["hash"] in vc["evidence"][0]["description"]
    proof = vc["proof"]
    assert proof["type"] == "DataIntegrityProof" and proof["cryptosuite"] == "eddsa-rdfc-2022"
    assert (
        proof["verificationMethod"]
        == f"{issuer}#{flow.app.extensions['ledger'].ledger.signing_key().kid}"
    )
    assert proof["proofValue"].startswith("z")
    status = vc["credentialStatus"]
    assert status["type"] == "BitstringStatusListEntry" and status["statusPurpose"] == "revocation"
    assert status["statusListCredential"] == "http://127.0.0.1:8000/api/v1/status/1"


def test_both_verifiers_accept_it_and_reject_every_change(flow, client):
    _, code, _ = flow.certified()
    vc, did_doc = _credential(flow, code), _did(client)
    status = _status_list(client, vc)
    assert (
        verify_credential(vc, did_doc)["verification_method"] == vc["proof"]["verificationMethod"]
    )
    assert status_bit(vc, status, did_doc) is False
    assert npm_verify(vc, did_doc, status) == {"verified": True, "revoked": False, "error": None}
    for change, changed in _tampered(vc).items():
        with pytest.raises(CredentialError):
            verify_credential(changed, did_doc)
        assert npm_verify(changed, did_doc, status)["verified"] is False, change


def test_a_term_the_contexts_do_not_define_is_refused_not_ignored(flow, client):
    _, code, _ = flow.certified()
    vc, did_doc = _credential(flow, code), _did(client)
    vc["credentialSubject"]["mention"] = "très bien"  # would be dropped from the signed N-Quads
    with pytest.raises(CredentialError, match="do not define"):
        verify_credential(vc, did_doc)
    assert npm_verify(vc, did_doc, _status_list(client, vc))["verified"] is False


def test_a_key_not_in_the_did_document_is_refused(flow, client):
    _, code, _ = flow.certified()
    vc, did_doc = _credential(flow, code), _did(client)
    other = did.did_document(did_doc["id"], [crypto.SigningKey.generate().public_raw])
    with pytest.raises(CredentialError, match="not one of the issuer's keys"):
        verify_credential(vc, other)
    assert npm_verify(vc, other, _status_list(client, vc))["verified"] is False


def test_after_a_key_rotation_old_and_new_credentials_verify(flow, client):
    _, code, _ = flow.certified()
    old = _credential(flow, code)
    ledger = flow.app.extensions["ledger"].ledger
    new_key = ledger.keyring.generate()
    ledger.recorder.rotate(new_key)
    ledger.keyring.activate(new_key.kid)
    new, did_doc = _credential(flow, code), _did(client)
    assert new["proof"]["verificationMethod"].endswith(f"#{new_key.kid}")
    assert len(did_doc["verificationMethod"]) == 2
    status = _status_list(client, new)
    assert status["proof"]["verificationMethod"] == new["proof"]["verificationMethod"]
    for vc in (old, new):
        verify_credential(vc, did_doc)
        assert npm_verify(vc, did_doc, status)["verified"] is True


def test_cancelling_sets_the_status_bit(flow, client, admin):
    _, first, _ = flow.certified()
    _, code, _ = flow.certified()
    vc, did_doc = _credential(flow, code), _did(client)
    kept = _credential(flow, first)
    assert vc["credentialStatus"]["statusListIndex"] == "1"
    assert kept["credentialStatus"]["statusListIndex"] == "0"
    with clock.frozen_at(LATER):
        flow.post(f"/api/v1/certificates/{code}/cancellation", {"reason": "fraude avérée"}, admin)
    status = _status_list(client, vc)
    assert status_bit(vc, status, did_doc) is True
    assert status_bit(kept, status, did_doc) is False
    assert npm_verify(vc, did_doc, status) == {
        "verified": False, "revoked": True, "error": status_error(vc, did_doc, status)
    }  # fmt: skip
    assert npm_verify(kept, did_doc, status)["verified"] is True
    bits = gzip.decompress(crypto.b64url_decode(status["credentialSubject"]["encodedList"][1:]))
    assert len(bits) == status_list.SIZE // 8 and bits[0] == 0b0100_0000
    with clock.frozen_at(LATER):
        again = client.get(f"/api/v1/certificates/{code}/credential", headers=flow.staff)
    assert_problem(again, 410, "certificate-cancelled")


def status_error(vc: dict[str, Any], did_doc: dict[str, Any], status: dict[str, Any]) -> str:
    """The npm verifier's message for a revoked credential (whatever its wording)."""
    return npm_verify(vc, did_doc, status)["error"]


def test_rescoring_issues_a_new_credential_and_revokes_the_old(flow, client, admin):
    _, session, course = flow.started()
    flow.answer_all(course, wrong=2)
    flow.finalize(session)
    (code,) = flow.publish(session)
    before = _credential(flow, code)
    wrong = [c["challenge"] for c in course["challenges"][:2]]
    with clock.frozen_at(LATER):
        flow.post(
            f"/api/v1/certificates/{code}/rescoring",
            {"neutralize": wrong, "reason": "bug in challenge"},
            admin,
        )
    after = _credential(flow, code)
    assert after["id"] != before["id"]
    assert after["validFrom"] == "2027-01-10T00:00:00+01:00"
    assert after["validUntil"] == before["validUntil"]
    old_index = int(before["credentialStatus"]["statusListIndex"])
    assert int(after["credentialStatus"]["statusListIndex"]) > old_index  # a place of its own
    pix = {c["credentialSubject"]["result"][-1]["value"] for c in (before, after)}
    public = client.get(f"/api/v1/certificates/{code}").get_json()
    assert str(public["pix_score"]) == after["credentialSubject"]["result"][-1]["value"]
    assert len(pix) == 2
    did_doc = _did(client)
    assert npm_verify(after, did_doc, _status_list(client, after))["verified"] is True
    # The superseded credential, with the old levels, no longer passes.
    assert status_bit(before, _status_list(client, before), did_doc) is True
    assert status_bit(after, _status_list(client, after), did_doc) is False
    assert npm_verify(before, did_doc, _status_list(client, before))["verified"] is False


def test_who_may_download_a_credential(flow, client, admin, appender):
    _, code, _ = flow.certified()
    url = f"/api/v1/certificates/{code}/credential"
    assert_problem(client.get(url), 401, "missing-token")
    assert_problem(client.get(url, headers={"Authorization": "Bearer nope"}), 401, "invalid-token")
    assert_problem(client.get(url, headers=appender), 403, "insufficient-scope")
    other = Flow(flow.app, client, admin)  # another centre's staff
    assert_problem(client.get(url, headers=other.staff), 403, "not-your-certificate")
    assert _credential(flow, code, admin)["credentialSubject"]
    assert _credential(flow, code, flow.staff)["credentialSubject"]
    assert_problem(client.get("/api/v1/certificates/P-BBBBBBBB/credential", headers=admin), 404,
                   "unknown-certificate")  # fmt: skip


def test_a_holder_downloads_their_own_credential_and_no_one_elses(flow, client):
    candidate, code, _ = flow.certified()
    _, other_code, _ = flow.certified()

    def token_of(person: str) -> dict[str, str]:
        body = flow.post(f"/api/v1/candidates/{person}/tokens", {}, flow.platform)
        return {"Authorization": f"Bearer {body['token']}"}

    holder = token_of(candidate)
    assert _credential(flow, code, holder)["credentialSubject"]
    url = f"/api/v1/certificates/{other_code}/credential"
    assert_problem(client.get(url, headers=holder), 403, "not-your-certificate")


def test_status_lists_and_did_document_are_public(flow, client):
    _, code, _ = flow.certified()
    vc = _credential(flow, code)
    assert _status_list(client, vc)["type"] == [
        "VerifiableCredential",
        "BitstringStatusListCredential",
    ]
    assert_problem(client.get("/api/v1/status/2"), 404, "unknown-status-list")
    assert_problem(client.get("/api/v1/status/0"), 404, "unknown-status-list")
    did_doc = _did(client)
    keys = flow.app.extensions["ledger"].ledger.key_history().jwks()["keys"]
    assert [m["id"].rsplit("#", 1)[1] for m in did_doc["verificationMethod"]] == [
        k["kid"] for k in keys
    ]
    assert all(m["publicKeyMultibase"].startswith("z6Mk") for m in did_doc["verificationMethod"])
    assert did_doc["assertionMethod"] == [m["id"] for m in did_doc["verificationMethod"]]


def test_a_certificate_whose_events_do_not_verify_gets_no_credential(flow, client, admin):
    _, code, _ = flow.certified()
    ledger = flow.app.extensions["ledger"].ledger
    issued = ledger.recorder.stream_envelopes(str(certificate_id(code)))[0]
    data = {**issued.data, "pix_score": issued.data["pix_score"] + 100}
    with ledger.db.write() as cur:
        cur.execute(
            "UPDATE ledger_events SET data = ? WHERE seq = ?",
            (crypto.canonical_json(data).decode(), issued.seq),
        )
    with clock.frozen_at(LATER):
        response = client.get(f"/api/v1/certificates/{code}/credential", headers=admin)
    assert_problem(response, 409, "integrity-failure")
    assert_problem(client.get("/api/v1/status/1"), 409, "integrity-failure")
    alarms = flow.app.extensions["ledger"].integrity_alarms
    assert any("status_list" in alarm for alarm in alarms)
    assert client.get("/api/v1/ready").status_code == 503


def test_a_deleted_event_stops_the_status_lists(flow, client, admin):
    _, first, _ = flow.certified()
    _, code, _ = flow.certified()
    ledger = flow.app.extensions["ledger"].ledger
    issued = ledger.recorder.stream_envelopes(str(certificate_id(first)))[0]
    with ledger.db.write() as cur:  # later certificates' indices would all shift by one
        cur.execute("DELETE FROM ledger_events WHERE seq = ?", (issued.seq,))
    assert_problem(client.get("/api/v1/status/1"), 409, "integrity-failure")
    with clock.frozen_at(LATER):
        response = client.get(f"/api/v1/certificates/{code}/credential", headers=admin)
    assert_problem(response, 409, "integrity-failure")


def test_an_erased_holder_gets_no_credential(flow, client, admin):
    _, code, _ = flow.certified()
    flow.app.extensions["ledger"].fresh()
    with flow.app.extensions["ledger"].ledger.db.read() as cur:
        cur.execute("SELECT subject FROM proj_certificates WHERE code = ?", (code,))
        subject = cur.fetchone()[0]
    flow.post(f"/api/v1/subjects/{subject}/erasure", {"reason": "data-subject-request"}, admin)
    with clock.frozen_at(LATER):
        response = client.get(f"/api/v1/certificates/{code}/credential", headers=admin)
    assert_problem(response, 410, "holder-erased")


# --- encodings, without a database ------------------------------------------


def test_base58btc_and_multikey_round_trip() -> None:
    assert crypto.b58btc(b"Hello World!") == "2NEpo7TZRRrLZSi2U"
    assert crypto.b58btc_decode("112NEpo7TZRRrLZSi2U") == b"\0\0Hello World!"
    key = crypto.SigningKey.generate()
    multikey = crypto.ed25519_multikey(key.public_raw)
    assert (
        multikey.startswith("z6Mk") and crypto.public_key_from_multikey(multikey) == key.public_raw
    )
    for bad in ("6Mk", "z0OIl", crypto.multibase_b58(b"\x12\x00" + key.public_raw)):
        with pytest.raises(crypto.CryptoError):
            crypto.public_key_from_multikey(bad)


def test_did_web_of_a_public_url() -> None:
    assert did.did_web("https://ledger.example.fr") == "did:web:ledger.example.fr"
    assert did.did_web("http://127.0.0.1:8000") == "did:web:127.0.0.1%3A8000"
    assert did.did_web("https://example.fr/crcn/ledger") == "did:web:example.fr:crcn:ledger"


def test_status_list_encoding_round_trip_and_bounds() -> None:
    encoded = status_list.encode([0, 9, status_list.SIZE - 1])
    bits = status_list.decode(encoded)
    assert len(bits) == 16 * 1024
    assert [i for i in (0, 1, 8, 9, status_list.SIZE - 1) if status_list.is_set(bits, i)] == [
        0, 9, status_list.SIZE - 1
    ]  # fmt: skip
    assert status_list.place(status_list.SIZE + 5) == (2, 5)
    with pytest.raises(status_list.StatusListError):
        status_list.encode([status_list.SIZE])
    bomb = "u" + crypto.b64url(gzip.compress(bytes(4 << 20)))  # 4 MiB of zeros in 4 KiB
    short = "u" + crypto.b64url(gzip.compress(bytes(100)))
    for bad in (bomb, short, "uNotGzip", "zabc", 42):
        with pytest.raises(status_list.StatusListError):
            status_list.decode(bad)  # type: ignore[arg-type]


# --- ledger verify-credential -------------------------------------------------


def _cli(*args: str) -> Any:
    from click.testing import CliRunner

    from ledger.cli import main

    with clock.frozen_at(LATER):
        return CliRunner().invoke(main, ["verify-credential", *args], catch_exceptions=False)


def test_verify_credential_offline_from_the_command_line(flow, client, admin, tmp_path):
    _, code, _ = flow.certified()
    vc = _credential(flow, code)
    files = {
        "vc.json": vc,
        "did.json": _did(client),
        "jwks.json": client.get("/.well-known/jwks.json").get_json(),
        "status.json": _status_list(client, vc),
        "level.json": _tampered(vc)["level"],
        "broken.json": [1, 2],
    }
    for name, document in files.items():
        (tmp_path / name).write_text(json.dumps(document))
    (tmp_path / "garbage.json").write_text("{not json")
    p = {name: str(tmp_path / name) for name in [*files, "garbage.json"]}

    ok = _cli(p["vc.json"], "--did", p["did.json"], "--status", p["status.json"])
    assert ok.exit_code == 0 and ok.stdout.startswith("VALID proof:"), ok.output
    by_jwks = _cli(p["vc.json"], "--jwks", p["jwks.json"])
    assert by_jwks.exit_code == 0 and "revocation not checked" in by_jwks.stdout
    changed = _cli(p["level.json"], "--did", p["did.json"])
    assert changed.exit_code == 1 and changed.stderr.startswith("INVALID: the signature")
    for bad in (p["broken.json"], p["garbage.json"]):
        refused = _cli(bad, "--did", p["did.json"])
        assert refused.exit_code == 1 and len(refused.stderr.strip().splitlines()) == 1
    both = _cli(p["vc.json"], "--did", p["did.json"], "--jwks", p["jwks.json"])
    assert both.exit_code == 1 and "exactly one" in both.stderr

    with clock.frozen_at(LATER):
        flow.post(f"/api/v1/certificates/{code}/cancellation", {"reason": "fraude"}, admin)
    (tmp_path / "status.json").write_text(json.dumps(_status_list(client, vc)))
    revoked = _cli(p["vc.json"], "--did", p["did.json"], "--status", p["status.json"])
    assert revoked.exit_code == 1 and "REVOKED" in revoked.stderr
