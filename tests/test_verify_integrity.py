"""The verify page and its JSON show only what verifies: tampering gives an integrity failure.

Each attack is made the way someone with database access but no signing key
would make it: edit an event, edit the read model, delete a row, or re-sign the
edited tail with a key of their own (announced in the log, hash chain fixed).
"""

from __future__ import annotations

import html as html_lib
import json
import time
import uuid
from typing import Any

import pytest

from ledger import crypto, envelope, trust
from ledger.domain import clock
from ledger.qr_token import CertificateClaims, sign_token
from ledger.services.qr import current_payload
from ledger.services.signed_certificate import certificate_events
from ledger.services.verification import INTEGRITY_FAILURE, public_certificate
from ledger.store.recorder import key_stream
from tests.certification_flow import Flow
from tests.test_verify_site import DAY_AFTER, token_of

GREEN_VALID = 'class="status valid"'


@pytest.fixture
def certified(app, client, admin) -> tuple[Flow, str]:
    flow = Flow(app, client, admin)
    _, code, _ = flow.certified()
    app.extensions["ledger"].fresh()  # read models up to date before anyone tampers
    return flow, code


def _state(app) -> Any:
    return app.extensions["ledger"]


def _sql(app, sql: str, params: tuple = ()) -> None:
    with _state(app).ledger.db.write() as cur:
        cur.execute(sql, params)


def _issued_seq(app, code: str) -> int:
    return certificate_events(_state(app).ledger.recorder, code)[0].seq


def _alter_data(app, seq: int, **changes: Any) -> None:
    """Edit an event's payload in place, as a database writer without the key can."""
    env = _state(app).ledger.recorder.envelope(seq)
    data = {**env.data, **changes}
    _sql(app, "UPDATE ledger_events SET data = ? WHERE seq = ?", (_jcs(data), seq))


def _jcs(value: Any) -> str:
    return crypto.canonical_json(value).decode("utf-8")


def _page(client, code: str, lang: str = "fr", token: str | None = None) -> str:
    query = {"lang": lang, **({"t": token} if token else {})}
    with clock.frozen_at(DAY_AFTER):
        response = client.get(f"/v/{code}", query_string=query)
    assert response.status_code == 200
    return html_lib.unescape(response.get_data(as_text=True))


def _json(client, code: str) -> dict[str, Any]:
    with clock.frozen_at(DAY_AFTER):
        response = client.get(f"/api/v1/certificates/{code}")
    assert response.status_code == 200 and response.mimetype == "application/json"
    return response.get_json()


def _assert_integrity_failure(app, client, code: str, check: str) -> dict[str, Any]:
    """Top of both pages red, no "valid" word anywhere, JSON says so, alarm raised."""
    for lang, title in (("fr", "Alerte d'intégrité"), ("en", "Integrity alert")):
        page = _page(client, code, lang)
        body = page[page.index("<main") :]
        assert title in body  # the first section on the page is the failure
        assert body.index("<section") == body.index('<section class="integrity-failure"')
        assert "valid" not in page.lower() and GREEN_VALID not in page
        assert "Camille" not in page  # nothing of the unverified content is shown
    body = _json(client, code)
    assert body["status"] == INTEGRITY_FAILURE and body["holder"] is None
    assert body["pix_score"] is None and body["domains"] == []
    assert body["integrity"]["verified"] is False
    assert check in {p["check"] for p in body["integrity"]["problems"]}, body["integrity"]
    alarms = _state(app).integrity_alarms
    assert any(a["code"] == code for a in alarms), alarms
    qr = client.get(f"/api/v1/certificates/{code}/qr.png")
    assert qr.status_code == 409 and qr.mimetype == "application/problem+json"
    return body


def test_an_intact_certificate_verifies_every_event(app, client, certified) -> None:
    _, code = certified
    body = _json(client, code)
    assert body["status"] == "valid" and body["integrity"] == {"verified": True, "problems": []}
    assert body["events"] and all(
        e["hash_valid"] and e["key_trusted"] and e["signature_valid"] and e["chain_link_valid"]
        for e in body["events"]
    )
    assert body["proof"]["seq"] == _issued_seq(app, code)
    assert GREEN_VALID in _page(client, code) and _state(app).integrity_alarms == []


def test_an_altered_issuing_event_fails_at_the_top(app, client, certified) -> None:
    _, code = certified
    _alter_data(app, _issued_seq(app, code), max_level=6, pix_score=512)
    _assert_integrity_failure(app, client, code, "hash")


def test_an_altered_read_model_fails(app, client, certified) -> None:
    _, code = certified
    _sql(app, "UPDATE proj_certificates SET pix_score = 512 WHERE code = ?", (code,))
    body = _assert_integrity_failure(app, client, code, "read-model")
    (problem,) = body["integrity"]["problems"]
    assert problem["fields"] == ["pix_score"]


def test_a_read_model_that_hides_a_cancellation_fails(app, client, admin, certified) -> None:
    flow, code = certified
    with clock.frozen_at(DAY_AFTER):
        flow.post(f"/api/v1/certificates/{code}/cancellation", {"reason": "fraude"}, admin)
    assert _json(client, code)["status"] == "cancelled"
    issued = _issued_seq(app, code)
    history = json.dumps([{"event": "issued", "seq": issued, "on": "2026-12-01"}])
    _sql(app, "UPDATE proj_certificates SET status = 'issued', status_reason = NULL,"
              " status_on = NULL, latest_seq = ?, history = ? WHERE code = ?",
         (issued, history, code))  # fmt: skip
    _state(app).views.REVERIFY_S = 0.01  # the cached view must not hide it for long
    time.sleep(0.02)
    _assert_integrity_failure(app, client, code, "read-model")


def test_a_deleted_cancellation_with_a_read_model_to_match_fails(
    app, client, admin, certified
) -> None:
    """Every remaining event verifies; only what this process audited earlier tells."""
    flow, code = certified
    with clock.frozen_at(DAY_AFTER):
        flow.post(f"/api/v1/certificates/{code}/cancellation", {"reason": "fraude"}, admin)
    assert client.get("/api/v1/ready").status_code == 200  # the tail audit saw the cancellation
    cancelled = _json(client, code)["events"][-1]["seq"]
    issued = _issued_seq(app, code)
    history = json.dumps([{"event": "issued", "seq": issued, "on": "2026-12-01"}])
    _sql(app, "DELETE FROM ledger_events WHERE seq = ?", (cancelled,))
    _sql(app, "UPDATE proj_certificates SET status = 'issued', status_reason = NULL,"
              " status_on = NULL, latest_seq = ?, history = ? WHERE code = ?",
         (issued, history, code))  # fmt: skip
    _state(app).views.REVERIFY_S = 0.01
    time.sleep(0.02)
    _assert_integrity_failure(app, client, code, "deleted")
    ready = client.get("/api/v1/ready")  # and the log's head fell below what was verified
    assert ready.status_code == 503
    assert "truncated" in ready.get_json()["checks"]["integrity"]["alarms"][-1]["problems"][0]
    assert "log" in {p["check"] for p in _json(client, code)["integrity"]["problems"]}


def test_a_lagging_read_model_is_not_tampering(app, certified) -> None:
    """An event newer than the projection shows from the log, with no alarm."""
    _, code = certified
    st = _state(app)
    with clock.frozen_at(DAY_AFTER):
        st.certification.cancel_certificate(code, "session invalidée")  # not yet projected
        view = public_certificate(st.ledger, st.referential, code)
    assert view["integrity"]["verified"] is True and view["status"] == "cancelled"
    assert view["status_reason"] == "session invalidée"


def test_a_deleted_issuing_event_fails(app, client, certified) -> None:
    _, code = certified
    _sql(app, "DELETE FROM ledger_events WHERE seq = ?", (_issued_seq(app, code),))
    _assert_integrity_failure(app, client, code, "missing")


def test_a_deleted_previous_event_breaks_the_chain_link(app, client, certified) -> None:
    _, code = certified
    _sql(app, "DELETE FROM ledger_events WHERE seq = ?", (_issued_seq(app, code) - 1,))
    body = _assert_integrity_failure(app, client, code, "chain")
    assert {p["check"] for p in body["integrity"]["problems"]} == {"chain"}


@pytest.mark.parametrize("table", ["ledger_events", "proj_certificates"])
def test_rows_that_are_not_even_json_fail_cleanly(app, client, certified, table) -> None:
    _, code = certified
    if table == "ledger_events":
        _sql(app, "UPDATE ledger_events SET data = '{not json' WHERE seq = ?",
             (_issued_seq(app, code),))  # fmt: skip
    else:
        _sql(app, "UPDATE proj_certificates SET history = '[' WHERE code = ?", (code,))
    _assert_integrity_failure(
        app, client, code, "hash" if table == "ledger_events" else "read-model"
    )


def test_a_tail_re_signed_with_an_attackers_own_key_fails(app, client, certified) -> None:
    """Edit the issuing event, announce a key of one's own, re-sign and re-link the whole tail."""
    _, code = certified
    attacker = crypto.SigningKey.generate()
    _announce(app, attacker)
    _alter_data(app, _issued_seq(app, code), pix_score=512)
    _resign_tail(app, _issued_seq(app, code), attacker)
    body = _assert_integrity_failure(app, client, code, "key")
    assert {p["check"] for p in body["integrity"]["problems"]} == {"key", "signature"}


def test_a_forged_token_never_shows_green_valid_above_its_warning(app, client, certified) -> None:
    _, code = certified
    token = token_of(client, code)
    head, body, sig = token.split(".")
    altered = f"{head}.{body}.{sig[:-4]}{'AAAA' if sig[-4:] != 'AAAA' else 'BBBB'}"
    st = _state(app)
    attacker = crypto.SigningKey.generate()
    _announce(app, attacker)  # a key written into the database is not trusted for tokens
    view = st.views.get(code)
    forged = sign_token(CertificateClaims.from_payload(current_payload(view)), attacker)
    for bad in (altered, forged):
        for lang in ("fr", "en"):
            page = _page(client, code, lang, bad)
            main = page[page.index("<main") :]
            assert 'class="token invalid"' in main and GREEN_VALID not in main
            assert main.index("token invalid") < main.index('class="status')
    page = _page(client, code, "fr", token)  # the genuine token still shows valid, green
    assert GREEN_VALID in page and 'class="token current"' in page


def _announce(app, key: crypto.SigningKey) -> None:
    """Append a self-announced key event at the head, chained and signed by that key."""
    ledger = _state(app).ledger
    head = ledger.recorder.envelope(ledger.recorder.max_notification_id())
    row = (head.seq + 1, str(uuid.uuid4()), key_stream(key.kid), 1, trust.KEY_ACTIVATED,
           clock.format_time(clock.now()), _jcs(trust.activation(key)),
           head.hash)  # fmt: skip
    digest = crypto.sha256(envelope.hashed_bytes(*row))
    _sql(app, "INSERT INTO ledger_events (seq, id, stream, version, type, time, data, prev,"
              " hash, kid, sig) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
         (*row, digest.hex(), key.kid, crypto.b64url(key.sign(digest))))  # fmt: skip


def _resign_tail(app, first: int, key: crypto.SigningKey) -> None:
    """Recompute hash, link and signature of every event from `first` on, with `key`."""
    recorder = _state(app).ledger.recorder
    prev = recorder.envelope(first - 1).hash
    for env in recorder.envelopes(after=first - 1, limit=100_000):
        row = (env.seq, env.id, env.stream, env.version, env.type, env.time, env.data_json, prev)
        digest = crypto.sha256(envelope.hashed_bytes(*row))
        prev = digest.hex()
        _sql(app, "UPDATE ledger_events SET prev = ?, hash = ?, kid = ?, sig = ? WHERE seq = ?",
             (row[-1], prev, key.kid, crypto.b64url(key.sign(digest)), env.seq))  # fmt: skip
