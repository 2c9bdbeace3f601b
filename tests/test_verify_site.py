"""The public verify site through HTTP: pages, tokens, scanning, limits, headers, offline CLI."""

from __future__ import annotations

import html as html_lib
import io
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from ledger.api import create_app
from ledger.cli import main
from ledger.config import Config
from ledger.domain import clock
from ledger.qr_image import decode_qr, qr_png
from tests.certification_flow import Flow
from tests.conftest import initialized, make_token

DAY_AFTER = datetime(2026, 12, 2, 10, tzinfo=UTC)


@pytest.fixture
def certified(app, client, admin):
    flow = Flow(app, client, admin)
    _, code, _ = flow.certified()
    return flow, code


def text(response) -> str:
    return html_lib.unescape(response.get_data(as_text=True))


def qr_text(client, code: str) -> str:
    png = client.get(f"/api/v1/certificates/{code}/qr.png")
    assert png.status_code == 200 and png.mimetype == "image/png"
    (text,) = decode_qr(png.data)
    return text


def token_of(client, code: str) -> str:
    return qr_text(client, code).split("?t=", 1)[1]


def upload(client, data: bytes, mimetype: str = "image/png", name: str = "photo.png"):
    return client.post(
        "/scan",
        data={"file": (io.BytesIO(data), name, mimetype)},
        content_type="multipart/form-data",
    )


def test_home_is_french_by_default_with_an_english_switch(client) -> None:
    page = client.get("/")
    assert (
        page.status_code == 200 and 'lang="fr"' in page.text and "Code de vérification" in page.text
    )
    english = client.get("/?lang=en")
    assert 'lang="en"' in english.text and "Verification code" in english.text
    assert "lang=en" in english.headers["Set-Cookie"]
    assert 'lang="en"' in client.get("/").text  # the cookie keeps the choice
    assert '<label for="code">' in page.text


def test_lookup_is_tolerant_and_redirects_to_the_canonical_page(certified, client) -> None:
    _, code = certified
    typed = code[2:].lower()[:4] + " " + code[2:].lower()[4:]
    response = client.get("/lookup", query_string={"code": typed})
    assert response.status_code == 303 and f"/v/{code}" in response.headers["Location"]
    bad = client.get("/lookup", query_string={"code": "hello"})
    assert bad.status_code == 400 and 'aria-invalid="true"' in bad.text


def test_certificate_page_shows_everything_with_its_proof(certified, client) -> None:
    _, code = certified
    with clock.frozen_at(DAY_AFTER):
        page = client.get(f"/v/{code}")
    html = page.text
    assert page.status_code == 200
    for expected in ("Camille Lefèvre", "14/03/2007", "Lycée Victor Hugo", "24/11/2026", "01/12/2026",
                     "01/12/2029", "Valide", "Niveau 3 sur 5", "non certifiée", "88</strong> pix",
                     "Information et données", "Environnement numérique", "✓ vérifié"):  # fmt: skip
        assert expected in html, expected
    assert re.search(r'<code class="hash">[0-9a-f]{64}</code>', html)
    assert html.count('class="ccode"') == 16
    scripts = re.findall(r"<script[^>]*>", html)  # no token: only the inclusion check
    assert scripts == ['<script src="/static/inclusion.js" defer>']


def test_unknown_codes_get_one_constant_page(certified, client) -> None:
    bodies = set()
    for probe in ("P-BBBBBBBB", "P-XXXXXXXX", "nonsense", "P-AEIOU"):
        response = client.get(f"/v/{probe}")
        assert response.status_code == 404
        bodies.add(response.text)
    assert len(bodies) == 1
    assert "Aucun certificat" in bodies.pop()


def test_lower_case_code_in_the_path_redirects(certified, client) -> None:
    _, code = certified
    response = client.get(f"/v/{code.lower()}")
    assert response.status_code == 301 and response.headers["Location"].endswith(f"/v/{code}")


def test_expired_cancelled_and_erased_states(certified, client, admin) -> None:
    flow, code = certified
    with clock.frozen_at(datetime(2030, 1, 5, tzinfo=UTC)):
        assert "Expiré depuis le 01/12/2029" in client.get(f"/v/{code}").text
    with clock.frozen_at(datetime(2027, 2, 1, 10, tzinfo=UTC)):
        flow.post(
            f"/api/v1/certificates/{code}/cancellation",
            {"reason": "salle non conforme", "category": "invalid-session"},
            admin,
        )
        html = client.get(f"/v/{code}").text
        private = client.get(f"/v/{code}", headers=admin).text
    assert "Annulé le 01/02/2027" in html and "session invalidée" in html
    assert "salle non conforme" not in html and "salle non conforme" in private
    subject = flow.client.get(
        "/api/v1/events?limit=10000", headers=make_token(flow.app, "audit:read")
    ).text
    subject = next(json.loads(line)["data"]["subject"] for line in subject.splitlines()
                   if '"candidates.CandidateRegistered"' in line)  # fmt: skip
    flow.post(f"/api/v1/subjects/{subject}/erasure", {"reason": "data-subject-request"}, admin)
    html = client.get(f"/v/{code}").text
    assert "Données personnelles effacées" in html and "Camille" not in html
    assert client.get(f"/api/v1/certificates/{code}/qr.png").status_code == 410


def test_token_states_current_altered_and_outdated(certified, client, admin) -> None:
    flow, code = certified
    token = token_of(client, code)
    assert "correspond à l'état actuel" in text(client.get(f"/v/{code}", query_string={"t": token}))
    head, payload, sig = token.split(".")
    altered = (
        head + "." + payload[:-3] + ("A" if payload[-3] != "A" else "B") + payload[-2:] + "." + sig
    )
    html = text(client.get(f"/v/{code}", query_string={"t": altered}))
    assert "n'est pas authentique" in html
    flow.post(f"/api/v1/certificates/{code}/cancellation", {"reason": "fraude"}, admin)
    html = text(client.get(f"/v/{code}", query_string={"t": token}))
    assert "le registre dit désormais autre chose" in html and "a été annulé" in html
    assert "verify.js" in html


def test_qr_codes_encode_the_verify_url_with_a_signed_token(certified, client, app) -> None:
    _, code = certified
    text = qr_text(client, code)
    assert text.startswith(f"{app.extensions['ledger'].config.public_url}/v/{code}?t=")
    assert len(text.encode()) < 700
    svg = client.get(f"/api/v1/certificates/{code}/qr.svg")
    assert svg.status_code == 200 and svg.mimetype == "image/svg+xml" and b"<svg" in svg.data
    assert client.get("/api/v1/certificates/P-BBBBBBBB/qr.png").status_code == 404


def test_scan_upload_follows_a_good_qr_code(certified, client) -> None:
    _, code = certified
    png = client.get(f"/api/v1/certificates/{code}/qr.png").data
    response = upload(client, png)
    assert response.status_code == 303 and f"/v/{code}?t=" in response.headers["Location"]


def test_scan_upload_explains_each_failure(certified, client, app) -> None:
    _, code = certified
    blank = io.BytesIO()
    Image.new("RGB", (400, 300), "white").save(blank, "PNG")
    assert "Aucun QR code" in upload(client, blank.getvalue()).text
    foreign = upload(client, qr_png("https://example.org/hello"))
    assert foreign.status_code == 422 and "ne provient pas de ce service" in text(foreign)
    token = token_of(client, code)
    head, payload, sig = token.split(".")
    forged_sig = sig[:10] + ("A" if sig[10] != "A" else "B") + sig[11:]
    public = app.extensions["ledger"].config.public_url
    forged = upload(client, qr_png(f"{public}/v/{code}?t={head}.{payload}.{forged_sig}"))
    assert forged.status_code == 422 and "signature invalide" in forged.text
    assert upload(client, b"%PDF-nonsense", "application/pdf", "x.pdf").status_code == 422
    assert upload(client, b"hello", "text/plain", "x.txt").status_code == 415
    empty = client.post("/scan", data={}, content_type="multipart/form-data")
    assert empty.status_code == 400


def test_upload_size_limit_is_an_html_page(tmp_path: Path, database_url: str) -> None:
    config = Config.from_env(
        database_url=database_url, keys_dir=tmp_path / "k", max_upload_bytes=1000
    )
    initialized(config)
    client = create_app(config).test_client()
    response = upload(client, b"\x89PNG" + b"0" * 5000)
    assert response.status_code == 413 and "trop volumineux" in response.text


def test_rate_limits_with_headers_and_retry_after(tmp_path: Path, database_url: str) -> None:
    config = Config.from_env(
        database_url=database_url, keys_dir=tmp_path / "k", lookup_rate_limit="3/minute"
    )
    initialized(config)
    client = create_app(config).test_client()
    first = client.get("/v/P-BBBBBBBB")
    assert (
        first.headers["X-RateLimit-Limit"] == "3" and first.headers["X-RateLimit-Remaining"] == "2"
    )
    client.get("/v/P-BBBBBBBB")
    client.get("/api/v1/certificates/P-BBBBBBBB")
    page = client.get("/v/P-BBBBBBBB")
    assert (
        page.status_code == 429
        and int(page.headers["Retry-After"]) > 0
        and "Trop de demandes" in page.text
    )
    api = client.get("/api/v1/certificates/P-BBBBBBBB")
    assert api.status_code == 429 and api.mimetype == "application/problem+json"
    assert client.get("/").status_code == 200  # the home page is not a lookup


def test_security_headers_everywhere(certified, client) -> None:
    _, code = certified
    for path in ("/", f"/v/{code}", "/scan", "/api/v1/certificates/" + code, "/v/P-BBBBBBBB"):
        headers = client.get(path).headers
        csp = headers["Content-Security-Policy"]
        assert (
            "script-src 'self'" in csp
            and "unsafe-inline" not in csp
            and "frame-ancestors 'none'" in csp
        )
        assert (
            headers["Referrer-Policy"] == "no-referrer"
            and headers["X-Content-Type-Options"] == "nosniff"
        )


def test_pages_carry_no_inline_script_or_style(certified, client) -> None:
    """The CSP forbids inline code: every script and stylesheet must be a served file."""
    _, code = certified
    token = token_of(client, code)
    for path in ("/", "/scan", f"/v/{code}?t={token}", "/api/v1/docs"):
        body = client.get(path).text
        scripts = re.findall(r"<script[^>]*>(.*?)</script>", body, re.S)
        assert all(not inline.strip() for inline in scripts) and "<style" not in body
        for asset in re.findall(r'(?:src|href)="(/[^"]+\.(?:css|js))"', body):
            assert client.get(asset).status_code == 200, asset


def test_verify_qr_offline_from_an_image_and_a_saved_jwks(
    certified, client, tmp_path: Path
) -> None:
    _, code = certified
    image = tmp_path / "attestation.png"
    image.write_bytes(client.get(f"/api/v1/certificates/{code}/qr.png").data)
    jwks = tmp_path / "jwks.json"
    jwks.write_text(client.get("/.well-known/jwks.json").text)
    result = CliRunner().invoke(main, ["verify-qr", str(image), "--jwks", str(jwks)])
    assert (
        result.exit_code == 0
        and f"certificate {code}" in result.stdout
        and "Camille" in result.stdout
    )
    token = token_of(client, code)
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    bad = CliRunner().invoke(main, ["verify-qr", tampered, "--jwks", str(jwks)])
    assert bad.exit_code == 1 and "INVALID" in bad.stderr
    missing = CliRunner().invoke(main, ["verify-qr", token, "--jwks", str(tmp_path / "nope.json")])
    assert missing.exit_code == 1 and "cannot read JWKS" in missing.stderr


def test_verify_qr_offline_with_keys_endorsed_from_the_anchor(
    certified, client, app, tmp_path: Path
) -> None:
    from ledger.audit.export import export_bundle
    from ledger.crypto import SigningKey
    from ledger.trust import Anchor

    _, code = certified
    ledger = app.extensions["ledger"].ledger
    export_bundle(ledger, tmp_path / "bundle")
    anchor = ledger.trust_anchor().to_string()
    token = token_of(client, code)
    args = ["verify-qr", token, "--bundle", str(tmp_path / "bundle")]
    result = CliRunner().invoke(main, [*args, "--trust-anchor", anchor])
    assert result.exit_code == 0 and f"certificate {code}" in result.stdout, result.output
    stranger = Anchor.of(SigningKey.generate().public_raw, ledger.config.log_origin).to_string()
    refused = CliRunner().invoke(main, [*args, "--trust-anchor", stranger])
    assert refused.exit_code == 1 and "key chain breaks at seq 1" in refused.stderr
    unanchored = CliRunner().invoke(main, args)
    assert unanchored.exit_code == 1 and "needs --trust-anchor" in unanchored.stderr


def test_another_nodes_cancellation_shows_within_the_freshness_window(
    certified, client, config
) -> None:
    """Two app instances on one database stand for two nodes: B cancels, A's cache follows."""
    import time

    _, code = certified
    assert "Valide" in client.get(f"/v/{code}").text
    other = create_app(config)
    admin = make_token(other, "admin")
    response = other.test_client().post(
        f"/api/v1/certificates/{code}/cancellation", json={"reason": "autre nœud"}, headers=admin
    )
    assert response.status_code == 201
    time.sleep(0.06)
    assert "Annulé" in client.get(f"/v/{code}").text
    other.extensions["ledger"].ledger.close()
