"""Institutions receive results without retyping: school records, admission lookups, CSV."""

from __future__ import annotations

import base64
import csv
import io
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from tests.certification_flow import Flow
from tests.helpers import climb, register

SCHOOL, OTHER = "0350022K", "0290001A"
LEVELS = {"1.1": 2, "1.2": 2, "2.1": 3, "3.1": 1, "4.1": 2, "5.1": 1}


@pytest.fixture
def flow(app: Any, client: Any, admin: dict[str, str]) -> Flow:
    return Flow(app, client, admin)


def _pupil(flow: Flow, school: str, ine: str, **identity: Any) -> str:
    """An eligible candidate registered as a pupil of `school`."""
    candidate = register(
        flow.client, flow.platform, school=school, external_id=ine, audience="adult", **identity
    )
    answers = [a for code, level in LEVELS.items() for a in climb(candidate["id"], code, level)]
    flow.post("/api/v1/answers", {"answers": answers}, flow.platform)
    return candidate["id"]


def _published(flow: Flow) -> tuple[str, str, str]:
    """Two pupils of SCHOOL (one certified, one pending) and one of OTHER: (session, code, ine)."""
    certified = _pupil(flow, SCHOOL, "INE00000001A", last_name="=HYPERLINK(1)")
    _pupil(flow, SCHOOL, "INE00000002B", first_name="Zoé")
    _pupil(flow, OTHER, "INE00000003C")
    session = flow.session()["id"]
    flow.enrol(session, certified)
    flow.answer_all(flow.start(session, certified))
    flow.finalize(session)
    (code,) = flow.publish(session)
    return session, code, "INE00000001A"


def _b64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _verified(client: Any, signed: dict[str, Any]) -> dict[str, Any]:
    """Check the JWS with the public JWKS only, as a receiving system would."""
    header_b64, payload_b64, signature_b64 = signed["jws"].split(".")
    header = json.loads(_b64(header_b64))
    keys = client.get("/.well-known/jwks.json").get_json()["keys"]
    (jwk,) = [k for k in keys if k["kid"] == header["kid"]]
    assert header["alg"] == "EdDSA" and jwk["crv"] == "Ed25519"
    public = Ed25519PublicKey.from_public_bytes(_b64(jwk["x"]))
    public.verify(_b64(signature_b64), f"{header_b64}.{payload_b64}".encode("ascii"))
    payload = json.loads(_b64(payload_b64))
    assert payload == signed["document"]
    return payload


def _school_token(flow: Flow, uai: str) -> dict[str, str]:
    token = flow.post(f"/api/v1/institutions/{uai}/tokens", {}, flow.admin)
    assert token["scopes"] == [f"institution:{uai}"]
    return {"Authorization": f"Bearer {token['token']}"}


def test_school_records_signed_pending_and_isolated(flow: Flow, client: Any) -> None:
    _, code, _ = _published(flow)
    school = _school_token(flow, SCHOOL)
    response = client.get(f"/api/v1/institutions/{SCHOOL}/results", headers=school)
    assert response.status_code == 200, response.get_json()
    document = _verified(client, response.get_json())
    pupils = {p["ine"]: p for p in document["pupils"]}
    assert set(pupils) == {"INE00000001A", "INE00000002B"}  # never OTHER's pupil
    done, pending = pupils["INE00000001A"], pupils["INE00000002B"]
    assert done["status"] == "valid" and done["code"] == code and done["pix_score"] > 0
    assert done["domains"][0]["competences"][0]["level"] == 2
    assert pending == {**pending, "status": "pending", "first_name": "Zoé"}
    assert (pending["pix_score"], pending["domains"], pending["code"]) == (None, None, None)
    assert pending["school"] == SCHOOL
    assert [d["seq"] for d in document["derived_from"]] == document["derived_from_seqs"]
    assert document["derived_from_seqs"] and document["school"] == SCHOOL
    other = client.get(f"/api/v1/institutions/{OTHER}/results", headers=school)
    assert other.status_code == 403
    assert (
        client.get(f"/api/v1/institutions/{OTHER}/results.csv", headers=school).status_code == 403
    )


def test_admission_lookups(flow: Flow, client: Any) -> None:
    _, code, ine = _published(flow)
    token = flow.post("/api/v1/admission/tokens", {}, flow.admin)
    platform = {"Authorization": f"Bearer {token['token']}"}
    by_ine = _verified(
        client, client.get(f"/api/v1/admission/results?ine={ine}", headers=platform).get_json()
    )
    by_code = client.get(f"/api/v1/admission/results?code={code}", headers=platform).get_json()
    (result,) = by_ine["results"]
    assert result["code"] == code and result["status"] == "valid"
    assert _verified(client, by_code)["results"] == by_ine["results"]
    query = (f"school={SCHOOL}&last_name=%3Dhyperlink(1)&first_name=Camille"
             "&birth_date=2007-03-14")  # fmt: skip
    by_identity = client.get(f"/api/v1/admission/results?{query}", headers=platform)
    assert by_identity.get_json()["document"]["results"] == by_ine["results"]
    missing = client.get(f"/api/v1/admission/results?school={SCHOOL}", headers=platform)
    assert missing.status_code == 422 and "last_name" in json.dumps(missing.get_json())
    unknown = client.get("/api/v1/admission/results?ine=NOPE", headers=platform)
    assert unknown.status_code == 404
    school = _school_token(flow, SCHOOL)
    assert client.get(f"/api/v1/admission/results?ine={ine}", headers=school).status_code == 403


def test_results_csv_bom_rows_and_no_formula(flow: Flow, client: Any) -> None:
    session, code, _ = _published(flow)
    response = client.get(f"/api/v1/sessions/{session}/results.csv", headers=flow.staff)
    assert response.status_code == 200 and response.mimetype == "text/csv"
    raw = response.get_data()
    assert raw.startswith("\ufeff".encode())
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert len(rows) == 1 and rows[0]["code"] == code
    assert rows[0]["last_name"] == "'=HYPERLINK(1)" and rows[0]["level_2.1"] == "3"
    school = _school_token(flow, SCHOOL)
    by_school = client.get(f"/api/v1/institutions/{SCHOOL}/results.csv", headers=school)
    rows = list(csv.DictReader(io.StringIO(by_school.get_data().decode("utf-8-sig"))))
    assert sorted(r["status"] for r in rows) == ["pending", "valid"]
    assert {r["first_name"] for r in rows} >= {"Zoé"}


def test_school_must_be_a_uai(flow: Flow, client: Any) -> None:
    response = client.post(
        "/api/v1/candidates",
        json={"first_name": "A", "last_name": "B", "birth_date": "2007-03-14",
              "birth_place": "Rennes", "school": "35-0022"},
        headers=flow.platform,
    )  # fmt: skip
    assert response.status_code == 422 and "school" in json.dumps(response.get_json())
    bad = client.post("/api/v1/institutions/abc/tokens", json={}, headers=flow.admin)
    assert bad.status_code == 404 and "uai" in bad.get_json()["detail"]
    staff = client.get(f"/api/v1/institutions/{SCHOOL}/results", headers=flow.staff)
    assert staff.status_code == 403
    for path in ("results", "results.csv"):  # the operator too; never a header built from it
        odd = client.get(f"/api/v1/institutions/0350022K%0A/{path}", headers=flow.admin)
        assert odd.status_code == 404 and "uai" in odd.get_json()["detail"]


# --- INE look-ups go through the keyed-hash index, checked against the signed log -----


def _admission(flow: Flow) -> dict[str, str]:
    token = flow.post("/api/v1/admission/tokens", {}, flow.admin)
    return {"Authorization": f"Bearer {token['token']}"}


def _tamper(app: Any, sql: str, *params: Any) -> None:
    """Write a table directly, as someone with database access could."""
    with app.extensions["ledger"].ledger.db.write(lock=None) as cur:
        cur.execute(sql, params)


def _holder(app: Any, ine: str) -> tuple[str, str] | None:
    return app.extensions["ledger"].institutions.external_ids.holder(ine)


def test_an_ine_is_found_through_the_index(flow: Flow, client: Any, app: Any) -> None:
    _, code, ine = _published(flow)
    platform = _admission(flow)
    found = client.get(f"/api/v1/admission/results?ine={ine.lower()}", headers=platform)
    assert found.status_code == 200, found.get_json()
    document = _verified(client, found.get_json())
    (result,) = document["results"]
    assert (result["ine"], result["code"], document["query"]) == (ine, code, {"ine": ine.lower()})
    assert result["candidate"] == _holder(app, ine)[0]
    unknown = client.get("/api/v1/admission/results?ine=INE99999999Z", headers=platform)
    assert unknown.status_code == 404
    assert unknown.mimetype == "application/problem+json"


def test_a_row_pointing_at_another_pupil_never_shows_them(
    flow: Flow, client: Any, app: Any
) -> None:
    _, _, ine = _published(flow)
    other = _holder(app, "INE00000002B")
    blind = app.extensions["ledger"].institutions.external_ids.blind(ine)
    platform = _admission(flow)
    _tamper(app, "UPDATE external_ids SET candidate = ? WHERE blind = ?", other[0], blind)
    moved = client.get(f"/api/v1/admission/results?ine={ine}", headers=platform)
    _tamper(app, "UPDATE external_ids SET subject = ? WHERE blind = ?", other[1], blind)
    both = client.get(f"/api/v1/admission/results?ine={ine}", headers=platform)
    for response in (moved, both):
        assert response.status_code == 404, response.get_json()
        assert "INE00000002B" not in response.get_data(as_text=True)
    _tamper(app, "DELETE FROM external_ids WHERE blind = ?", blind)
    deleted = client.get(f"/api/v1/admission/results?ine={ine}", headers=platform)
    assert deleted.status_code == 404 and "results" not in deleted.get_json()


def test_a_tampered_registration_is_an_integrity_problem(flow: Flow, client: Any, app: Any) -> None:
    _, _, ine = _published(flow)
    candidate, _ = _holder(app, ine)
    _tamper(
        app,
        "UPDATE ledger_events SET data = REPLACE(data, 'adult', 'lower-secondary')"
        " WHERE stream = ? AND version = 1",
        candidate,
    )
    response = client.get(f"/api/v1/admission/results?ine={ine}", headers=_admission(flow))
    assert response.status_code == 503
    problem = response.get_json()
    assert problem["type"].endswith("integrity-failure") and "results" not in problem


def test_an_erased_pupil_is_not_found_even_if_a_row_comes_back(
    flow: Flow, client: Any, app: Any
) -> None:
    _, _, ine = _published(flow)
    candidate, subject = _holder(app, ine)
    erased = client.post(
        f"/api/v1/subjects/{subject}/erasure",
        json={"reason": "data-subject-request"},
        headers=flow.admin,
    )
    assert erased.status_code == 201, erased.get_json()
    assert _holder(app, ine) is None  # erasure deleted the row
    platform = _admission(flow)
    assert client.get(f"/api/v1/admission/results?ine={ine}", headers=platform).status_code == 404
    blind = app.extensions["ledger"].institutions.external_ids.blind(ine)
    _tamper(
        app,
        "INSERT INTO external_ids (blind, candidate, subject, created) VALUES (?, ?, ?, ?)",
        blind, candidate, subject, "2026-01-01T00:00:00Z",
    )  # fmt: skip
    restored = client.get(f"/api/v1/admission/results?ine={ine}", headers=platform)
    assert restored.status_code == 404  # the sealed INE no longer opens
