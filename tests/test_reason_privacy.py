"""Free-text reasons are private: the public sees a neutral category, the holder and operator the text.

A cancellation or rescoring reason may name the holder or describe misconduct.
Every public surface (the certificate JSON, the verify page, the history with
its proofs) carries only the category; the same JSON and page, asked with the
holder's own token or an `admin` token, carry the text and say whom they were
built for.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.certification_flow import Flow
from tests.conftest import make_token
from tests.test_api_positioning import assert_problem
from tests.test_institutions import SCHOOL, _pupil, _school_token

RESCORING = "Question faussée pour Zéphyrine (réclamation 4242)"
CANCELLATION = "Zéphyrine a copié sur son voisin (PV 77)"
SECRETS = (RESCORING, CANCELLATION, "Zéphyrine")


@pytest.fixture
def flow(app, client, admin) -> Flow:
    return Flow(app, client, admin)


@pytest.fixture
def cancelled(flow: Flow) -> dict[str, Any]:
    return _story(flow)


def _story(flow: Flow) -> dict[str, Any]:
    """A pupil's certificate rescored, then cancelled for fraud, each with a free-text reason."""
    candidate = _pupil(flow, SCHOOL, "INE00000042Z")
    session = flow.session()["id"]
    flow.enrol(session, candidate)
    course = flow.start(session, candidate)
    flow.answer_all(course, wrong=1)
    flow.finalize(session)
    (code,) = flow.publish(session)
    wrong = [course["challenges"][0]["challenge"]]
    flow.post(
        f"/api/v1/certificates/{code}/rescoring",
        {"neutralize": wrong, "reason": RESCORING},
        flow.admin,
    )
    flow.post(
        f"/api/v1/certificates/{code}/cancellation",
        {"reason": CANCELLATION, "category": "fraud"},
        flow.admin,
    )
    return {"candidate": candidate, "code": code}


def _holder(flow: Flow, candidate: str) -> dict[str, str]:
    token = flow.post(f"/api/v1/candidates/{candidate}/tokens", {}, flow.platform)["token"]
    return {"Authorization": f"Bearer {token}"}


def _json(flow: Flow, code: str, headers: dict[str, str] | None = None) -> tuple[dict, str]:
    response = flow.client.get(f"/api/v1/certificates/{code}", headers=headers or {})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert "Authorization" in response.headers.get("Vary", "")
    return response.get_json(), response.get_data(as_text=True)


def _assert_public(body: dict[str, Any], text: str) -> None:
    assert body["audience"] == "public" and body["status"] == "cancelled"
    for secret in (RESCORING, CANCELLATION):
        assert secret not in text and secret.encode("unicode_escape").decode() not in text
    assert body["status_reason"] is None and body["status_category"] == "issuer-decision"
    assert all("reason" not in entry for entry in body["history"])
    assert '"fraud"' not in text  # the signed category accuses an identifiable person
    categories = [(h["event"], h.get("category")) for h in body["history"]]
    assert categories == [("issued", None), ("rescored", "late-issue-report"),
                          ("cancelled", "issuer-decision")]  # fmt: skip


def _assert_private(body: dict[str, Any], audience: str) -> None:
    assert body["audience"] == audience and body["status_category"] == "fraud"
    assert body["status_reason"] == CANCELLATION and not body["status_reason_erased"]
    assert [h.get("reason") for h in body["history"]] == [None, RESCORING, CANCELLATION]
    assert [h.get("category") for h in body["history"]] == [None, "late-issue-report", "fraud"]


def test_the_public_json_gives_categories_never_the_text(flow: Flow, cancelled: dict) -> None:
    code = cancelled["code"]
    _assert_public(*_json(flow, code))
    history = flow.client.get(f"/api/v1/certificates/{code}/history").get_data(as_text=True)
    assert not any(secret in history for secret in SECRETS[:2])


def test_holder_and_operator_read_the_text_others_the_public_view(
    flow: Flow, cancelled: dict, app
) -> None:
    code = cancelled["code"]
    _assert_public(*_json(flow, code))  # cached first: the cache must not serve it to others
    _assert_private(_json(flow, code, flow.admin)[0], "operator")
    _assert_private(_json(flow, code, _holder(flow, cancelled["candidate"]))[0], "holder")
    _assert_public(*_json(flow, code))  # and the private answers are not served to the public
    someone_else = _holder(flow, flow.eligible_candidate())
    for headers in (someone_else, flow.platform, make_token(app, "audit:read")):
        _assert_public(*_json(flow, code, headers))


def test_a_bad_token_is_refused_not_downgraded(flow: Flow, cancelled: dict) -> None:
    response = flow.client.get(
        f"/api/v1/certificates/{cancelled['code']}", headers={"Authorization": "Bearer nope"}
    )
    assert_problem(response, 401, "invalid-token")


def test_the_verify_page_follows_the_same_rule(flow: Flow, cancelled: dict) -> None:
    code = cancelled["code"]
    holder = _holder(flow, cancelled["candidate"])
    words = {
        "fr": ("décision de l&#39;émetteur", "fraude avérée"),
        "en": ("decision of the issuer", "confirmed fraud"),
    }
    for lang, (neutral, detailed) in words.items():
        public = flow.client.get(f"/v/{code}?lang={lang}").get_data(as_text=True)
        assert neutral in public and detailed not in public
        assert RESCORING not in public and CANCELLATION not in public
        for headers in (flow.admin, holder):
            private = flow.client.get(f"/v/{code}?lang={lang}", headers=headers)
            assert detailed in private.get_data(as_text=True)
            assert RESCORING in private.get_data(as_text=True)
            assert CANCELLATION in private.get_data(as_text=True)
        again = flow.client.get(f"/v/{code}?lang={lang}").get_data(as_text=True)
        assert CANCELLATION not in again and RESCORING not in again and detailed not in again


def test_an_erased_reason_stays_null_for_everybody(flow: Flow, cancelled: dict) -> None:
    code, candidate = cancelled["code"], cancelled["candidate"]
    profile = flow.client.get(f"/api/v1/candidates/{candidate}/profile", headers=flow.platform)
    subject = profile.get_json()["subject"]
    flow.post(f"/api/v1/subjects/{subject}/erasure", {"reason": "data-subject-request"}, flow.admin)
    operator, text = _json(flow, code, flow.admin)
    assert operator["audience"] == "operator" and operator["status_category"] == "fraud"
    assert operator["status_reason"] is None and operator["status_reason_erased"]
    assert [(h["reason"], h["reason_erased"]) for h in operator["history"][1:]] == [
        (None, True), (None, True)
    ]  # fmt: skip
    assert not any(secret in text for secret in SECRETS)
    public, text = _json(flow, code)
    assert public["status_reason"] is None and public["status_category"] == "issuer-decision"
    assert not any(secret in text for secret in SECRETS)


def test_the_openapi_says_who_reads_what(client) -> None:
    spec = client.get("/api/v1/openapi.json").get_json()
    operation = spec["paths"]["/api/v1/certificates/{code}"]["get"]
    assert "Public: no token needed." in operation["description"]
    assert "`candidate:<id>`" in operation["description"] and "admin" in operation["description"]
    props = spec["components"]["schemas"]["PublicCertificateOut"]["properties"]
    assert props["audience"]["enum"] == ["public", "holder", "operator"]
    assert {"fraud", "issuer-decision"} <= set(props["status_category"]["enum"])


def test_institutions_and_webhooks_get_no_text(flow: Flow, app, client) -> None:
    """A school or an admission platform is not the holder: status and category at most."""
    school = _school_token(flow, SCHOOL)
    hook = {"url": "https://school.example/hooks/pix"}
    app.extensions["ledger"].webhooks.resolver = lambda host, port: ["93.184.215.14"]  # public
    flow.post(f"/api/v1/institutions/{SCHOOL}/webhooks", hook, school)
    sent: list[bytes] = []
    app.extensions["ledger"].webhooks.poster = lambda url, body, headers: sent.append(body) or 200
    code = _story(flow)["code"]  # after the hook exists: it hears every event
    client.post("/api/v1/webhooks/deliveries", headers=flow.admin)
    admission = flow.post("/api/v1/admission/tokens", {}, flow.admin)["token"]
    answers = [
        client.get(f"/api/v1/institutions/{SCHOOL}/results", headers=school),
        client.get(f"/api/v1/institutions/{SCHOOL}/results.csv", headers=school),
        client.get(f"/api/v1/institutions/{SCHOOL}/webhooks/deliveries", headers=school),
        client.get(
            f"/api/v1/admission/results?code={code}",
            headers={"Authorization": f"Bearer {admission}"},
        ),
    ]
    assert len(sent) == 3  # publication, rescoring, cancellation
    for response in answers:
        assert response.status_code == 200, response.get_data(as_text=True)
    texts = [r.get_data(as_text=True) for r in answers] + [b.decode() for b in sent]
    assert "cancelled" in texts[0]
    for secret in (RESCORING, CANCELLATION):
        assert not any(secret in text for text in texts)


def test_only_the_operator_reads_a_candidates_reasons(flow: Flow, app, cancelled: dict) -> None:
    """A candidate's certification history: the platform and an auditor read categories only."""
    url = f"/api/v1/candidates/{cancelled['candidate']}/certifications"
    for headers in (make_token(app, "audit:read"), flow.platform):
        seen = flow.client.get(url, headers=headers)
        assert seen.status_code == 200, seen.get_json()
        (cert,) = seen.get_json()["certificates"]
        _assert_public(cert, seen.get_data(as_text=True))
    (operator,) = flow.client.get(url, headers=flow.admin).get_json()["certificates"]
    _assert_private(operator, "operator")


NEUTRALIZED = "Zéphyrine semblait lire ses notes pendant cette question"


def test_centre_staff_read_their_report_not_the_operators_reasons(flow: Flow) -> None:
    """The examiner report is the centre's own text; an operator's neutralization reason is not."""
    candidate, session, course = flow.started()
    flow.answer_all(course)
    described = "Écran figé pendant la question 3"
    flow.finalize(session, {"issue_reports": [
        {"candidate": candidate, "category": "other", "description": described}]})  # fmt: skip
    flow.post(f"/api/v1/sessions/{session}/review", {}, flow.admin)
    challenge = course["challenges"][0]["challenge"]
    body = {"challenge": challenge, "reason": NEUTRALIZED}
    flow.post(f"/api/v1/courses/{course['id']}/neutralizations", body, flow.admin)
    for headers in (flow.staff, flow.platform, flow.admin):
        seen = flow.client.get(f"/api/v1/courses/{course['id']}", headers=headers)
        (entry,) = seen.get_json()["scoring"]["neutralizations"]
        assert entry["source"] == "operator" and entry["challenge"] == challenge
        assert (entry.get("reason") == NEUTRALIZED) == (headers is flow.admin)
    staff = flow.client.get(f"/api/v1/sessions/{session}", headers=flow.staff).get_json()
    text = json.dumps(staff, ensure_ascii=False)
    assert described in text and NEUTRALIZED not in text
    (result,) = staff["results"]
    assert [n["source"] for n in result["scoring"]["neutralizations"]] == ["operator"]
    operator = flow.client.get(f"/api/v1/sessions/{session}", headers=flow.admin).get_json()
    assert NEUTRALIZED in json.dumps(operator, ensure_ascii=False)
