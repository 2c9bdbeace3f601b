"""The OpenAPI document and the problem pages are enough to integrate without the source."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from ledger.api.examples import SCHEMA_EXAMPLES
from ledger.api.problem_types import PROBLEM_TYPES

METHODS = ("get", "post", "put", "patch", "delete")
SOURCE = Path(__file__).resolve().parent.parent / "ledger"
EMITTED = (
    re.compile(r'(?:ApiProblem|problem)\(\s*\d{3},\s*"([a-z0-9-]+)"'),  # API code
    re.compile(r'^\s+code = "([a-z0-9-]+)"', re.M),  # DomainError subclasses
    re.compile(r'\d{3}: \("([a-z0-9-]+)",'),  # gunicorn's refusals (server.py)
    re.compile(r'^\s+\d{3}: "([a-z0-9-]+)",$', re.M),  # problems.HTTP_CODES
)


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, item[method])
        for path, item in spec["paths"].items()
        for method in METHODS
        if method in item
    ]


def _emitted_codes() -> set[str]:
    """Every problem code a literal in the source can emit."""
    codes = {"http-error"}  # from_http's fallback for statuses without a slug
    for path in SOURCE.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for pattern in EMITTED:
            codes.update(pattern.findall(text))
    return codes


def test_every_operation_states_its_scope(client) -> None:
    spec = client.get("/api/v1/openapi.json").get_json()
    for method, path, op in _operations(spec):
        scopes = op.get("x-required-scopes")
        assert scopes is not None, f"{method} {path}"
        if scopes:
            assert op.get("security"), f"{method} {path}"
            assert "Requires a bearer token with scope" in op["description"], (method, path)
        else:
            assert "Public: no token needed." in op["description"], (method, path)


def test_scopes_come_from_the_require_decorator(client) -> None:
    spec = client.get("/api/v1/openapi.json").get_json()
    assert spec["paths"]["/api/v1/centres"]["post"]["x-required-scopes"] == ["admin"]
    course = spec["paths"]["/api/v1/sessions/{session_id}/courses"]["post"]
    assert course["x-required-scopes"] == ["events:append", "centre:<id>"]
    assert "`centre:<id>` (the centre's own)" in course["description"]


def test_family_scopes_read_as_a_token_holds_them(client) -> None:
    """`require` matches `institution:*`; no token holds that, a school's holds its own UAI."""
    spec = client.get("/api/v1/openapi.json").get_json()
    results = spec["paths"]["/api/v1/institutions/{uai}/results"]["get"]
    assert results["x-required-scopes"] == ["institution:<UAI>"]
    assert "`institution:<UAI>` (the school's own UAI)" in results["description"]
    text = json.dumps(spec)
    assert not any(f"{family}:*" in text for family in ("institution", "centre", "candidate"))
    docs = client.get("/api/v1/docs").get_data(as_text=True)
    assert "institution:&lt;UAI&gt;" in docs and "institution:*" not in docs


def test_the_source_emits_only_registered_problem_codes() -> None:
    unknown = _emitted_codes() - set(PROBLEM_TYPES)
    assert not unknown, f"add these to ledger/api/problem_types.py: {sorted(unknown)}"


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_every_problem_type_url_explains_itself(client, lang: str) -> None:
    for code in sorted(PROBLEM_TYPES):
        page = client.get(f"/problems/{code}", headers={"Accept-Language": lang})
        assert page.status_code == 200, code
        assert page.mimetype == "text/html"
        assert f'lang="{lang}"' in page.text and code in page.text
        body = client.get(f"/problems/{code}", headers={"Accept": "application/json"}).json
        assert body["type"] == f"/problems/{code}"
        assert body["meaning"] and body["fix"], code


def test_a_problem_body_links_to_its_explanation(client) -> None:
    problem = client.post("/api/v1/centres", json={})
    assert problem.status_code == 401
    page = client.get(problem.json["type"], headers={"Accept": "application/json"})
    assert page.status_code == 200 and "token" in page.json["meaning"]


def test_french_is_chosen_from_the_browser_and_unknown_codes_are_404(client) -> None:
    page = client.get("/problems/late-answer", headers={"Accept-Language": "fr-FR,fr;q=0.9"})
    assert "échéance" in page.text and page.headers["Content-Language"] == "fr"
    assert "Accept-Language" in page.headers["Vary"]
    assert client.get("/problems/late-answer?lang=en&format=json").json["lang"] == "en"
    missing = client.get("/problems/no-such-thing", headers={"Accept": "application/json"})
    assert missing.status_code == 404
    assert missing.mimetype == "application/problem+json"


def _schema(spec: dict[str, Any], name: str) -> dict[str, Any]:
    return spec["components"]["schemas"][name]


def test_closed_lists_are_enums_in_the_document(client) -> None:
    from ledger.domain.erasure import REASON_CODES
    from ledger.domain.profile import ANSWER_RESULTS
    from ledger.domain.session import ABORT_REASONS, ISSUE_CATEGORIES

    spec = client.get("/api/v1/openapi.json").get_json()
    props = {name: _schema(spec, name)["properties"] for name in spec["components"]["schemas"]}
    assert props["IssueReportIn"]["category"]["enum"] == list(ISSUE_CATEGORIES)
    assert props["AbortIn"]["reason"]["enum"] == list(ABORT_REASONS)
    assert props["AnswerIn"]["result"]["enum"] == list(ANSWER_RESULTS)
    assert props["CourseAnswerIn"]["result"]["enum"] == list(ANSWER_RESULTS)
    assert props["DecisionIn"]["decision"]["enum"] == ["fraud", "cancel"]
    assert props["ErasureIn"]["reason"]["enum"] == list(REASON_CODES)
    assert "adult" in props["CandidateIn"]["audience"]["enum"]
    assert props["CentreIn"]["kind"]["enum"] == ["school", "university", "organisation"]
    assert props["SessionOut"]["state"]["enum"][0] == "created"
    assert "integrity-failure" in props["PublicCertificateOut"]["status"]["enum"]


def test_validation_messages_name_the_field_and_the_format(client, admin) -> None:
    body = {"first_name": "A", "last_name": "B", "birth_date": "2007-02-30", "birth_place": "C"}
    problem = client.post("/api/v1/candidates", json=body, headers=admin).json
    assert problem["errors"] == {"birth_date": ["expected YYYY-MM-DD, a real calendar day"]}
    assert problem["detail"].endswith("see errors (birth_date)")
    answer = {
        "candidate": "nope", "answer_id": "a", "challenge": "c", "skill": "s",
        "competence": "1.1", "result": "ok", "time_spent_ms": "42",
        "answered_at": "2026-11-02 09:15",
    }  # fmt: skip
    errors = client.post("/api/v1/answers", json=answer, headers=admin).json["errors"]
    assert "expected a UUID" in errors["candidate"][0]
    assert "whole JSON number" in errors["time_spent_ms"][0]
    assert "YYYY-MM-DDTHH:MM:SS.ffffffZ" in errors["answered_at"][0]
    centre = client.post(
        "/api/v1/centres", json={"name": "N", "kind": "x", "city": "C"}, headers=admin
    ).json
    assert "school" in centre["errors"]["kind"][0]
    session = {"date": "2026-12-01", "time": "9h30", "address": "a", "room": "r", "examiner": "e"}
    errors = client.post(
        f"/api/v1/centres/{centre_id(client, admin)}/sessions", json=session, headers=admin
    ).json["errors"]
    assert errors["time"] == ["expected HH:MM, 24-hour, such as 09:30"]


def centre_id(client, admin) -> str:
    body = {"name": "Lycée", "kind": "school", "city": "Rennes"}
    return client.post("/api/v1/centres", json=body, headers=admin).json["id"]


def _has_example(content: dict[str, Any]) -> bool:
    from ledger.api.examples import BINARY

    return all(
        "example" in entry or "examples" in entry or media.startswith(BINARY)
        for media, entry in content.items()
    )


def test_every_operation_shows_a_request_and_a_response_example(client) -> None:
    spec = client.get("/api/v1/openapi.json").get_json()
    missing = []
    for method, path, op in _operations(spec):
        body = op.get("requestBody")
        if body and not _has_example(body["content"]):
            missing.append(f"{method} {path} request")
        success = [r for s, r in op["responses"].items() if s.startswith("2")]
        assert success, f"{method} {path} documents no success response"
        if not all(_has_example(r.get("content", {})) for r in success):
            missing.append(f"{method} {path} response")
    assert not missing, missing


@pytest.mark.parametrize("name", sorted(n for n in SCHEMA_EXAMPLES if n.endswith("In")))
def test_request_examples_are_accepted_by_their_schema(name: str) -> None:
    from ledger.api import schemas

    getattr(schemas, name)().load(SCHEMA_EXAMPLES[name])


def test_the_reference_page_shows_scopes_examples_and_problem_pages(client) -> None:
    page = client.get("/api/v1/docs").text
    assert "scope admin" in page and "— public" in page
    assert "Request example" in page and "Response example" in page
    assert "Camille" in page
    assert 'href="/problems/wrong-session-state"' in page
    assert "<code>X-Min-Seq</code></td><td>header</td>" in page  # a shared parameter, resolved


def test_the_document_is_written_whole_on_its_first_reads_even_concurrent(app) -> None:
    """Routes answer before the document is written; four first reads all get all of it."""
    from concurrent.futures import ThreadPoolExecutor

    assert app.test_client().get("/api/v1/health").status_code == 200
    with ThreadPoolExecutor(4) as pool:
        specs = list(pool.map(lambda _: app.test_client().get("/api/v1/openapi.json"), range(4)))
    bodies = {response.get_data() for response in specs}
    assert len(bodies) == 1
    spec = json.loads(bodies.pop())
    blueprints = app.extensions["flask-smorest"]["blp_name_to_api"]
    assert [tag["name"] for tag in spec["tags"]] == list(blueprints)  # each once, in order
    assert len(spec["paths"]) > 40
