"""Checking an attestation PDF on the verify site and through the API, on both backends."""

from __future__ import annotations

import io
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ledger.attestation import ca, signing
from ledger.attestation.pdf import render
from ledger.attestation.service import content, verified
from ledger.config import Config
from ledger.domain import clock
from ledger.services.attestation_check import certificate_finding, check_pdf, logged_cas
from tests.certification_flow import Flow
from tests.test_attestation import _holder, _pdf

PROBLEM = "application/problem+json"
CHECK = "/api/v1/attestations/check"


@pytest.fixture
def flow(app, client, admin) -> Flow:
    return Flow(app, client, admin)


def _check(client: Any, pdf: bytes) -> dict[str, Any]:
    response = client.post(CHECK, data=pdf, content_type="application/pdf")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert "X-RateLimit-Limit" in response.headers
    return response.get_json()


def _failed(report: dict[str, Any]) -> dict[str, str]:
    return {
        name: report[name]["reason"]
        for name in ("signature", "chain", "qr", "certificate")
        if not report[name]["ok"]
    }


def _altered(pdf: bytes) -> bytes:
    data = bytearray(pdf)
    data[len(data) // 4] ^= 0x01
    return bytes(data)


def _signed_by_another_ca(app: Any, code: str, tmp_path: Path) -> bytes:
    """The same page, signed by a CA made here and never logged by the ledger."""
    st = app.extensions["ledger"]
    st.fresh()
    page = render(content(st.ledger, verified(st.ledger, st.referential, code)), "fr")
    other = Config.from_env(keys_dir=tmp_path / "other")
    ca.ensure_files(other)
    return signing.sign(page, ca.load(other))


def test_a_genuine_pdf_passes_every_check(flow: Flow, app, client) -> None:
    candidate, code, _ = flow.certified()
    pdf = _pdf(client, code, _holder(flow, candidate))
    report = _check(client, pdf)
    assert report["ok"] is True and _failed(report) == {}
    assert (report["code"], report["status"]) == (code, "valid")
    assert report["link"].startswith(f"/v/{code}?t=")
    logged = logged_cas(app.extensions["ledger"].ledger)
    assert logged[report["chain"]["ca_fingerprint"]] == report["chain"]["ca_seq"]
    assert "holder" not in str(report) and "Lefèvre" not in str(report)  # nothing personal
    multipart = client.post(
        CHECK, data={"file": (io.BytesIO(pdf), "a.pdf", "application/pdf")},
        content_type="multipart/form-data",
    )  # fmt: skip
    assert multipart.status_code == 200 and multipart.get_json()["ok"] is True


def test_a_pdf_changed_after_signing_is_reported_altered(flow: Flow, client) -> None:
    candidate, code, _ = flow.certified()
    report = _check(client, _altered(_pdf(client, code, _holder(flow, candidate))))
    assert report["ok"] is False
    assert _failed(report) == {"signature": "altered"}  # the chain is judged apart
    assert "changed after it was signed" in report["signature"]["detail"]


def test_a_pdf_signed_under_another_ca_fails_the_chain(
    flow: Flow, app, client, tmp_path: Path
) -> None:
    _, code, _ = flow.certified()
    report = _check(client, _signed_by_another_ca(app, code, tmp_path))
    assert report["signature"]["ok"] is True  # intact, but by whom?
    assert _failed(report) == {"chain": "ca-not-published"}
    assert "not one this ledger published" in report["chain"]["detail"]


def test_an_unsigned_pdf_has_no_signature_to_follow(flow: Flow, app, client) -> None:
    _, code, _ = flow.certified()
    st = app.extensions["ledger"]
    st.fresh()
    page = render(content(st.ledger, verified(st.ledger, st.referential, code)), "en")
    report = _check(client, page)
    assert _failed(report) == {"signature": "signature-count", "chain": "no-signature"}
    assert report["status"] == "valid" and report["ok"] is False  # the QR alone is not enough


def test_a_ca_event_that_no_longer_verifies_trusts_no_ca(flow: Flow, app, client) -> None:
    """The database is untrusted: the CA counts only through its signed, verifying event."""
    candidate, code, _ = flow.certified()
    pdf = _pdf(client, code, _holder(flow, candidate))
    ledger = app.extensions["ledger"].ledger
    (seq,) = ca.published_fingerprints(ledger.recorder).values()
    assert seq in logged_cas(ledger).values()
    with ledger.db.write() as cur:
        cur.execute("UPDATE ledger_events SET data = replace(data, 'CRCN', 'CRCX') WHERE seq = ?",
                    (seq,))  # fmt: skip
    assert ca.published_fingerprints(ledger.recorder) and not logged_cas(ledger)
    report = check_pdf(ledger, pdf, app.extensions["ledger"].views.get)
    assert report.signature.ok and report.chain.reason == "ca-not-published"


def test_cancelled_afterwards_keeps_a_valid_signature_but_says_cancelled(
    flow: Flow, client, admin
) -> None:
    candidate, code, _ = flow.certified()
    pdf = _pdf(client, code, _holder(flow, candidate))
    flow.post(f"/api/v1/certificates/{code}/cancellation", {"reason": "fraude avérée"}, admin)
    report = _check(client, pdf)
    assert _failed(report) == {"certificate": "cancelled"}
    assert report["status"] == "cancelled" and report["ok"] is False


def test_rescored_since_the_pdf_was_made(flow: Flow, client, admin) -> None:
    """Rescoring may leave pix and levels as they were: the log's time tells it came later."""
    candidate, session, course = flow.started()
    flow.answer_all(course, wrong=1)
    flow.finalize(session)
    (code,) = flow.publish(session)
    pdf = _pdf(client, code, _holder(flow, candidate))
    wrong = [course["challenges"][0]["challenge"]]  # a late report neutralizes a wrong answer
    with clock.frozen_at(datetime.now(UTC) + timedelta(seconds=1)):  # a later second, surely
        flow.post(f"/api/v1/certificates/{code}/rescoring",
                  {"neutralize": wrong, "reason": "late issue report"}, admin)  # fmt: skip
    report = _check(client, pdf)
    assert _failed(report) == {"certificate": "rescored"} and report["status"] == "rescored"
    assert "rescored since this PDF was made" in report["certificate"]["detail"]
    time.sleep(2.1)  # past the rescoring's second: a new attestation shows the current state
    fresh = _check(client, _pdf(client, code, _holder(flow, candidate)))
    assert fresh["ok"] is True and fresh["status"] == "valid"


def test_results_that_differ_from_the_ledger_read_rescored(flow: Flow, app, client) -> None:
    """Results are compared too: a token stating other pix or levels is outdated."""
    candidate, code, _ = flow.certified()
    token = _check(client, _pdf(client, code, _holder(flow, candidate)))["link"].split("?t=")[1]
    st = app.extensions["ledger"]
    view = st.views.get(code)
    assert certificate_finding(st.ledger, view, token).ok
    changed = {**view, "pix_score": view["pix_score"] + 8}
    assert certificate_finding(st.ledger, changed, token).reason == "rescored"
    assert certificate_finding(st.ledger, None, token).reason == "unknown"


def test_what_is_not_a_pdf_is_refused_with_a_problem(client) -> None:
    cases = [
        (client.post(CHECK, data=b"hello", content_type="text/plain"), 415),
        (client.post(CHECK, data=b"GIF89a...", content_type="application/pdf"), 422),
        (client.post(CHECK, data=b"%PDF-1.7 nonsense", content_type="application/pdf"), 422),
        (client.post(CHECK, data={"other": "x"}, content_type="multipart/form-data"), 422),
        (client.post(CHECK, data={"file": (io.BytesIO(b"PK\x03\x04"), "a.pdf")},
                     content_type="multipart/form-data"), 422),
    ]  # fmt: skip
    for response, status in cases:
        assert response.status_code == status, response.get_data(as_text=True)
        assert response.mimetype == PROBLEM
    assert cases[1][0].get_json()["type"] == "/problems/not-a-pdf"


def test_a_pdf_beyond_the_checks_limits_is_422_and_the_server_lives_on(
    flow: Flow, client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The upload is parsed in a limited child: a PDF that needs too much is refused there."""
    from ledger.services import pdf_sandbox

    candidate, code, _ = flow.certified()
    pdf = _pdf(client, code, _holder(flow, candidate))
    monkeypatch.setattr(pdf_sandbox, "MEMORY_BYTES", 32 << 20)  # less than parsing needs
    refused = client.post(CHECK, data=pdf, content_type="application/pdf")
    assert refused.status_code == 422 and refused.mimetype == PROBLEM
    assert "too complex" in refused.get_json()["detail"]
    page = client.post(
        "/scan?lang=en",
        data={"file": (io.BytesIO(pdf), "attestation.pdf", "application/pdf")},
        content_type="multipart/form-data",
    )
    assert page.status_code == 422 and "too large or too complex" in page.get_data(as_text=True)
    monkeypatch.undo()
    assert _check(client, pdf)["ok"] is True  # the serving process was never at risk


def test_an_oversize_upload_is_413(app, client) -> None:
    limit = app.extensions["ledger"].config.max_upload_bytes
    big = b"%PDF-1.7\n" + b"0" * limit
    response = client.post(CHECK, data=big, content_type="application/pdf")
    assert response.status_code == 413 and response.mimetype == PROBLEM
    assert str(limit) in response.get_json()["detail"]


def test_the_endpoint_is_in_the_openapi_document(client) -> None:
    spec = client.get("/api/v1/openapi.json").get_json()
    operation = spec["paths"][CHECK]["post"]
    assert set(operation["requestBody"]["content"]) == {"application/pdf", "multipart/form-data"}
    assert {"200", "413", "415", "422", "429"} <= set(operation["responses"])
    assert operation.get("security") == []


def _upload(client: Any, pdf: bytes, lang: str) -> str:
    response = client.post(
        f"/scan?lang={lang}",
        data={"file": (io.BytesIO(pdf), "attestation.pdf", "application/pdf")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 200 and response.mimetype == "text/html"
    return response.get_data(as_text=True)


def test_the_scan_page_shows_the_checks_in_french_and_english(flow: Flow, client) -> None:
    candidate, code, _ = flow.certified()
    pdf = _pdf(client, code, _holder(flow, candidate))
    french = _upload(client, pdf, "fr")
    assert "Attestation authentique, certificat valide." in french
    assert "le document n&#39;a pas été modifié depuis sa signature" in french
    assert f"/v/{code}?t=" in french and "✗" not in french
    english = _upload(client, _altered(pdf), "en")
    assert "This attestation cannot be taken as genuine" in english
    assert "The document was changed after it was signed." in english
    assert "rely on its page, not on this PDF&#39;s text" in english
    assert "Lefèvre" not in french + english  # no personal data on the result


def test_the_scan_page_says_cancelled_in_english(flow: Flow, client, admin) -> None:
    candidate, code, _ = flow.certified()
    pdf = _pdf(client, code, _holder(flow, candidate))
    flow.post(f"/api/v1/certificates/{code}/cancellation", {"reason": "fraude"}, admin)
    english = _upload(client, pdf, "en")
    assert "Genuine attestation, but the certificate is no longer as it states" in english
    assert "Cancelled since this attestation was issued." in english


def test_checks_count_in_the_upload_rate_limit(app, client) -> None:
    """Public, so limited per client like the page's uploads: past the limit, 429."""
    limit = int(app.extensions["ledger"].config.upload_rate_limit.split("/")[0])
    for _ in range(limit):
        assert client.post(CHECK, data=b"x", content_type="text/plain").status_code == 415
    refused = client.post(CHECK, data=b"x", content_type="text/plain")
    assert refused.status_code == 429 and refused.mimetype == PROBLEM
    assert int(refused.headers["Retry-After"]) >= 1
