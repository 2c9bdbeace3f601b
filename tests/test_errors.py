"""Every error is a clear error: whatever a client sends, the answer is problem+json and 4xx.

Malformed bodies on every POST endpoint, out-of-range query integers, bodies
over the cap with or without Content-Length, wrong media types, unknown routes
and methods; concurrent writes through the aggregate cache; oversize headers
against a real `ledger serve`.
"""

from __future__ import annotations

import http.client
import io
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from eventsourcing.domain import event
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from ledger.api.attestation_check import PATH as PDF_CHECK_PATH
from ledger.config import Config
from ledger.domain.base import LedgerAggregate
from ledger.store.application import Ledger
from ledger.store.recorder import ConcurrencyConflict
from tests.helpers import event_count
from tests.served import free_port, serve

PROBLEM = "application/problem+json"

MALFORMED = {
    "syntax": b'{"name": ',
    "not-utf-8": b'{"name": "\xff\xfe"}',
    "deep-nesting": b"[" * 10_000 + b"]" * 10_000,
    "5000-digit-integer": b'{"time_spent_ms": ' + b"7" * 5_000 + b"}",
    "bare-5000-digit-integer": b"9" * 5_000,
    "duplicate-key": b'{"reason": "a", "reason": "b"}',
    "two-documents": b"{} {}",
    "nan": b'{"reason": NaN}',
    "infinity": b'{"reason": -Infinity}',
    "overflowing-float": b'{"time_spent_ms": 1e999}',
}


def _post_endpoints(app: Any) -> list[str]:
    """Every POST route of the API taking JSON, with placeholder path parameters.

    The attestation check takes a PDF: tests/test_attestation_check.py covers its bodies.
    """
    urls = []
    for rule in app.url_map.iter_rules():
        if rule.rule == PDF_CHECK_PATH:
            continue
        if rule.rule.startswith("/api/") and "POST" in rule.methods:
            values = {
                name: "P-23467899" if name == "code" else str(uuid.uuid4())
                for name in rule.arguments
            }
            urls.append(app.url_map.bind("localhost").build(rule.endpoint, values))
    return urls


def _assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)[:300]
    assert response.mimetype == PROBLEM
    body = response.get_json()
    assert body["status"] == status and body["type"].startswith("/problems/")
    return body


def test_malformed_json_is_400_on_every_post_endpoint_and_writes_nothing(
    app: Any, client: Any, admin: dict[str, str]
) -> None:
    endpoints = _post_endpoints(app)
    assert len(endpoints) >= 14
    before = event_count(client, admin)
    for url in endpoints:
        for name, body in MALFORMED.items():
            response = client.post(
                url, data=body, headers={**admin, "Content-Type": "application/json"}
            )
            problem = _assert_problem(response, 400)
            assert problem["type"] == "/problems/malformed-json", (url, name)
    assert event_count(client, admin) == before


def test_a_body_that_is_not_json_is_415(app: Any, client: Any, admin: dict[str, str]) -> None:
    for url in _post_endpoints(app):
        for media_type in ("text/plain", "application/x-www-form-urlencoded", "application/xml"):
            response = client.post(
                url, data=b'{"reason": "x"}', headers={**admin, "Content-Type": media_type}
            )
            _assert_problem(response, 415)


def test_a_body_that_is_not_a_json_object_is_400(
    app: Any, client: Any, admin: dict[str, str]
) -> None:
    for url in _post_endpoints(app):
        for body in (b"[]", b"[{}]", b"null", b"42", b'"text"', b"true"):
            response = client.post(
                url, data=body, headers={**admin, "Content-Type": "application/json"}
            )
            assert _assert_problem(response, 400)["type"] == "/problems/malformed-json"


def test_empty_json_body_where_one_is_required_is_422(client: Any, admin: dict[str, str]) -> None:
    response = client.post(
        "/api/v1/centres", data=b"", headers={**admin, "Content-Type": "application/json"}
    )
    _assert_problem(response, 422)


@pytest.mark.parametrize(
    "query",
    [
        f"after={2**70}",
        f"after={2**53}",
        "after=-1",
        "after=1e3",
        "after=" + "9" * 5_000,
        "limit=0",
        f"limit={2**64}",
        "after=%00",
        "after=١٢",  # Arabic-Indic digits
    ],
)
def test_out_of_range_query_integers_are_422(
    client: Any, auditor: dict[str, str], query: str
) -> None:
    _assert_problem(client.get(f"/api/v1/events?{query}", headers=auditor), 422)


def test_out_of_range_proof_parameters_are_422(client: Any) -> None:
    big = 2**70
    for url in (
        f"/api/v1/log/proof/inclusion?seq={big}&size={big}",
        f"/api/v1/log/proof/inclusion?seq=1&size={2**53}",
        f"/api/v1/log/proof/consistency?from=1&to={big}",
        "/api/v1/log/proof/consistency?from=-5&to=1",
    ):
        _assert_problem(client.get(url), 422)


def test_the_largest_sequence_number_is_an_ordinary_answer(
    client: Any, auditor: dict[str, str]
) -> None:
    response = client.get(f"/api/v1/events?after={2**53 - 1}", headers=auditor)
    assert response.status_code == 200
    assert response.get_data() == b""


def test_a_body_over_the_cap_is_413_with_or_without_content_length(
    app: Any, client: Any, admin: dict[str, str]
) -> None:
    cap = app.extensions["ledger"].config.max_body_bytes
    body = b'{"reason": "' + b"x" * cap + b'"}'
    headers = {**admin, "Content-Type": "application/json"}
    _assert_problem(client.post("/api/v1/centres", data=body, headers=headers), 413)
    environ = EnvironBuilder(
        path="/api/v1/centres",
        method="POST",
        input_stream=io.BytesIO(body),
        headers={**headers, "Transfer-Encoding": "chunked"},
    ).get_environ()
    del environ["CONTENT_LENGTH"]  # as a server passes a chunked body on
    environ["wsgi.input_terminated"] = True
    chunked = client.open(Request(environ))
    assert chunked.request.content_length is None
    _assert_problem(chunked, 413)


def test_unknown_routes_and_methods_are_problems(client: Any, admin: dict[str, str]) -> None:
    _assert_problem(client.get("/api/v1/nothing-here", headers=admin), 404)
    response = client.delete("/api/v1/centres", headers=admin)
    _assert_problem(response, 405)
    assert "POST" in response.headers["Allow"]
    _assert_problem(client.put("/api/v1/events", headers=admin), 405)


# --- the aggregate cache under concurrent writes ----------------------------------


class Tally(LedgerAggregate):
    """An aggregate whose state is a dict that grows with every event."""

    TYPE = "test.Tally"

    class Opened(LedgerAggregate.Created):
        TYPE = "test.TallyOpened"

    @event(Opened)
    def __init__(self) -> None:
        self.marks: dict[str, int] = {}

    class Marked(LedgerAggregate.Event):
        TYPE = "test.TallyMarked"
        key: str

    @event(Marked)
    def mark(self, key: str) -> None:
        self.marks[key] = len(self.marks)


def test_concurrent_writes_and_reads_of_one_cached_aggregate_never_fail(ledger: Ledger) -> None:
    tally = Tally()
    for start in range(0, 3_000, 500):
        for i in range(start, start + 500):
            tally.mark(key=f"seed-{i}")
        ledger.save(tally)
    errors: list[BaseException] = []
    stop = time.monotonic() + 4

    def write(worker: int) -> None:
        n = 0
        while time.monotonic() < stop:
            try:
                current = ledger.app.repository.get(tally.id)
                current.mark(key=f"w{worker}-{n}")
                ledger.save(current)
                n += 1
            except ConcurrencyConflict:
                continue
            except BaseException as error:
                errors.append(error)
                return

    def read() -> None:
        while time.monotonic() < stop:
            try:
                ledger.app.repository.get(tally.id)
            except BaseException as error:
                errors.append(error)
                return

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: mid-copy
    try:
        threads = [threading.Thread(target=write, args=(w,)) for w in range(3)]
        threads += [threading.Thread(target=read) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert errors == [], errors[:3]
    final = ledger.app.repository.get(tally.id)
    assert len(final.marks) == final.version - 1 >= 3_000


# --- a real `ledger serve`: limits gunicorn enforces before the app ---------------


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, str]]:
    tmp = tmp_path_factory.mktemp("served")
    url = f"sqlite:///{tmp / 'ledger.db'}"
    ledger = Ledger(Config.from_env(database_url=url, keys_dir=tmp / "keys", master_key=""))
    ledger.init()
    ledger.close()
    port = free_port()
    with serve(url, tmp / "keys", port=port, timeout=60, stop_timeout=30):
        yield port, url


def _raw(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are; return status, headers and body of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, dict(response.getheaders()), response.read()


@pytest.mark.parametrize(
    ("name", "request_bytes", "status"),
    [
        (
            "one-oversize-header",
            b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n",
            431,
        ),
        (
            "too-many-headers",
            b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n"
            + b"".join(b"X-H%d: v\r\n" % i for i in range(200))
            + b"\r\n",
            431,
        ),
        (
            "oversize-request-line",
            b"GET /api/v1/health?" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
            414,
        ),
        ("garbage-request-line", b"HELLO\r\n\r\n", 400),
    ],
)
def test_gunicorn_refusals_are_problem_json(
    served: tuple[int, str], name: str, request_bytes: bytes, status: int
) -> None:
    port, _ = served
    got, headers, body = _raw(port, request_bytes)
    assert got == status, (name, body[:200])
    assert headers["Content-Type"] == PROBLEM, name
    import json

    problem = json.loads(body)
    assert problem["status"] == status and problem["type"].startswith("/problems/")


def test_a_chunked_body_over_the_cap_is_413_from_the_server(served: tuple[int, str]) -> None:
    port, _ = served
    cap = Config.from_env().max_body_bytes
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    chunk = b"x" * 65_536

    def chunks() -> Iterator[bytes]:
        sent = 0
        while sent <= cap:
            sent += len(chunk)
            yield chunk

    connection.request(
        "POST",
        "/api/v1/centres",
        body=chunks(),
        headers={"Content-Type": "application/json", "Authorization": "Bearer x"},
        encode_chunked=True,
    )
    response = connection.getresponse()
    assert response.status == 413
    assert response.getheader("Content-Type") == PROBLEM


def test_every_operation_documents_every_problem_as_problem_json(client: Any) -> None:
    from ledger.api.openapi import PROBLEM_STATUSES

    spec = client.get("/api/v1/openapi.json").get_json()
    responses = spec["components"]["responses"]
    assert spec["components"]["schemas"]["Problem"]["required"] == ["type", "title", "status"]
    operations = [
        (path, method, operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method in {"get", "post", "put", "patch", "delete"}
    ]
    assert len(operations) >= 28
    for path, method, operation in operations:
        documented = operation["responses"]
        assert any(code.startswith("2") for code in documented), (method, path)
        for status in (*PROBLEM_STATUSES, "default"):
            name = documented[str(status)]["$ref"].rsplit("/", 1)[1]
            assert list(responses[name]["content"]) == [PROBLEM], (method, path, status)
    assert client.get("/api/v1/docs").status_code == 200
