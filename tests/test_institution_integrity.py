"""Institution documents are built from verified events: a tampered read model is refused."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest

from tests.certification_flow import Flow
from tests.helpers import register
from tests.test_institutions import (
    OTHER,
    SCHOOL,
    _admission,
    _holder,
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


# --- omissions: the log, not the read model, says which rows exist ------------------


def _candidate(app: Any, ine: str) -> str:
    """The candidate registered with this INE (through the keyed-hash index)."""
    return _holder(app, ine)[0]


OMISSIONS = {
    # a certified pupil's certificate and course rows: both would read `pending`
    "certified": (
        "DELETE FROM proj_certificates; DELETE FROM proj_courses WHERE candidate = '{certified}'",
        "ine=INE00000001A",
    ),
    # the same, with the read models' recorded positions set back to hide it
    "positions": (
        "UPDATE projection_positions SET position = 0; DELETE FROM proj_certificates;"
        " DELETE FROM proj_courses WHERE candidate = '{certified}'",
        "ine=INE00000001A",
    ),
    # a pupil's registration row: the school list would lose them silently
    "pupil": ("DELETE FROM proj_candidates WHERE candidate = '{pending}'", CAMILLE),
}


@pytest.mark.parametrize("case", sorted(OMISSIONS))
def test_a_row_left_out_of_the_read_model_is_refused(
    flow: Flow, client: Any, app: Any, case: str
) -> None:
    _published(flow)
    names = {
        "certified": _candidate(app, "INE00000001A"),
        "pending": _candidate(app, "INE00000002B"),
    }
    school, platform = _school_token(flow, SCHOOL), _admission(flow)
    url = f"/api/v1/institutions/{SCHOOL}/results"
    assert client.get(url, headers=school).status_code == 200
    sql, query = OMISSIONS[case]
    for statement in sql.format(**names).split(";"):
        _tamper(app, statement)
    _refused(client.get(url, headers=school))
    _refused(client.get(f"{url}.csv", headers=school))
    _refused(client.get(f"/api/v1/admission/results?{query}", headers=platform))
    assert app.extensions["ledger"].integrity_alarms


def test_a_session_csv_missing_an_enrolled_pupil_is_refused(
    flow: Flow, client: Any, app: Any
) -> None:
    session, _, ine = _published(flow)
    csv_url = f"/api/v1/sessions/{session}/results.csv"
    assert len(_csv_rows(client.get(csv_url, headers=flow.staff))) == 1
    _tamper(app, "DELETE FROM proj_candidates WHERE candidate = ?", _candidate(app, ine))
    _refused(client.get(csv_url, headers=flow.staff))


def test_a_lost_newer_certificate_never_lets_the_cancelled_one_stand(
    flow: Flow, client: Any, app: Any
) -> None:
    pupil = _pupil(flow, SCHOOL, "INE00000007X")
    _, (one,) = _certify(flow, pupil)
    flow.post(
        f"/api/v1/certificates/{one}/cancellation",
        {"reason": "Fraude constatée", "category": "fraud"},
        flow.admin,
    )
    _, (two,) = _certify(flow, pupil)
    school, platform = _school_token(flow, SCHOOL), _admission(flow)
    url = f"/api/v1/institutions/{SCHOOL}/results"
    (record,) = _verified(client, client.get(url, headers=school).get_json())["pupils"]
    assert (record["code"], record["status"]) == (two, "valid")
    _tamper(app, "DELETE FROM proj_certificates WHERE code = ?", two)
    _refused(client.get(url, headers=school))
    _refused(client.get("/api/v1/admission/results?ine=INE00000007X", headers=platform))


# --- kept folds: tampered or rolled back, they only cost time -------------------------


def _rosters(app: Any) -> Any:
    return app.extensions["ledger"].institutions.rosters


def _upto(app: Any) -> int:
    """The read models brought up to the log, as a request does first; the seq they reached."""
    app.extensions["ledger"].fresh()
    return app.extensions["ledger"].institutions._bound()


def _fold_row(app: Any, scope: str) -> tuple[Any, ...] | None:
    with app.extensions["ledger"].ledger.db.read() as cur:
        cur.execute("SELECT seq, hash, state, mac FROM roster_folds WHERE scope = ?", (scope,))
        return cur.fetchone()


def test_a_kept_fold_bounds_the_events_read(
    flow: Flow, client: Any, app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("ledger.store.rosters.KEEP_EVERY", 1)
    _published(flow)
    first = _rosters(app).of_school(SCHOOL, _upto(app))
    assert first.read > 3 and len(first.pupils) == 2
    assert _fold_row(app, f"school:{SCHOOL}") is not None
    again = _rosters(app).of_school(SCHOOL, _upto(app))
    assert (again.read, again.pupils) == (0, first.pupils)
    register(flow.client, flow.platform, school=SCHOOL, audience="adult", first_name="Léa")
    later = _rosters(app).of_school(SCHOOL, _upto(app))
    assert later.read == 1 and len(later.pupils) == 3


def test_a_candidate_is_read_from_their_registration_on(
    flow: Flow, app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("ledger.store.rosters.KEEP_EVERY", 1)
    _published(flow)
    pupil = _pupil(flow, SCHOOL, "INE00000006W")
    ledger = app.extensions["ledger"].ledger
    with ledger.db.read() as cur:
        cur.execute(
            "SELECT seq, hash FROM ledger_events WHERE stream = ? AND version = 1", (pupil,)
        )
        registered = tuple(cur.fetchone())
    fresh = _rosters(app).of_candidate(pupil, _upto(app), registered)
    assert (fresh.read, fresh.pupils[pupil]) == (0, {"courses": [], "certificates": []})
    _, (code,) = _certify(flow, pupil)
    certified = _rosters(app).of_candidate(pupil, _upto(app), registered)
    assert certified.read == 2 and certified.pupils[pupil]["certificates"] == [code]
    kept = _rosters(app).of_candidate(pupil, _upto(app), registered)
    assert (kept.read, kept.pupils) == (0, certified.pupils)


def test_a_tampered_or_rolled_back_fold_is_rebuilt_and_the_answer_stays_right(
    flow: Flow, client: Any, app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("ledger.store.rosters.KEEP_EVERY", 1)
    _published(flow)
    school = _school_token(flow, SCHOOL)
    url = f"/api/v1/institutions/{SCHOOL}/results"
    assert client.get(url, headers=school).status_code == 200
    scope = f"school:{SCHOOL}"
    old = _fold_row(app, scope)
    register(flow.client, flow.platform, school=SCHOOL, audience="adult", first_name="Léa")
    assert len(_verified(client, client.get(url, headers=school).get_json())["pupils"]) == 3
    assert _fold_row(app, scope)[0] > old[0]
    # rolled back: the older fold, MAC and all, put back in place
    _tamper(app, "UPDATE roster_folds SET seq = ?, hash = ?, state = ?, mac = ? WHERE scope = ?",
            *old, scope)  # fmt: skip
    assert len(_verified(client, client.get(url, headers=school).get_json())["pupils"]) == 3
    # edited: a pupil dropped from the kept state, the MAC no longer verifies
    state = _fold_row(app, scope)[2]
    dropped = json.loads(state)
    dropped.pop(next(iter(dropped)))
    _tamper(app, "UPDATE roster_folds SET state = ? WHERE scope = ?", json.dumps(dropped), scope)
    assert len(_rosters(app).of_school(SCHOOL, _upto(app)).pupils) == 3
    # the log row it was made from does not match: refused too
    _tamper(app, "UPDATE roster_folds SET hash = ? WHERE scope = ?", "0" * 64, scope)
    assert len(_rosters(app).of_school(SCHOOL, _upto(app)).pupils) == 3
    # and with the fold edited, deleting a pupil's row is still caught
    _tamper(app, "UPDATE roster_folds SET state = ? WHERE scope = ?", json.dumps(dropped), scope)
    _tamper(app, "DELETE FROM proj_candidates WHERE candidate = ?", next(iter(json.loads(state))))
    _refused(client.get(url, headers=school))


# --- admission by code reads the code as the verify site does -------------------------


def test_admission_by_code_normalizes_it_and_refuses_a_malformed_one(
    flow: Flow, client: Any
) -> None:
    _, code, _ = _published(flow)
    platform = _admission(flow)
    loose = code.removeprefix("P-").lower()
    for text in (loose, f" p-{loose[:4]} {loose[4:]} ", code):
        found = client.get(f"/api/v1/admission/results?code={text}", headers=platform)
        (result,) = _verified(client, found.get_json())["results"]
        assert result["code"] == code
        assert found.get_json()["document"]["query"] == {"code": code}
    refused = client.get("/api/v1/admission/results?code=P-AAAA0000", headers=platform)
    assert refused.status_code == 422
    problem = refused.get_json()
    assert problem["type"].endswith("/validation-failed")
    assert "code" in json.dumps(problem["errors"]) and "2346789" in json.dumps(problem["errors"])
