"""The OpenAPI examples agree with what the API really answers.

A platform integrates from the docs alone, so each documented request example
is sent (its placeholder ids swapped for real ones) through a real lifecycle,
and each real answer must have the documented example's shape (status, keys,
JSON types; values differ) and pass the documented schema. Every scoped
operation asked without a token answers a valid problem+json.
"""

from __future__ import annotations

import copy
import re
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema_rs
import pytest

from ledger.api import examples as ex
from ledger.api.problems import PROBLEM_JSON
from ledger.domain import clock
from ledger.services.verification import PublicViews
from tests.certification_flow import MORNING, SESSION_DAY, Flow
from tests.conftest import make_token
from tests.helpers import climb, register

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
METHODS = ("get", "post", "put", "patch", "delete")
SCHOOL = "0350022K"
PUBLISHED = datetime(2026, 12, 1, 10, tzinfo=UTC)
LEVELS = {"1.1": 2, "1.2": 2, "2.1": 3, "3.1": 1, "4.1": 2, "5.1": 1}


@pytest.fixture
def database_url(tmp_path: Any) -> str:
    """Shapes do not depend on the backend: SQLite keeps this walk quick."""
    return f"sqlite:///{tmp_path / 'ledger.db'}"


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return {dict: "object", list: "array", str: "string"}.get(type(value), repr(type(value)))


def shape_errors(example: Any, real: Any, where: str = "$") -> list[str]:
    """Where `real` differs from `example` in keys or JSON types (null matches anything)."""
    if example is None or real is None:
        return []
    if _kind(example) != _kind(real):
        return [f"{where}: example is {_kind(example)}, real is {_kind(real)}"]
    if isinstance(example, dict):
        if not example or not real or all(map(UUID.fullmatch, example)):
            return _map_errors(example, real, where)
        if set(example) != set(real):
            missing, extra = set(real) - set(example), set(example) - set(real)
            return [f"{where}: example lacks {sorted(missing)}, has extra {sorted(extra)}"]
        return [
            e for key in example for e in shape_errors(example[key], real[key], f"{where}.{key}")
        ]
    if isinstance(example, list) and example and real:
        return shape_errors(example[0], real[0], f"{where}[0]")
    return []


def _map_errors(example: dict[str, Any], real: dict[str, Any], where: str) -> list[str]:
    """An object keyed by ids (or empty) is a map: its first values are compared."""
    if not example or not real:
        return []
    return shape_errors(next(iter(example.values())), next(iter(real.values())), f"{where}.*")


def _swap(value: Any, ids: dict[str, str]) -> Any:
    """The example with each placeholder id replaced by the real one."""
    if isinstance(value, dict):
        return {key: _swap(item, ids) for key, item in value.items()}
    if isinstance(value, list):
        return [_swap(item, ids) for item in value]
    return ids.get(value, value) if isinstance(value, str) else value


class Walk:
    """Calls operations by their documented template and checks each answer against the spec."""

    school: dict[str, str]  # tokens
    admission: dict[str, str]
    ine: str  # facts of the lifecycle, set as the walk goes
    session: str
    course: str
    code: str
    cancelled_course: str
    cancelled_challenge: str
    hook: str  # the school's webhook id

    def __init__(self, client: Any) -> None:
        self.client = client
        self.spec = client.get("/api/v1/openapi.json").get_json()
        self.ids: dict[str, str] = {}
        self.called: dict[tuple[str, str], str] = {}
        self.headers: dict[tuple[str, str], dict[str, str]] = {}
        self.errors: list[str] = []
        self.sent: set[tuple[str, str]] = set()  # operations called with their request example

    def operation(self, method: str, template: str) -> dict[str, Any]:
        return self.spec["paths"][template][method]

    def request_example(self, method: str, template: str, **changes: Any) -> Any:
        """The documented request example, with real ids and `changes` on top."""
        self.sent.add((method, template))
        content = self.operation(method, template)["requestBody"]["content"]
        example = copy.deepcopy(content["application/json"]["example"])
        return {**_swap(example, self.ids), **changes}

    def call(
        self,
        method: str,
        template: str,
        headers: dict[str, str] | None = None,
        body: Any = None,
        query: str = "",
        **params: str,
    ) -> Any:
        """Call the operation and check the answer; returns the response."""
        path = re.sub(r"{(\w+)}", lambda m: str(params[m.group(1)]), template)
        kwargs: dict[str, Any] = {"headers": headers or {}}
        if isinstance(body, bytes):
            kwargs.update(data=body, content_type="application/pdf")
        elif body is not None:
            kwargs["json"] = body
        response = getattr(self.client, method)(path + query, **kwargs)
        self.called[(method, template)] = path + query
        self.headers[(method, template)] = kwargs["headers"]
        self._check(method, template, response)
        return response

    def _check(self, method: str, template: str, response: Any) -> None:
        label = f"{method.upper()} {template}"
        documented = self.operation(method, template)["responses"]
        status = str(response.status_code)
        if not status.startswith("2") or status not in documented:
            self.errors.append(f"{label}: {status} not a documented success: {response.text}")
            return
        for media, entry in documented[status].get("content", {}).items():
            if response.mimetype != media:
                self.errors.append(f"{label}: answered {response.mimetype}, documented {media}")
            elif media.endswith("json"):
                self._check_json(label, entry, response.get_json())
            elif media == "text/csv" and _head(response.text) != _head(entry["example"]):
                self.errors.append(f"{label}: CSV columns {_head(response.text)}")

    def _check_json(self, label: str, entry: dict[str, Any], real: Any) -> None:
        if "example" in entry:
            self.errors += [f"{label}: {e}" for e in shape_errors(entry["example"], real)]
        if "schema" in entry:
            validator = self.validator(entry["schema"])
            for what, value in (("real", real), ("example", entry.get("example", real))):
                self.errors += [f"{label} {what}: {e}" for e in _invalid(validator, value)]

    def validator(self, schema: dict[str, Any]) -> Any:
        root = {**schema, "components": self.spec["components"]}
        return jsonschema_rs.Draft202012Validator(root)

    def check_problem(self, method: str, template: str, response: Any, status: int) -> None:
        label = f"{method.upper()} {template} ({status})"
        if response.status_code != status or response.mimetype != PROBLEM_JSON:
            self.errors.append(f"{label}: {response.status_code} {response.mimetype}")
            return
        schema = {"$ref": "#/components/schemas/Problem"}
        self.errors += [f"{label}: {e}" for e in _invalid(self.validator(schema), response.json)]
        if str(status) not in self.operation(method, template)["responses"]:
            self.errors.append(f"{label}: status not documented")


def _head(text: str) -> str:
    """A CSV's header line: its columns."""
    return text.split("\r\n", 1)[0]


def _invalid(validator: Any, value: Any) -> list[str]:
    return [f"{e.instance_path}: {e.message}" for e in validator.iter_errors(value)]


def _bearer(token: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {token['token']}"}


def _operations(spec: dict[str, Any]) -> set[tuple[str, str]]:
    return {(m, path) for path, item in spec["paths"].items() for m in METHODS if m in item}


def _json_requests(spec: dict[str, Any]) -> set[tuple[str, str]]:
    """Operations whose JSON request body has a documented example."""
    return {
        (method, path)
        for method, path in _operations(spec)
        if "example"
        in spec["paths"][path][method]
        .get("requestBody", {})
        .get("content", {})
        .get("application/json", {})
    }


def _pupil(flow: Flow, **identity: Any) -> str:
    """An eligible adult candidate registered as a pupil of SCHOOL."""
    candidate = register(flow.client, flow.platform, school=SCHOOL, audience="adult", **identity)
    answers = [a for code, level in LEVELS.items() for a in climb(candidate["id"], code, level)]
    flow.post("/api/v1/answers", {"answers": answers}, flow.platform)
    return candidate["id"]


def _platform_steps(w: Walk, flow: Flow) -> None:
    """Referential, centre, candidate, answers, profile: what a platform does first."""
    ref = w.call("get", "/api/v1/referential").get_json()
    w.call("get", "/api/v1/referential/{version}", version=ref["version"])
    admin = flow.admin
    centre = w.call("post", "/api/v1/centres", admin, w.request_example("post", "/api/v1/centres"))
    w.ids[ex.CENTRE] = centre.get_json()["id"]
    w.call("post", "/api/v1/centres/{centre_id}/tokens", admin,
           w.request_example("post", "/api/v1/centres/{centre_id}/tokens"),
           centre_id=flow.centre)  # fmt: skip
    body = w.request_example("post", "/api/v1/candidates")
    candidate = w.call("post", "/api/v1/candidates", flow.platform, body).get_json()
    w.ids.update({ex.CANDIDATE: candidate["id"], ex.SUBJECT: candidate["subject"]})
    w.call("post", "/api/v1/answers", flow.platform, w.request_example("post", "/api/v1/answers"))
    w.call("get", "/api/v1/candidates/{candidate_id}/profile", flow.platform,
           candidate_id=candidate["id"])  # fmt: skip
    w.call("post", "/api/v1/candidates/{candidate_id}/tokens", flow.platform,
           w.request_example("post", "/api/v1/candidates/{candidate_id}/tokens"),
           candidate_id=candidate["id"])  # fmt: skip


def _centre_steps(w: Walk, flow: Flow) -> None:
    """Institution tokens, a session from enrolment to publication, with a cancelled course."""
    school = _bearer(w.call("post", "/api/v1/institutions/{uai}/tokens", flow.admin,
                            w.request_example("post", "/api/v1/institutions/{uai}/tokens"),
                            uai=SCHOOL).get_json())  # fmt: skip
    w.admission = _bearer(w.call("post", "/api/v1/admission/tokens", flow.admin,
                                 w.request_example("post", "/api/v1/admission/tokens")).get_json())  # fmt: skip
    w.school = school
    w.hook = w.call("post", "/api/v1/institutions/{uai}/webhooks", school,
                    w.request_example("post", "/api/v1/institutions/{uai}/webhooks"),
                    uai=SCHOOL).get_json()["id"]  # fmt: skip
    w.call("get", "/api/v1/institutions/{uai}/webhooks", school, uai=SCHOOL)
    w.ine = "INE00000001A"
    certified, cancelled = _pupil(flow, external_id=w.ine), _pupil(flow, first_name="Zoé")
    template = "/api/v1/centres/{centre_id}/sessions"
    with clock.frozen_at(MORNING - timedelta(days=14)):
        body = w.request_example("post", template, date=SESSION_DAY)
        session = w.call("post", template, flow.staff, body, centre_id=flow.centre).get_json()["id"]
    w.session = session
    w.call("get", template, flow.staff, centre_id=flow.centre)
    w.call("post", "/api/v1/sessions/{session_id}/candidates", flow.staff,
           w.request_example("post", "/api/v1/sessions/{session_id}/candidates",
                             candidate=certified), session_id=session)  # fmt: skip
    flow.enrol(session, cancelled)
    with clock.frozen_at(MORNING):
        body = w.request_example("post", "/api/v1/sessions/{session_id}/courses",
                                 candidate=certified)  # fmt: skip
        course = w.call("post", "/api/v1/sessions/{session_id}/courses", flow.platform, body,
                        session_id=session).get_json()  # fmt: skip
    w.course = course["id"]
    w.call("get", "/api/v1/courses/{course_id}", flow.platform, course_id=course["id"])
    _answer_all(w, flow, course)
    _end_early(w, flow, flow.start(session, cancelled))
    w.ids.update({ex.CANDIDATE: cancelled, ex.CHALLENGE: w.cancelled_challenge})
    w.call("post", "/api/v1/sessions/{session_id}/finalization", flow.staff,
           w.request_example("post", "/api/v1/sessions/{session_id}/finalization"),
           session_id=session)  # fmt: skip
    w.call("get", "/api/v1/sessions/{session_id}", flow.staff, session_id=session)
    w.call("post", "/api/v1/sessions/{session_id}/review", flow.admin, session_id=session)
    w.ids.update({ex.CANDIDATE: certified, ex.CHALLENGE: course["challenges"][0]["challenge"]})
    for action in ("neutralizations", "deneutralizations"):
        template = f"/api/v1/courses/{{course_id}}/{action}"
        w.call("post", template, flow.admin, w.request_example("post", template),
               course_id=course["id"])  # fmt: skip
    w.call("post", "/api/v1/courses/{course_id}/decision", flow.admin,
           w.request_example("post", "/api/v1/courses/{course_id}/decision"),
           course_id=w.cancelled_course)  # fmt: skip
    with clock.frozen_at(PUBLISHED):
        published = w.call("post", "/api/v1/sessions/{session_id}/publication", flow.admin,
                           session_id=session).get_json()  # fmt: skip
    (w.code,) = published["codes"]


def _answer_all(w: Walk, flow: Flow, course: dict[str, Any]) -> None:
    """Answer every challenge; the completing answer goes through the documented example."""
    template = "/api/v1/courses/{course_id}/answers"
    *first, last = course["challenges"]
    with clock.frozen_at(MORNING.replace(minute=45)):
        for item in first:
            flow.post(template.format(course_id=course["id"]),
                      {"challenge": item["challenge"], "result": "ok", "time_spent_ms": 30_000},
                      flow.platform)  # fmt: skip
        body = w.request_example("post", template, challenge=last["challenge"])
        w.call("post", template, flow.platform, body, course_id=course["id"])


def _end_early(w: Walk, flow: Flow, course: dict[str, Any]) -> None:
    """The second candidate answers once and the platform ends the course."""
    w.cancelled_course = course["id"]
    w.cancelled_challenge = course["challenges"][0]["challenge"]
    with clock.frozen_at(MORNING.replace(minute=45)):
        flow.post(f"/api/v1/courses/{course['id']}/answers",
                  {"challenge": w.cancelled_challenge, "result": "ok",
                   "time_spent_ms": 30_000}, flow.platform)  # fmt: skip
        w.call("post", "/api/v1/courses/{course_id}/end", flow.platform,
               w.request_example("post", "/api/v1/courses/{course_id}/end"),
               course_id=course["id"])  # fmt: skip


def _public_steps(w: Walk, flow: Flow) -> None:
    """The certificate as verifiers, holders, schools and admission platforms read it."""
    code, session = w.code, w.session
    w.call("get", "/api/v1/candidates/{candidate_id}/certifications", flow.platform,
           candidate_id=w.ids[ex.CANDIDATE])  # fmt: skip
    for template in ("", "/history", "/qr.png", "/qr.svg"):
        w.call("get", f"/api/v1/certificates/{{code}}{template}", code=code)
    vc = w.call("get", "/api/v1/certificates/{code}/credential", flow.staff, code=code).get_json()
    number = vc["credentialStatus"]["statusListCredential"].rsplit("/", 1)[-1]
    w.call("get", "/api/v1/status/{number}", number=number)
    pdf = w.call("get", "/api/v1/certificates/{code}/attestation.pdf", flow.staff, code=code)
    w.call("post", "/api/v1/attestations/check", body=pdf.get_data())
    w.call("get", "/api/v1/sessions/{session_id}/attestations.zip", flow.staff,
           session_id=session)  # fmt: skip
    w.call("get", "/api/v1/sessions/{session_id}/results.csv", flow.staff, session_id=session)
    w.call("get", "/api/v1/institutions/{uai}/results", w.school, uai=SCHOOL)
    w.call("get", "/api/v1/institutions/{uai}/results.csv", w.school, uai=SCHOOL)
    w.call("get", "/api/v1/admission/results", w.admission, query=f"?ine={w.ine}")
    with clock.frozen_at(PUBLISHED.replace(hour=11)):
        w.call("post", "/api/v1/webhooks/deliveries", flow.admin)
    w.call("get", "/api/v1/institutions/{uai}/webhooks/deliveries", w.school, uai=SCHOOL)
    w.call("delete", "/api/v1/institutions/{uai}/webhooks/{webhook_id}", w.school, uai=SCHOOL,
           webhook_id=w.hook)  # fmt: skip


def _late_steps(w: Walk, flow: Flow) -> None:
    """After publication: a late report, a rules rescore, a cancellation, an erasure."""
    w.call("post", "/api/v1/certificates/{code}/rescoring", flow.admin,
           w.request_example("post", "/api/v1/certificates/{code}/rescoring"), code=w.code)  # fmt: skip
    w.call("post", "/api/v1/courses/{course_id}/rescoring", flow.admin,
           w.request_example("post", "/api/v1/courses/{course_id}/rescoring"),
           course_id=w.course)  # fmt: skip
    w.call("post", "/api/v1/certificates/{code}/cancellation", flow.admin,
           w.request_example("post", "/api/v1/certificates/{code}/cancellation"), code=w.code)  # fmt: skip
    w.call("post", "/api/v1/subjects/{subject}/erasure", flow.admin,
           w.request_example("post", "/api/v1/subjects/{subject}/erasure"),
           subject=w.ids[ex.SUBJECT])  # fmt: skip


def _log_steps(w: Walk, auditor: dict[str, str]) -> None:
    """The public log as auditors and monitors read it."""
    w.call("get", "/api/v1/events", auditor, query="?after=0")
    size = int(w.call("get", "/api/v1/log/checkpoint").get_data(as_text=True).split("\n")[1])
    w.call("get", "/tlog/checkpoint")
    w.call("get", "/api/v1/log/checkpoints")
    w.call("get", "/api/v1/log/proof/inclusion", query=f"?seq=1&size={size}")
    w.call("get", "/api/v1/log/proof/consistency", query=f"?from=1&to={size}")
    w.call("get", "/tlog/tile/{path}", path=f"0/000.p/{size}")
    w.call("get", "/api/v1/health")
    w.call("get", "/api/v1/ready")


def _problem_steps(w: Walk, admin: dict[str, str]) -> None:
    """Without a token every scoped operation answers a documented problem+json."""
    for (method, template), path in sorted(w.called.items()):
        if w.operation(method, template)["x-required-scopes"]:
            response = getattr(w.client, method)(path, json={} if method == "post" else None)
            w.check_problem(method, template, response, 401)
    unknown = w.client.get("/api/v1/certificates/P-AAAAAAAA")
    w.check_problem("get", "/api/v1/certificates/{code}", unknown, 404)
    invalid = w.client.post("/api/v1/centres", json={}, headers=admin)
    w.check_problem("post", "/api/v1/centres", invalid, 422)


def test_documented_examples_match_real_answers(app: Any, client: Any, admin: dict) -> None:
    flow = Flow(app, client, admin)
    w = Walk(client)
    hooks = app.extensions["ledger"].webhooks
    hooks.resolver = lambda host, port: ["93.184.215.14"]  # the example school's public host
    hooks.poster = lambda url, body, headers: 200
    try:
        _platform_steps(w, flow)
        _centre_steps(w, flow)
        _public_steps(w, flow)
        _late_steps(w, flow)
        _log_steps(w, make_token(app, "audit:read"))
        _problem_steps(w, admin)
        _min_seq_steps(w, app)
    except (KeyError, ValueError, TypeError) as exc:  # a step failed: say which answers were wrong
        raise AssertionError("\n".join(w.errors)) from exc
    assert not w.errors, "\n".join(w.errors)
    assert not _operations(w.spec) - set(w.called), sorted(_operations(w.spec) - set(w.called))
    assert not _json_requests(w.spec) - w.sent, sorted(_json_requests(w.spec) - w.sent)


def _min_seq_steps(w: Walk, app: Any) -> None:
    """Each read documented with `X-Min-Seq` waits for it, and only those: with the read models
    one event behind the log (runner mode, no runner), asking for the head answers 503
    `projections-behind` and asking for what is applied answers as before."""
    st = app.extensions["ledger"]
    st.config = replace(st.config, projections="runner", read_max_wait_ms=50)
    applied = st.fresh()
    register(w.client, make_token(app, "events:append"))  # one event the read models lack
    head = st.ledger.recorder.max_notification_id()
    for (method, template), path in sorted(w.called.items()):
        if method != "get":
            continue
        documented = "MinSeq" in str(w.operation(method, template).get("parameters", []))
        asks = {"behind": head, "applied": applied}
        time.sleep(PublicViews.FRESHNESS_S * 1.2)  # past the lookups' cached head
        answers = {
            name: w.client.get(
                path, headers={**w.headers[(method, template)], "X-Min-Seq": str(seq)}
            )
            for name, seq in asks.items()
        }
        behind = answers["behind"].status_code == 503 and (
            answers["behind"].get_json()["type"] == "/problems/projections-behind"
        )
        if documented and not (behind and answers["applied"].status_code != 503):
            w.errors.append(
                f"GET {template}: documents X-Min-Seq but does not wait for it"
                f" ({answers['behind'].status_code}, {answers['applied'].status_code})"
            )
        if behind and not documented:
            w.errors.append(f"GET {template}: waits for X-Min-Seq but does not document it")


def test_the_shape_check_names_what_differs() -> None:
    example = {"a": 1, "b": [{"c": "x"}], "d": None, "e": {ex.CANDIDATE: {"n": 1}}}
    same = {"a": 2, "b": [{"c": "y"}], "d": {"any": 1}, "e": {ex.COURSE: {"n": 3}}}
    assert shape_errors(example, same) == []
    assert shape_errors(example, {**same, "f": 1}) == ["$: example lacks ['f'], has extra []"]
    assert shape_errors(example, {**same, "a": "2"}) == ["$.a: example is number, real is string"]
    assert shape_errors(example, {**same, "b": [{"c": 1}]}) == [
        "$.b[0].c: example is string, real is number"
    ]
    assert shape_errors(example, {**same, "e": {ex.COURSE: {}}}) == []
