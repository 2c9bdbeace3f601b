"""Erasure means erased: after it, nothing readable about the person remains anywhere.

One person with a distinctive name goes through the whole certification, with
free text about them (examiner report, certificate rescoring and cancellation
reasons) and verify-page visits (through a real gunicorn server,
whose access log is captured); then they are erased, and their name (UTF-8)
and their deleted data key are searched for in every table and column, in the
raw SQLite file and its WAL, in PostgreSQL's heap pages, in an export and in
the logs. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest

from ledger.audit.export import export_bundle, live_records
from ledger.audit.verify import verify_records
from ledger.log_redaction import RedactingFilter, redact_request_line, redact_target
from ledger.services.qr import token_url
from tests.certification_flow import Flow
from tests.helpers import climb, register
from tests.served import serve
from tests.test_api_positioning import assert_problem

FIRST, LAST = "Zéphyrine", "Quatremaine-Oudinot"
PLACE = "Saint-Guénolé"
NEEDLES = tuple(  # UTF-8, as JSON escapes it, as a URL quotes it
    {form for text in (FIRST, LAST, PLACE, "ZQO-4242")
     for form in (text.encode(), json.dumps(text)[1:-1].encode(), quote(text).encode())}
)  # fmt: skip
LEVELS = {"1.1": 2, "1.2": 2, "2.1": 3, "3.1": 1, "4.1": 2, "5.1": 1}


@pytest.fixture
def flow(app, client, admin) -> Flow:
    return Flow(app, client, admin)


RESCORING_REASON = f"Question faussée pour {FIRST} {LAST}"
CANCELLATION_REASON = f"{FIRST} {LAST} a triché (ZQO-4242)"


def _person(flow: Flow) -> dict[str, Any]:
    """Registered, positioned, certified, rescored then cancelled, with free text about them.

    The free text: the examiner report, and the certificate's rescoring and
    cancellation reasons, all naming them.
    """
    created = register(
        flow.client, flow.platform, first_name=FIRST, last_name=LAST,
        birth_place=PLACE, external_id="INE-ZQO-4242", email="zq@example.org", audience="adult",
    )  # fmt: skip
    answers = [a for code, level in LEVELS.items() for a in climb(created["id"], code, level)]
    flow.post("/api/v1/answers", {"answers": answers}, flow.platform)
    other = flow.eligible_candidate()  # someone else, who stays
    session = flow.session()["id"]
    courses = {}
    for candidate in (created["id"], other):
        flow.enrol(session, candidate)
        courses[candidate] = flow.start(session, candidate)
        flow.answer_all(courses[candidate], wrong=int(candidate == created["id"]))
    report = {
        "incidents": f"{FIRST} {LAST} est arrivée avec 10 minutes de retard.",
        "issue_reports": [
            {"candidate": created["id"], "category": "late-or-leaving",
             "description": f"{FIRST} a quitté la salle (ZQO-4242)."},
        ],
    }  # fmt: skip
    flow.finalize(session, report)
    flow.publish(session)
    history = flow.client.get(
        f"/api/v1/candidates/{created['id']}/certifications", headers=flow.platform
    ).get_json()
    (certificate,) = history["certificates"]
    code = certificate["code"]
    neutralize = [courses[created["id"]]["challenges"][0]["challenge"]]  # answered wrongly
    body = {"neutralize": neutralize, "reason": RESCORING_REASON}
    flow.post(f"/api/v1/certificates/{code}/rescoring", body, flow.admin)
    flow.post(
        f"/api/v1/certificates/{code}/cancellation", {"reason": CANCELLATION_REASON}, flow.admin
    )
    return {**created, "other": other, "session": session, "code": code}


def _visit_through_gunicorn(app: Any, paths: list[str], log_file: Path) -> None:
    """Run `ledger serve` on the same store, visit `paths`, stop it: its logs land in `log_file`."""
    config = app.extensions["ledger"].config
    with (
        log_file.open("wb") as out,
        serve(config.database_url, config.keys_dir, clean_env=True, stdout=out) as (base, _),
    ):
        for path in paths:
            request = urllib.request.Request(base + path, headers={"Referer": base + path})
            try:
                urllib.request.urlopen(request, timeout=10).read()
            except urllib.error.HTTPError as exc:
                exc.read()


def _tables(cur: Any, kind: str) -> list[str]:
    if kind == "sqlite":
        cur.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    else:
        cur.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        )
    return [r[0] for r in cur.fetchall()]


def _rows_text(ledger: Any) -> bytes:
    """Every column of every row of every table, as UTF-8 text."""
    chunks = []
    with ledger.db.read() as cur:
        for table in _tables(cur, ledger.db.kind):
            cur.execute(f"SELECT * FROM {table}")
            chunks.extend(
                repr(row).encode() + json.dumps(row, default=str).encode() for row in cur.fetchall()
            )
    return b"\n".join(chunks)


def _raw_storage(ledger: Any) -> bytes:
    """The database as bytes on disk: SQLite's file and WAL, or every PostgreSQL page of the schema."""
    if ledger.db.kind == "sqlite":
        path = Path(ledger.db.path)
        wal = Path(f"{path}-wal")
        return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
    with psycopg.connect(ledger.db.url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pageinspect SCHEMA public")
        (schema,) = conn.execute(
            "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'pageinspect'"
        ).fetchone()
        conn.execute("CHECKPOINT")
        relations = conn.execute(
            "SELECT c.oid::regclass::text, pg_relation_size(c.oid) / current_setting('block_size')::int"
            " FROM pg_class c WHERE c.relkind IN ('r', 'i', 't') AND (c.relnamespace = current_schema()::regnamespace"
            " OR c.oid IN (SELECT reltoastrelid FROM pg_class WHERE relnamespace = current_schema()::regnamespace))"
        ).fetchall()
        assert any(name.endswith("subject_keys") for name, _ in relations)
        return b"".join(
            bytes(
                conn.execute(f"SELECT {schema}.get_raw_page(%s, %s)", (name, block)).fetchone()[0]
            )
            for name, blocks in relations
            for block in range(blocks)
        )


def _purged(ledger: Any, wrapped: bytes, seconds: float = 30) -> None:
    """Wait until the erasure's purge left no copy of the key in the database files.

    PostgreSQL's VACUUM FULL keeps a deleted row version while any older transaction
    in the same database may still see it (here: other test workers' transactions),
    so the test repeats the purge until it holds (README "Erasure": the next purge).
    """
    deadline = time.monotonic() + seconds
    while wrapped in _raw_storage(ledger) and time.monotonic() < deadline:
        time.sleep(0.5)
        ledger.vault.purge()


def _wrapped_key(ledger: Any, subject: str) -> bytes:
    with ledger.db.read() as cur:
        cur.execute("SELECT wrapped FROM subject_keys WHERE subject = ?", (subject,))
        return cur.fetchone()[0].encode()


def _readable(flow: Flow, person: dict[str, Any], token: str) -> bytes:
    """Everything the API and the site show about the person and their session."""
    client, code = flow.client, person["code"]
    responses = [
        client.get(f"/api/v1/candidates/{person['id']}/profile", headers=flow.platform),
        client.get(f"/api/v1/candidates/{person['id']}/certifications", headers=flow.platform),
        client.get(f"/api/v1/sessions/{person['session']}", headers=flow.staff),
        client.get(f"/api/v1/certificates/{code}"),
        client.get(f"/v/{code}"),
        client.get(f"/v/{code}?t={token}"),
        client.get(f"/v/{code}?t={token}&lang=en"),
    ]
    return b"\n".join(r.get_data() for r in responses)


def test_an_erased_person_is_found_nowhere(flow: Flow, app, admin, tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    ledger = app.extensions["ledger"].ledger
    person = _person(flow)
    token = token_url(ledger, app.extensions["ledger"].views.get(person["code"])).split("?t=")[1]
    before = _readable(flow, person, token)
    assert FIRST.encode() in before and b"10 minutes de retard" in before and b"ZQO-4242" in before
    _assert_reasons_shown(flow, person["code"], person["subject"], token)
    code = person["code"]
    log_file = tmp_path / "server.log"
    _visit_through_gunicorn(app, [
        f"/v/{code}?t={token}&lang=fr", f"/lookup?code={quote(FIRST + ' ' + LAST)}",
        f"/v/{quote(LAST)}", f"/api/v1/certificates/{code}", f"/v/{code}?t={token}",
    ], log_file)  # fmt: skip
    wrapped = _wrapped_key(ledger, person["subject"])
    assert wrapped in _raw_storage(ledger)  # the search below can find a key when there is one

    response = flow.client.post(
        f"/api/v1/subjects/{person['subject']}/erasure",
        json={"reason": "data-subject-request"},
        headers=admin,
    )
    assert response.status_code == 201

    _purged(ledger, wrapped)
    after = _readable(flow, person, token)
    export_bundle(ledger, tmp_path / "bundle")
    bundle = b"".join(p.read_bytes() for p in (tmp_path / "bundle").iterdir())
    access_log = log_file.read_bytes()
    places = {
        "API and pages": after,
        "tables": _rows_text(ledger),
        "raw storage": _raw_storage(ledger),
        "export": bundle,
        "access log": access_log,
        "application log": caplog.text.encode(),
    }
    for place, content in places.items():
        for needle in (*NEEDLES, wrapped):
            assert needle not in content, (place, needle)
    assert token.encode() not in access_log and code.encode() not in access_log
    assert b'"route": "/v/<code>"' in access_log  # the visits were logged, as route templates
    other = flow.client.get(f"/api/v1/candidates/{person['other']}/profile", headers=flow.platform)
    assert other.get_json()["identity"]["first_name"] == "Camille"  # only the erased one goes
    session = flow.client.get(f"/api/v1/sessions/{person['session']}", headers=flow.staff)
    assert session.get_json()["report"]["incidents"] is None  # shared free text went with them
    _assert_reasons_erased(flow, person, token)
    erased = list(ledger.recorder.iter_envelopes_of_type("subjects.SubjectErased"))
    assert [e.data for e in erased] == [
        {"subject": person["subject"], "reason": "data-subject-request"}
    ]
    assert verify_records(live_records(ledger), ledger.trust_anchor()).ok


def _assert_reasons_shown(flow: Flow, code: str, subject: str, token: str) -> None:
    """Before erasure the operator's JSON and page show both reasons, opened; no event holds them."""
    view = flow.client.get(f"/api/v1/certificates/{code}", headers=flow.admin).get_json()
    assert view["integrity"]["verified"] and view["status"] == "cancelled"
    assert view["status_reason"] == CANCELLATION_REASON and not view["status_reason_erased"]
    reasons = [h.get("reason") for h in view["history"]]
    assert reasons == [None, RESCORING_REASON, CANCELLATION_REASON]
    page = flow.client.get(f"/v/{code}?t={token}&lang=fr").get_data(as_text=True)
    assert RESCORING_REASON not in page and CANCELLATION_REASON not in page  # categories only
    page = flow.client.get(f"/v/{code}?lang=fr", headers=flow.admin).get_data(as_text=True)
    assert RESCORING_REASON in page and CANCELLATION_REASON in page
    ledger = flow.app.extensions["ledger"].ledger
    sealed = []
    for kind in ("CertificateRescored", "CertificateCancelled", "CourseScored"):
        for env in ledger.recorder.iter_envelopes_of_type(f"certification.{kind}"):
            assert LAST not in env.to_json_line(), kind
            if env.data.get("basis", "rescoring") == "rescoring":
                sealed.append(env.data["reason"]["subject"])
    assert len(sealed) == 3 and set(sealed) == {subject}


def _assert_reasons_erased(flow: Flow, person: dict[str, Any], token: str) -> None:
    """After erasure the reasons are null, said erased; the signed events still check out."""
    code = person["code"]
    view = flow.client.get(f"/api/v1/certificates/{code}", headers=flow.admin).get_json()
    assert view["integrity"]["verified"] and view["status"] == "cancelled"
    assert view["status_reason"] is None and view["status_reason_erased"]
    changes = view["history"][1:]
    assert [(h["reason"], h["reason_erased"]) for h in changes] == [(None, True), (None, True)]
    history = flow.client.get(
        f"/api/v1/candidates/{person['id']}/certifications", headers=flow.admin
    ).get_json()
    (certificate,) = history["certificates"]
    assert certificate["status_reason"] is None and certificate["status_reason_erased"]
    french = flow.client.get(f"/v/{code}?t={token}&lang=fr", headers=flow.admin)
    assert "motif effacé" in french.get_data(as_text=True)
    english = flow.client.get(f"/v/{code}?t={token}&lang=en", headers=flow.admin).get_data(
        as_text=True
    )
    assert "reason erased" in english


def test_an_erasure_reason_comes_from_the_closed_list(flow: Flow, admin) -> None:
    created = register(flow.client, flow.platform, first_name=FIRST, last_name=LAST)
    before = list(flow.app.extensions["ledger"].ledger.recorder.iter_envelopes())
    response = flow.client.post(
        f"/api/v1/subjects/{created['subject']}/erasure",
        json={"reason": f"demande de {FIRST} {LAST} par courrier"},
        headers=admin,
    )
    assert_problem(response, 422, "validation-failed")
    ledger = flow.app.extensions["ledger"].ledger
    assert list(ledger.recorder.iter_envelopes()) == before
    assert not ledger.vault.is_erased(created["subject"])


def test_shared_text_goes_with_any_of_its_people(ledger) -> None:
    vault = ledger.vault
    alice, bob = vault.seal("alice", "A")["subject"], vault.seal("bob", "B")["subject"]
    shared = vault.seal_shared("session:1", [alice, bob], "Alice and Bob were late")
    assert vault.open_or_none(shared) == "Alice and Bob were late"
    assert vault.erase(bob) == "erased"
    assert vault.open_or_none(shared) is None
    assert vault.open_or_none(vault.seal("alice", "still here")) == "still here"
    born_erased = vault.seal_shared("session:2", [alice, bob], "late again")
    assert vault.open_or_none(born_erased) is None
    assert vault.open_or_none(vault.seal(bob, "about Bob, after his erasure")) is None


def test_request_lines_keep_no_query_value_and_no_personal_segment(app) -> None:
    """Route words (learnt from the app), UUIDs and numbers stay; the rest is `*`."""
    line = redact_request_line("GET /v/P-BCD23467?t=eyJh.eyJmbiI6.c2ln&lang=fr HTTP/1.1")
    assert line == "GET /v/*?t=*&lang=fr HTTP/1.1"
    assert redact_target("/api/v1/events?after=12&limit=100") == "/api/v1/events?after=12&limit=100"
    assert redact_target("/lookup?code=Jean%20Dupont&lang=Jean") == "/lookup?code=*&lang=*"
    assert redact_target("/Jean/Dupont?Dupont=1") == "/*/*?*"
    assert redact_request_line("DUPONT /v/1 JEAN/2") == "* /v/* *"
    assert redact_target("http://[Dupont/x") == "*"
    subject = "0b6c9a76-8f4e-4a7a-9d0b-1a2b3c4d5e6f"
    assert (
        redact_target(f"/api/v1/subjects/{subject}/erasure")
        == f"/api/v1/subjects/{subject}/erasure"
    )
    record = logging.LogRecord(
        "werkzeug", 20, "", 0, '"%s" %s %s', ("GET /v/Dupont?t=x HTTP/1.1", 404, 9), None
    )
    assert (
        RedactingFilter().filter(record) and record.getMessage() == '"GET /v/*?t=* HTTP/1.1" 404 9'
    )


def test_an_operator_decision_reason_is_sealed_under_the_candidate(flow: Flow, admin) -> None:
    candidate, session, course = flow.started()
    flow.answer_all(course)
    flow.finalize(session)
    flow.post(f"/api/v1/sessions/{session}/review", {}, admin)
    reason = f"{FIRST} {LAST} consultait son téléphone"
    body = {"decision": "fraud", "reason": reason}
    flow.post(f"/api/v1/courses/{course['id']}/decision", body, admin)
    ledger = flow.app.extensions["ledger"].ledger
    (scored,) = [
        e for e in ledger.recorder.iter_envelopes_of_type("certification.CourseScored")
        if e.data["basis"] == "operator"
    ]  # fmt: skip
    assert (
        LAST not in scored.to_json_line()
        and ledger.vault.open_or_none(scored.data["reason"]) == reason
    )
    subject = flow.client.get(f"/api/v1/candidates/{candidate}/profile", headers=flow.platform)
    ledger.vault.erase(subject.get_json()["subject"])
    assert ledger.vault.open_or_none(scored.data["reason"]) is None


def test_gunicorn_logs_redact_targets_referers_and_bad_request_lines(app, capsys) -> None:
    from gunicorn.config import Config as GunicornConfig

    from ledger.server import RedactingLogger

    cfg = GunicornConfig()
    cfg.set("accesslog", "-")
    logger = RedactingLogger(cfg)
    environ = {
        "REQUEST_METHOD": "GET", "RAW_URI": f"/v/{quote(LAST)}?t=abc.def.ghi&lang=en",
        "PATH_INFO": f"/v/{LAST}", "QUERY_STRING": "t=abc.def.ghi&lang=en", "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_REFERER": f"https://example.org/lookup?code={quote(FIRST)}", "REMOTE_ADDR": "127.0.0.1",
    }  # fmt: skip

    class Response:
        status, sent, headers = "200 OK", 10, [("Content-Type", "text/html")]

    class Request:
        headers = [("REFERER", environ["HTTP_REFERER"]), ("COOKIE", f"name={LAST}")]

    atoms = logger.atoms(Response(), Request(), environ, timedelta(0))
    assert atoms["r"] == "GET /v/*?t=*&lang=en HTTP/1.1" and atoms["q"] == "t=*&lang=en"
    assert atoms["U"] == "/v/*" and atoms["f"] == "/lookup?code=*"
    assert LAST not in repr(atoms) and "abc.def" not in repr(atoms)
    logger.warning(f"Invalid request from ip=1.2.3.4: Invalid HTTP Version: 'GET /v/{LAST} HTTP/9'")
    logger.exception("Error handling request %s %s", "GET", f"/v/{LAST}?t=abc")
    logged = capsys.readouterr()
    assert LAST not in logged.err + logged.out and "ip=1.2.3.4" in logged.err


def test_a_purge_kept_waiting_by_a_reader_is_logged_and_done_by_the_next_one(
    ledger, caplog, monkeypatch
) -> None:
    monkeypatch.setattr("ledger.store.db.PURGE_WAIT_MS", 300)
    vault = ledger.vault
    first, second = vault.seal("first", 1)["subject"], vault.seal("second", 2)["subject"]
    key = _wrapped_key(ledger, first)
    reading, done = threading.Event(), threading.Event()

    def long_reader() -> None:
        with ledger.db.read() as cur:
            cur.execute("SELECT count(*) FROM subject_keys")
            cur.fetchone()
            reading.set()
            done.wait(30)

    reader = threading.Thread(target=long_reader)
    reader.start()
    reading.wait(30)
    with caplog.at_level(logging.WARNING, "ledger.subjects"):
        assert vault.erase(first) == "erased"  # erased at once; the purge has to wait
    done.set()
    reader.join()
    assert "until the next purge" in caplog.text
    assert vault.erase(second) == "erased"
    assert key not in _raw_storage(ledger)


def test_a_clear_text_reason_of_an_older_event_is_still_shown(flow: Flow, admin) -> None:
    """Events written before reasons were sealed keep reading, and keep passing the checks."""
    _, session, course = flow.started()
    flow.answer_all(course)
    flow.finalize(session)
    (code,) = flow.publish(session)
    service = flow.app.extensions["ledger"].certification
    certificate = service.certificate(code)
    certificate.rescore(
        "ancien motif", "2026-01-02", certificate.competences, 400,
        rules="1", cause="late-issue-report",
    )  # fmt: skip
    certificate.cancel("ancienne annulation", "2026-01-03")
    flow.app.extensions["ledger"].ledger.save(certificate)
    view = flow.client.get(f"/api/v1/certificates/{code}", headers=admin).get_json()
    assert view["integrity"]["verified"] and view["status"] == "cancelled"
    assert view["status_reason"] == "ancienne annulation" and not view["status_reason_erased"]
    assert [h.get("reason") for h in view["history"]] == [
        None, "ancien motif", "ancienne annulation"
    ]  # fmt: skip
    page = flow.client.get(f"/v/{code}").get_data(as_text=True)
    assert "ancien motif" not in page and "ancienne annulation" not in page  # categories
    operator = flow.client.get(f"/v/{code}", headers=flow.admin).get_data(as_text=True)
    assert "ancienne annulation" in operator and "autre motif" in operator


def test_a_rescoring_that_cancels_seals_its_reason_too(flow: Flow, admin) -> None:
    candidate, session, course = flow.started()
    half = len(course["challenges"]) // 2  # validated at 50%; without them too few remain
    flow.answer_all(course, wrong=half)
    flow.finalize(session)
    (code,) = flow.publish(session)
    wrong = [c["challenge"] for c in course["challenges"][:half]]  # reports keep correct ones
    body = {"neutralize": wrong, "reason": f"{LAST} : questions faussées"}
    result = flow.post(f"/api/v1/certificates/{code}/rescoring", body, admin)["result"]
    view = flow.client.get(f"/api/v1/certificates/{code}", headers=admin).get_json()
    assert result["status"] != "validated" and view["status"] == "cancelled"
    assert view["status_reason"] == f"rescored as {result['status']}: {body['reason']}"
    ledger = flow.app.extensions["ledger"].ledger
    (cancelled,) = ledger.recorder.iter_envelopes_of_type("certification.CertificateCancelled")
    assert LAST not in cancelled.to_json_line()
    subject = flow.client.get(f"/api/v1/candidates/{candidate}/profile", headers=flow.platform)
    erasure = {"reason": "data-subject-request"}
    flow.post(f"/api/v1/subjects/{subject.get_json()['subject']}/erasure", erasure, admin)
    view = flow.client.get(f"/api/v1/certificates/{code}", headers=admin).get_json()
    assert view["integrity"]["verified"] and view["status_reason"] is None
