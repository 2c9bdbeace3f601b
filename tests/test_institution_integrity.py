"""Institution documents are built from verified events: a tampered read model is refused."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest

from tests.certification_flow import Flow
from tests.helpers import register
from tests.test_institutions import (
    OTHER,
    SCHOOL,
    _admission,
    _published,
    _pupil,
    _school_token,
    _tamper,
    _verified,
)

CAMILLE = f"school={SCHOOL}&last_name=%3Dhyperlink(1)&first_name=Camille&birth_date=2007-03-14"


@pytest.fixture
def flow(app: Any, client: Any, admin: dict[str, str]) -> Flow:
    return Flow(app, client, admin)


def _csv_rows(response: Any) -> list[dict[str, str]]:
    assert response.status_code == 200, response.get_data(as_text=True)
    return list(csv.DictReader(io.StringIO(response.get_data().decode("utf-8-sig"))))


def _refused(response: Any) -> None:
    """503 integrity-failure, and nothing signed in the answer."""
    assert response.status_code == 503, response.get_data(as_text=True)[:300]
    assert response.get_json()["type"].endswith("/integrity-failure")
    assert not {"jws", "document"} & set(response.get_json())
    assert response.get_json()["problems"]  # which check failed, none of the content


def _swap_identities(app: Any) -> None:
    """Give SCHOOL's two pupils each other's sealed identity."""
    with app.extensions["ledger"].ledger.db.read() as cur:
        cur.execute("SELECT candidate, identity FROM proj_candidates WHERE school = ?", (SCHOOL,))
        (a, id_a), (b, id_b) = cur.fetchall()
    for candidate, identity in ((a, id_b), (b, id_a)):
        _tamper(
            app, "UPDATE proj_candidates SET identity = ? WHERE candidate = ?", identity, candidate
        )


TAMPERING = {
    "pix": ("UPDATE proj_certificates SET pix_score = 999", "code={code}"),
    "status": ("UPDATE proj_certificates SET status = 'cancelled'", "code={code}"),
    "levels": ("UPDATE proj_certificates SET competences = '[]'", "code={code}"),
    "code": ("UPDATE proj_certificates SET code = 'QXTZ7DKM2R'", CAMILLE),
    "school": (f"UPDATE proj_candidates SET school = '{SCHOOL}' WHERE school = '{OTHER}'", None),
    "identity": (None, CAMILLE),
    "deleted": ("DELETE FROM proj_certificates", CAMILLE),  # a validated result lost
}


@pytest.mark.parametrize("case", sorted(TAMPERING))
def test_a_tampered_read_model_is_refused_never_signed(
    flow: Flow, client: Any, app: Any, case: str
) -> None:
    _, code, _ = _published(flow)
    school, platform = _school_token(flow, SCHOOL), _admission(flow)
    assert client.get(f"/api/v1/institutions/{SCHOOL}/results", headers=school).status_code == 200
    sql, query = TAMPERING[case]
    if sql:
        _tamper(app, sql)
    else:
        _swap_identities(app)
    _refused(client.get(f"/api/v1/institutions/{SCHOOL}/results", headers=school))
    _refused(client.get(f"/api/v1/institutions/{SCHOOL}/results.csv", headers=school))
    if query:
        url = f"/api/v1/admission/results?{query.format(code=code)}"
        _refused(client.get(url, headers=platform))
    alarms = app.extensions["ledger"].integrity_alarms
    assert alarms and all(alarm["problems"] for alarm in alarms)


def _certify(flow: Flow, candidate: str, wrong: int = 0) -> tuple[str, list[str]]:
    """The candidate through a new session: (session, codes published)."""
    session = flow.session()["id"]
    flow.enrol(session, candidate)
    course = flow.start(session, candidate)
    flow.answer_all(course, wrong=len(course["challenges"]) if wrong < 0 else wrong)
    flow.finalize(session)
    return session, flow.publish(session)


def test_two_certificates_each_asked_one_and_each_session_its_own(flow: Flow, client: Any) -> None:
    pupil = _pupil(flow, SCHOOL, "INE00000009Z")
    first, (one,) = _certify(flow, pupil)
    second, (two,) = _certify(flow, pupil)
    platform = _admission(flow)
    for code in (one, two):
        found = client.get(f"/api/v1/admission/results?code={code}", headers=platform)
        (result,) = _verified(client, found.get_json())["results"]
        assert result["code"] == code
    for session, code in ((first, one), (second, two)):
        csv_url = f"/api/v1/sessions/{session}/results.csv"
        (row,) = _csv_rows(client.get(csv_url, headers=flow.staff))
        assert row["code"] == code and row["status"] == "valid"
    school = _school_token(flow, SCHOOL)
    records = client.get(f"/api/v1/institutions/{SCHOOL}/results", headers=school)
    (latest,) = _verified(client, records.get_json())["pupils"]
    assert latest["code"] == two


def test_a_published_result_without_certificate_is_not_certified(flow: Flow, client: Any) -> None:
    pupil = _pupil(flow, SCHOOL, "INE00000008Y")
    session, codes = _certify(flow, pupil, wrong=-1)
    assert codes == []
    school = _school_token(flow, SCHOOL)
    records = client.get(f"/api/v1/institutions/{SCHOOL}/results", headers=school)
    (record,) = _verified(client, records.get_json())["pupils"]
    assert (record["status"], record["pix_score"], record["domains"]) == (
        "not-certified",
        None,
        None,
    )
    (row,) = _csv_rows(client.get(f"/api/v1/sessions/{session}/results.csv", headers=flow.staff))
    assert row["status"] == "not-certified" and row["pix_score"] == row["level_1.1"] == ""


def test_a_cancelled_certificate_shows_no_levels(flow: Flow, client: Any) -> None:
    session, code, ine = _published(flow)
    flow.post(
        f"/api/v1/certificates/{code}/cancellation",
        {"reason": "Fraude constatée", "category": "fraud"},
        flow.admin,
    )
    found = client.get(f"/api/v1/admission/results?ine={ine}", headers=_admission(flow))
    (result,) = _verified(client, found.get_json())["results"]
    assert (result["status"], result["code"]) == ("cancelled", code)
    assert (result["pix_score"], result["domains"]) == (None, None)
    (row,) = _csv_rows(client.get(f"/api/v1/sessions/{session}/results.csv", headers=flow.staff))
    assert row["status"] == "cancelled" and row["pix_score"] == row["level_2.1"] == ""


def test_a_class_is_the_school_pupils_of_one_audience(flow: Flow, client: Any) -> None:
    _published(flow)
    register(
        flow.client, flow.platform, school=SCHOOL, audience="upper-secondary", first_name="Léa"
    )
    school = _school_token(flow, SCHOOL)
    url = f"/api/v1/institutions/{SCHOOL}/results"
    (row,) = _csv_rows(client.get(f"{url}.csv?audience=upper-secondary", headers=school))
    assert (row["first_name"], row["status"]) == ("Léa", "pending")
    signed = client.get(f"{url}?audience=adult", headers=school).get_json()
    document = _verified(client, signed)
    assert len(document["pupils"]) == 2 and document["audience"] == "adult"
    assert {p["audience"] for p in document["pupils"]} == {"adult"}
    assert client.get(f"{url}.csv?audience=cm2", headers=school).status_code == 422
