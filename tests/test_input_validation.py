"""No input can poison the log: every string of every POST body, strict dates and times.

The string fields are enumerated from the OpenAPI document, so a field added
later is covered without touching this file.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import unicodedata
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from marshmallow import ValidationError, fields

from ledger.api.schemas import FREE_TEXT, StrictSchema
from ledger.domain import clock
from ledger.domain.payload import FREE_TEXT_FIELDS, InvalidInput, check_payload
from ledger.projections.runner import head
from tests.helpers import IDENTITY, answer, register

BAD_TEXT = {
    "nul": ("ab\x00cd", "NUL"),
    "lone surrogate": ("ab\ud800cd", "surrogate"),
    "control": ("ab\x07cd", "control"),
    "C1 control": ("ab\x85cd", "control"),
}
A_UUID = str(uuid.uuid4())


# --- the OpenAPI walk ----------------------------------------------------------------


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _bodies(spec: dict[str, Any], op: dict[str, Any]) -> list[dict[str, Any]]:
    content = op.get("requestBody", {}).get("content", {}).get("application/json")
    if not content:
        return []
    schema = content["schema"]
    return [_resolve(spec, s) for s in schema.get("oneOf", [schema])]


def _string_paths(spec: dict[str, Any], schema: dict[str, Any], prefix: tuple = ()) -> list:
    """Paths (tuples of keys and list indexes) of every string in a body of `schema`."""
    found = []
    for name, prop in schema.get("properties", {}).items():
        if prop.get("readOnly"):
            continue
        prop = _resolve(spec, prop)
        kind = prop.get("type")
        kinds = kind if isinstance(kind, list) else [kind]
        if "string" in kinds:
            found.append((*prefix, name))
        elif "array" in kinds:
            item = _resolve(spec, prop.get("items", {}))
            if item.get("type") == "string":
                found.append((*prefix, name, 0))
            elif item.get("properties"):
                found.extend(_string_paths(spec, item, (*prefix, name, 0)))
        elif prop.get("properties"):
            found.extend(_string_paths(spec, prop, (*prefix, name)))
    return found


def _set(body: dict[str, Any], path: tuple, value: str) -> dict[str, Any]:
    node: Any = body
    for key, nxt in itertools.pairwise(path):
        if isinstance(key, int):
            while len(node) <= key:
                node.append({} if isinstance(nxt, str) else "")
            node = node[key]
        else:
            node = node.setdefault(key, [] if isinstance(nxt, int) else {})
    last = path[-1]
    if isinstance(last, int):
        node.append(value)
    else:
        node[last] = value
    return body


def _string_cases(spec: dict[str, Any]) -> list[tuple[str, tuple]]:
    cases = []
    for url, item in spec["paths"].items():
        if "post" not in item:
            continue
        concrete = re.sub(r"\{code\}", "CRCN-XXXX", url)
        concrete = re.sub(r"\{[a-z_]+\}", A_UUID, concrete)
        for schema in _bodies(spec, item["post"]):
            cases.extend((concrete, path) for path in _string_paths(spec, schema))
    return cases


def test_every_post_string_field_refuses_nul_surrogate_and_controls(client, admin) -> None:
    spec = client.get("/api/v1/openapi.json").get_json()
    cases = _string_cases(spec)
    posts = {url for url, _ in cases}
    assert len(posts) >= 12, posts  # the walk does reach every endpoint with a body
    assert len(cases) >= 40, cases
    st = client.application.extensions["ledger"]
    before = head(st.ledger.db)
    for url, path in cases:
        for label, (text, word) in BAD_TEXT.items():
            raw = json.dumps(_set({}, path, text))  # ASCII escapes: "\ud800" stays lone
            response = client.post(
                url, data=raw, headers={**admin, "Content-Type": "application/json"}
            )
            problem = response.get_json()
            assert response.status_code == 422, (url, path, label, problem)
            assert response.mimetype == "application/problem+json"
            errors = json.dumps(problem.get("errors"))
            leaf = next(k for k in reversed(path) if isinstance(k, str))
            assert leaf in errors and word in errors, (url, path, label, problem)
    assert head(st.ledger.db) == before  # nothing written


class _Note(StrictSchema):
    title = fields.String()
    body = fields.String(metadata=FREE_TEXT)
    lines = fields.List(fields.String(metadata=FREE_TEXT))


def test_free_text_may_span_lines_names_may_not(client, admin) -> None:
    loaded = _Note().load({"title": "Note", "body": "one\r\ntwo\tthree", "lines": ["a\nb"]})
    assert loaded["body"] == "one\ntwo\tthree"  # CRLF from a form becomes LF
    assert loaded["lines"] == ["a\nb"]
    for bad in ({"title": "a\nb"}, {"body": "a\rb"}, {"body": "a\x0bb"}):
        with pytest.raises(ValidationError) as caught:
            _Note().load(bad)
        assert set(caught.value.messages) == set(bad)
    refused = client.post(
        "/api/v1/candidates", json={**IDENTITY, "birth_place": "Rennes\nBrest"}, headers=admin
    )
    assert refused.status_code == 422
    assert "birth_place" in refused.get_json()["errors"]
    spec = client.get("/api/v1/openapi.json").get_json()["components"]["schemas"]
    assert spec["FinalizationIn"]["properties"]["incidents"].get("x-free-text") is True


def _schemas(base: type) -> list[type]:
    found = [base]
    for sub in base.__subclasses__():
        found += _schemas(sub)
    return found


def test_the_api_marks_free_text_only_where_the_log_allows_it() -> None:
    """One rule: a field the API lets span lines must be one the domain check lets through."""
    marked = {
        name
        for schema in _schemas(StrictSchema)
        if schema.__module__.startswith("ledger.")  # not this file's own test schemas
        for name, field in schema._declared_fields.items()
        if field.metadata == FREE_TEXT or getattr(field, "inner", field).metadata == FREE_TEXT
    }
    assert marked and marked <= FREE_TEXT_FIELDS, marked - FREE_TEXT_FIELDS


def test_deeply_nested_values_are_422(client, admin) -> None:
    nested = "[" * 500 + "]" * 500
    raw = '{"name": "A", "kind": "school", "city": ' + nested + "}"
    response = client.post(
        "/api/v1/centres", data=raw, headers={**admin, "Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.get_json()
    assert "nested" in json.dumps(response.get_json()["errors"]["city"])


def test_strings_are_stored_in_nfc(client, admin) -> None:
    decomposed = unicodedata.normalize("NFD", "Lycée Émile Zola")
    assert decomposed != "Lycée Émile Zola"
    created = client.post(
        "/api/v1/centres",
        json={"name": decomposed, "kind": "school", "city": "Orléans"},
        headers=admin,
    )
    assert created.status_code == 201, created.get_json()
    st = client.application.extensions["ledger"]
    env = st.ledger.recorder.envelope(created.get_json()["seq"])
    assert env.data["name"] == "Lycée Émile Zola"


# --- dates and times ---------------------------------------------------------------

BAD_TIMES = [
    "2026-11-02T09:15:00.000000Z\n",  # `$` would accept it
    "2026-11-0\u0662T09:15:00.000000Z",  # an Arabic-Indic digit matches `\d`
    "2026-02-30T09:15:00.000000Z",  # no such day
    "2026-11-02T24:15:00.000000Z",
    "2026-11-02 09:15:00.000000Z",
    "2026-11-02T09:15:00Z",
]


@pytest.mark.parametrize("bad", BAD_TIMES)
def test_bad_answer_times_are_422(client, admin, bad) -> None:
    candidate = register(client, admin)["id"]
    st = client.application.extensions["ledger"]
    before = head(st.ledger.db)
    response = client.post(
        "/api/v1/answers", json={**answer(candidate), "answered_at": bad}, headers=admin
    )
    assert response.status_code == 422, response.get_json()
    assert "answered_at" in response.get_json()["errors"]
    assert head(st.ledger.db) == before


@pytest.mark.parametrize(
    "bad",
    ["9999-01-01", "2030-05-01", "1850-01-01", "2007-02-30", "2007-03-14\n", "2007-0\u0663-14"],
)
def test_implausible_birth_dates_are_422(client, admin, bad) -> None:
    response = client.post(
        "/api/v1/candidates", json={**IDENTITY, "birth_date": bad}, headers=admin
    )
    assert response.status_code == 422, response.get_json()
    assert "birth_date" in response.get_json()["errors"]


@pytest.mark.parametrize(
    ("day", "time"),
    [
        ("2026-11-09", "09:00"),  # the day before: in the past
        ("2030-01-01", "09:00"),  # absurdly far ahead
        ("2026-02-30", "09:00"),
        ("2026-11-2\u0664", "09:00"),
        ("2026-11-24", "09:00\n"),
        ("2026-11-24", "9:00"),
    ],
)
def test_sessions_need_a_real_date_ahead(client, admin, day, time) -> None:
    centre = client.post(
        "/api/v1/centres", json={"name": "Lycée", "kind": "school", "city": "Brest"}, headers=admin
    ).get_json()["id"]
    body = {"date": day, "time": time, "address": "1 rue", "room": "B1", "examiner": "M. Roy"}
    st = client.application.extensions["ledger"]
    before = head(st.ledger.db)
    with clock.frozen_at(datetime(2026, 11, 10, 8, 0, tzinfo=UTC)):
        refused = client.post(f"/api/v1/centres/{centre}/sessions", json=body, headers=admin)
        accepted = client.post(
            f"/api/v1/centres/{centre}/sessions",
            json={**body, "date": "2026-11-10", "time": "09:00"},
            headers=admin,
        )
    assert refused.status_code == 422, refused.get_json()
    assert {"date", "time"} & set(refused.get_json()["errors"]), refused.get_json()
    assert accepted.status_code == 201, accepted.get_json()  # today itself is fine
    assert head(st.ledger.db) == before + 1


def test_parse_time_round_trips_and_is_strict() -> None:
    moment = datetime(2026, 2, 28, 23, 59, 59, 999999, tzinfo=UTC)
    assert clock.parse_time(clock.format_time(moment)) == moment
    for bad in BAD_TIMES:
        with pytest.raises(ValueError):
            clock.parse_time(bad)
    assert clock.parse_date("2024-02-29").day == 29
    for bad in ("2023-02-29", "2024-1-01", "2024-01-01\n", "\u0662024-01-01", " 2024-01-01"):
        with pytest.raises(ValueError):
            clock.parse_date(bad)


# --- the domain's own check, whatever the door -----------------------------------


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"address": "a\x00b"}, "address"),
        ({"address": "a\ud800b"}, "address"),
        ({"address": "a\nb"}, "address"),
        ({"reason": "a\x1bb"}, "reason"),
        ({"name": unicodedata.normalize("NFD", "é")}, "name"),
        ({"name": "x" * 100_001}, "name"),
        ({"n": 2**53}, "n"),
        ({"n": -(2**53)}, "n"),
        ({"n": 10**5000}, "n"),
        ({"x": math.inf}, "x"),
        ({"x": math.nan}, "x"),
        ({"x": 0.5}, "x"),
        ({"d": {1: "a"}}, "d"),
        ({"aborts": [{"reason": "ok"}, {"candidate": "\x00"}]}, "aborts[1].candidate"),
        ({"deep": json.loads("[" * 20 + "]" * 20)}, "deep"),
        ({"s": {"a"}}, "s"),
    ],
)
def test_check_payload_names_the_field(payload, field) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_payload(payload)
    assert caught.value.field.startswith(field)
    assert caught.value.status == 422


def test_check_payload_accepts_what_events_hold() -> None:
    check_payload(
        {
            "reason": "line one\nline\ttwo",
            "n": 2**53 - 1,
            "m": -(2**53 - 1),
            "ok": True,
            "none": None,
            "nested": {"list": [1, "é", {"k": []}]},
        }
    )


def test_the_domain_refuses_what_bypasses_the_api(app, admin) -> None:
    """A service call (CLI, demo, a future endpoint) cannot log a NUL either."""
    st = app.extensions["ledger"]
    before = head(st.ledger.db)
    for name in ("Lycée\x00", "Lycée\ud800", unicodedata.normalize("NFD", "Lycée")):
        with pytest.raises(InvalidInput) as caught:
            st.certification.create_centre(name, "school", "Brest")
        assert caught.value.field == "name"
    assert head(st.ledger.db) == before
    centre, _ = st.certification.create_centre("Lycée", "school", "Brest")  # the cache is sound
    assert st.certification.centre(str(centre.id), None).name == "Lycée"
