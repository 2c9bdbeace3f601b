"""The first vertical slice through HTTP: candidates, answers, profiles, erasure, errors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ledger.audit.export import live_records
from ledger.audit.verify import verify_records
from ledger.projections.runner import dump, rebuild
from tests.helpers import IDENTITY, answer, climb, event_count, register

PROBLEM = "application/problem+json"


def assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    body = response.get_json()
    assert body["status"] == status and body["type"] == f"/problems/{code}"
    assert body["title"] and body["detail"]
    return body


def test_registration_logs_identity_only_in_sealed_form(client, appender, auditor) -> None:
    created = register(client, appender, external_id="INE123456789")
    assert created["seq"] >= 1 and len(created["hash"]) == 64
    feed = client.get("/api/v1/events", headers=auditor).get_data(as_text=True)
    assert "Lefèvre" not in feed and "Rennes" not in feed and "INE123456789" not in feed
    record = json.loads(feed.splitlines()[-1])
    assert record["type"] == "candidates.CandidateRegistered"
    assert set(record["data"]["identity"]) == {"sealed", "subject"}
    assert record["data"]["subject"] == created["subject"]


def test_profile_levels_pix_and_eligibility(client, appender) -> None:
    candidate = register(client, appender)["id"]
    answers = [a for code in ("1.1", "1.2", "2.1", "3.1") for a in climb(candidate, code, 2)]
    answers += climb(candidate, "4.1", 3)
    response = client.post("/api/v1/answers", json={"answers": answers}, headers=appender)
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["recorded"] == len(answers)
    profile = client.get(f"/api/v1/candidates/{candidate}/profile", headers=appender).get_json()
    levels = {c["code"]: c["level"] for c in profile["competences"]}
    assert levels["1.1"] == levels["1.2"] == levels["2.1"] == levels["3.1"] == 2
    assert levels["4.1"] == 3 and levels["5.1"] == 0
    assert profile["total_pix"] == 4 * 16 + 24
    assert profile["eligible"] is True
    assert profile["identity"]["last_name"] == IDENTITY["last_name"]
    assert len(profile["competences"]) == 16


def test_four_competences_are_not_enough(client, appender) -> None:
    candidate = register(client, appender)["id"]
    answers = [a for code in ("1.1", "1.2", "2.1", "3.1") for a in climb(candidate, code, 3)]
    client.post("/api/v1/answers", json={"answers": answers}, headers=appender)
    profile = client.get(f"/api/v1/candidates/{candidate}/profile", headers=appender).get_json()
    assert profile["eligible"] is False


def test_a_wrong_answer_lowers_the_level_latest_evidence_wins(client, appender) -> None:
    candidate = register(client, appender)["id"]
    client.post("/api/v1/answers", json={"answers": climb(candidate, "1.1", 3)}, headers=appender)
    wrong = answer(candidate, "1.1", 2, "ko")
    client.post("/api/v1/answers", json=wrong, headers=appender)
    profile = client.get(f"/api/v1/candidates/{candidate}/profile", headers=appender).get_json()
    assert next(c for c in profile["competences"] if c["code"] == "1.1")["level"] < 3


def test_answers_are_idempotent_by_answer_id(client, appender, auditor) -> None:
    candidate = register(client, appender)["id"]
    one = answer(candidate, answer_id="platform-77")
    first = client.post("/api/v1/answers", json=one, headers=appender).get_json()
    count = event_count(client, auditor)
    again = client.post("/api/v1/answers", json={"answers": [one]}, headers=appender)
    assert again.status_code == 201
    assert again.get_json()["results"][0]["status"] == "duplicate"
    assert first["results"][0]["status"] == "recorded"
    assert event_count(client, auditor) == count
    changed = {**one, "result": "ko"}
    assert_problem(client.post("/api/v1/answers", json=changed, headers=appender), 409, "conflict")
    assert event_count(client, auditor) == count


def test_rejected_batch_writes_nothing(client, appender, auditor) -> None:
    candidate = register(client, appender)["id"]
    good = [answer(candidate) for _ in range(3)]
    bad = {**answer(candidate), "competence": "9.9"}
    count = event_count(client, auditor)
    body = assert_problem(
        client.post("/api/v1/answers", json={"answers": [*good, bad]}, headers=appender),
        422,
        "unknown-reference",
    )
    assert "9.9" in body["detail"]
    assert event_count(client, auditor) == count


def test_skill_must_belong_to_the_competence(client, appender) -> None:
    candidate = register(client, appender)["id"]
    mismatched = {**answer(candidate, "1.1"), "competence": "2.1"}
    assert_problem(
        client.post("/api/v1/answers", json=mismatched, headers=appender), 422, "unknown-reference"
    )


def test_unknown_candidate_is_404(client, appender) -> None:
    ghost = answer("00000000-0000-4000-8000-000000000000")
    assert_problem(client.post("/api/v1/answers", json=ghost, headers=appender), 404, "not-found")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"time_spent_ms": "abc"}, "time_spent_ms"),
        ({"time_spent_ms": 1.5}, "time_spent_ms"),
        ({"result": "maybe"}, "result"),
        ({"answered_at": "yesterday"}, "answered_at"),
        ({"candidate": "not-a-uuid"}, "candidate"),
        ({"extra": 1}, "extra"),
    ],
)
def test_wrong_types_are_422_with_field_errors(client, appender, auditor, change, field) -> None:
    candidate = register(client, appender)["id"]
    count = event_count(client, auditor)
    body = assert_problem(
        client.post("/api/v1/answers", json={**answer(candidate), **change}, headers=appender),
        422,
        "validation-failed",
    )
    assert field in json.dumps(body["errors"])
    assert event_count(client, auditor) == count


def test_malformed_json_is_400(client, appender) -> None:
    response = client.post(
        "/api/v1/answers",
        data='{"answers": [',
        headers={**appender, "Content-Type": "application/json"},
    )
    assert_problem(response, 400, "malformed-json")


def test_oversize_batch_is_413_and_writes_nothing(client, appender, auditor) -> None:
    candidate = register(client, appender)["id"]
    count = event_count(client, auditor)
    batch = [answer(candidate) for _ in range(1001)]
    assert_problem(
        client.post("/api/v1/answers", json={"answers": batch}, headers=appender),
        413,
        "batch-too-large",
    )
    assert event_count(client, auditor) == count


def test_a_full_batch_of_1000_is_accepted(client, appender, auditor) -> None:
    candidate = register(client, appender)["id"]
    batch = [answer(candidate, "1.1", 1 + i % 3, "ok" if i % 2 else "ko") for i in range(1000)]
    response = client.post("/api/v1/answers", json={"answers": batch}, headers=appender)
    assert response.status_code == 201 and response.get_json()["recorded"] == 1000


def test_tokens_and_scopes(client, app, appender, auditor) -> None:
    assert_problem(client.post("/api/v1/candidates", json=IDENTITY), 401, "missing-token")
    bad = {"Authorization": "Bearer lt_nope"}
    response = client.post("/api/v1/candidates", json=IDENTITY, headers=bad)
    assert_problem(response, 401, "invalid-token")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert_problem(
        client.post("/api/v1/candidates", json=IDENTITY, headers=auditor), 403, "insufficient-scope"
    )
    assert_problem(client.get("/api/v1/events", headers=appender), 403, "insufficient-scope")
    st = app.extensions["ledger"]
    token_id = st.tokens.list()[0]["id"]
    st.tokens.revoke(token_id)
    assert client.post("/api/v1/candidates", json=IDENTITY, headers=appender).status_code == 401


def test_tokens_are_stored_hashed(app, appender) -> None:
    secret = appender["Authorization"].split()[1]
    with app.extensions["ledger"].ledger.db.read() as cur:
        cur.execute("SELECT token_hash FROM api_tokens")
        stored = [r[0] for r in cur.fetchall()]
    assert secret not in stored and all(len(h) == 64 for h in stored)


def test_idempotency_key_replays_and_never_writes_twice(client, appender, auditor) -> None:
    headers = {**appender, "Idempotency-Key": "reg-1"}
    first = client.post("/api/v1/candidates", json=IDENTITY, headers=headers)
    count = event_count(client, auditor)
    second = client.post("/api/v1/candidates", json=IDENTITY, headers=headers)
    assert second.status_code == 201 and second.get_json() == first.get_json()
    assert second.headers["Idempotent-Replayed"] == "true"
    assert event_count(client, auditor) == count
    other = client.post(
        "/api/v1/candidates", json={**IDENTITY, "first_name": "Zoé"}, headers=headers
    )
    assert_problem(other, 422, "idempotency-key-reused")


def test_erasure_hides_identity_everywhere_and_audit_still_passes(
    client, app, appender, admin
) -> None:
    created = register(client, appender)
    client.post(
        "/api/v1/answers", json={"answers": climb(created["id"], "1.1", 2)}, headers=appender
    )
    response = client.post(
        f"/api/v1/subjects/{created['subject']}/erasure",
        json={"reason": "data-subject-request"},
        headers=admin,
    )
    assert response.status_code == 201 and response.get_json()["erased"] is True
    profile = client.get(f"/api/v1/candidates/{created['id']}/profile", headers=appender).get_json()
    assert profile["identity"] is None and profile["erased"] is True
    assert profile["total_pix"] == 16  # the proof stays, the person goes
    ledger = app.extensions["ledger"].ledger
    assert verify_records(live_records(ledger), ledger.trust_anchor()).ok
    again = client.post(
        f"/api/v1/subjects/{created['subject']}/erasure",
        json={"reason": "objection"},
        headers=admin,
    )
    assert_problem(again, 409, "conflict")
    unknown = client.post(
        "/api/v1/subjects/00000000-0000-4000-8000-000000000000/erasure",
        json={"reason": "objection"},
        headers=admin,
    )
    assert_problem(unknown, 404, "not-found")
    assert_problem(
        client.post(
            f"/api/v1/subjects/{created['subject']}/erasure",
            json={"reason": "objection"},
            headers=appender,
        ),
        403,
        "insufficient-scope",
    )


def test_events_feed_pages_in_ndjson(client, appender, auditor) -> None:
    for _ in range(3):
        register(client, appender)
    response = client.get("/api/v1/events?after=1&limit=2", headers=auditor)
    assert response.mimetype == "application/x-ndjson"
    records = [json.loads(line) for line in response.get_data(as_text=True).splitlines()]
    assert [r["seq"] for r in records] == [2, 3]
    assert set(records[0]) == {
        "seq",
        "id",
        "stream",
        "version",
        "type",
        "time",
        "data",
        "prev",
        "hash",
        "kid",
        "sig",
    }
    assert_problem(client.get("/api/v1/events?limit=0", headers=auditor), 422, "validation-failed")


def test_jwks_openapi_and_docs_are_public(client, appender) -> None:
    register(client, appender)
    (key,) = client.get("/.well-known/jwks.json").get_json()["keys"]
    assert key["kty"] == "OKP" and key["alg"] == "EdDSA"
    spec = client.get("/api/v1/openapi.json").get_json()
    assert "/api/v1/answers" in spec["paths"] and "/api/v1/candidates" in spec["paths"]
    docs = client.get("/api/v1/docs")
    assert docs.status_code == 200 and b"/api/v1/answers" in docs.data


def test_unknown_route_and_method_are_problems(client) -> None:
    assert_problem(client.get("/api/v1/nope"), 404, "not-found")
    assert_problem(client.delete("/api/v1/answers"), 405, "method-not-allowed")


def test_rebuild_equals_live(client, app, appender) -> None:
    for _ in range(3):
        candidate = register(client, appender)["id"]
        answers = [a for code in ("1.1", "2.2", "5.1") for a in climb(candidate, code, 2)]
        answers.append(answer(candidate, "1.1", 1, "ko"))
        client.post("/api/v1/answers", json={"answers": answers}, headers=appender)
    st = app.extensions["ledger"]
    st.fresh()
    live = dump(st.ledger.db, st.projections)
    rebuild(st.ledger.db, st.projections)
    assert dump(st.ledger.db, st.projections) == live
    assert live["proj_candidates"]


def test_the_referential_is_public_versioned_and_cacheable(client) -> None:
    """A platform reads every id it needs from the API, without a token."""
    response = client.get("/api/v1/referential")
    assert response.status_code == 200 and response.headers["ETag"]
    ref = response.get_json()
    assert ref["version"] == "crcn-2026.1" and len(ref["competences"]) == 16
    assert {"id", "tube", "difficulty"} <= set(ref["skills"][0])
    assert {"id", "skill"} <= set(ref["challenges"][0])
    assert {"code", "domain", "title"} <= set(ref["competences"][0])
    same = client.get(
        "/api/v1/referential/crcn-2026.1", headers={"If-None-Match": response.headers["ETag"]}
    )
    assert same.status_code == 304
    assert_problem(client.get("/api/v1/referential/crcn-1999.1"), 404, "not-found")


def test_skill_and_competence_are_derived_from_the_challenge(client, appender) -> None:
    candidate = register(client, appender)["id"]
    full = answer(candidate, "2.1")
    bare = {k: v for k, v in full.items() if k not in ("skill", "competence")}
    response = client.post("/api/v1/answers", json=bare, headers=appender)
    assert response.status_code == 201, response.get_json()
    profile = client.get(f"/api/v1/candidates/{candidate}/profile", headers=appender).get_json()
    assert {c["code"]: c["pix"] for c in profile["competences"]}["2.1"] > 0


@pytest.mark.parametrize(
    ("field", "wrong"), [("skill", "@nowhere9"), ("competence", "5.2"), ("challenge", "rec-x")]
)
def test_a_skill_or_competence_that_does_not_match_names_the_field(
    client, appender, auditor, field: str, wrong: str
) -> None:
    candidate = register(client, appender)["id"]
    before = event_count(client, auditor)
    sent = {**answer(candidate, "1.1"), field: wrong}
    body = assert_problem(
        client.post("/api/v1/answers", json=sent, headers=appender), 422, "unknown-reference"
    )
    assert body["field"] == field and field in body["detail"]
    assert event_count(client, auditor) == before


def test_no_answer_is_recorded_after_the_candidates_erasure(client, appender, admin) -> None:
    created = register(client, appender)
    erased = client.post(
        f"/api/v1/subjects/{created['subject']}/erasure", json={"reason": "consent-withdrawn"},
        headers=admin,
    )  # fmt: skip
    assert erased.status_code == 201, erased.get_json()
    sent = answer(created["id"], "1.1")
    body = assert_problem(
        client.post("/api/v1/answers", json=sent, headers=appender), 409, "conflict"
    )
    assert body["candidate"] == created["id"] and "erased" in body["detail"]


def test_a_national_id_is_registered_once(client, appender, admin) -> None:
    """INEs are national and unique: a second registration names the existing candidate."""
    first = register(client, appender, external_id="0123456789AB")
    again = client.post(
        "/api/v1/candidates", json={**IDENTITY, "external_id": "0123456789ab"}, headers=appender
    )
    body = assert_problem(again, 409, "conflict")
    assert body["candidate"] == first["id"] and body["field"] == "external_id"
    erased = client.post(
        f"/api/v1/subjects/{first['subject']}/erasure", json={"reason": "consent-withdrawn"},
        headers=admin,
    )  # fmt: skip
    assert erased.status_code == 201
    assert register(client, appender, external_id="0123456789AB")["id"] != first["id"]


def test_a_reservation_left_by_a_crash_is_taken_over_only_once_stale(app, client, appender) -> None:
    """A registration that never reached the log must not block the INE for ever."""
    from datetime import UTC, datetime, timedelta

    from ledger.domain import clock

    ids = app.extensions["ledger"].candidates.external_ids
    ghost = "00000000-0000-4000-8000-000000000001"
    with clock.frozen_at(datetime(2026, 11, 2, 9, tzinfo=UTC)):
        assert ids.claim("1234567890AB", ghost, "ghost-subject") == ghost
        sent = {**IDENTITY, "external_id": "1234567890AB"}
        body = assert_problem(
            client.post("/api/v1/candidates", json=sent, headers=appender), 409, "conflict"
        )
        assert "in progress" in body["detail"]
    with clock.frozen_at(datetime(2026, 11, 2, 9, tzinfo=UTC) + timedelta(minutes=6)):
        assert register(client, appender, external_id="1234567890AB")["id"] != ghost
