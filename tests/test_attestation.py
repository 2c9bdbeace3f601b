"""Attestation PDFs end to end: content, QR read from the rendered page, PAdES, who downloads."""

from __future__ import annotations

import io
import subprocess
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import zxingcpp
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from PIL import Image
from pyhanko.sign.timestamps import DummyTimeStamper

from ledger import crypto
from ledger.attestation import ca, signing
from ledger.attestation.pdf import MIN_MODULE_MM, Attestation, qr_side, render
from ledger.audit.export import export_bundle
from ledger.cli import main
from ledger.config import Config, ConfigError
from ledger.domain.referential import load_referential
from ledger.qr_image import qr_matrix
from ledger.qr_token import parse_qr_url, verify_token
from ledger.services.signed_certificate import certificate_events
from ledger.services.verification import verified_certificate
from ledger.store.application import Ledger
from ledger.store.tokens import Principal, TokenError, check_scopes
from tests.certification_flow import Flow
from tests.conftest import initialized, make_token

PROBLEM = "application/problem+json"


@pytest.fixture
def flow(app, client, admin) -> Flow:
    return Flow(app, client, admin)


@pytest.fixture
def certified(flow: Flow) -> tuple[str, str]:
    candidate, code, _ = flow.certified()
    return candidate, code


def _holder(flow: Flow, candidate: str) -> dict[str, str]:
    body = flow.post(f"/api/v1/candidates/{candidate}/tokens", {}, flow.platform)
    assert body["scopes"] == [f"candidate:{candidate}"]
    return {"Authorization": f"Bearer {body['token']}"}


def _staff_of_another_centre(flow: Flow, admin: dict[str, str]) -> dict[str, str]:
    centre = flow.post("/api/v1/centres", {"name": "Collège Anne Frank", "kind": "school",
                                           "city": "Lyon"}, admin)  # fmt: skip
    token = flow.post(f"/api/v1/centres/{centre['id']}/tokens", {}, admin)["token"]
    return {"Authorization": f"Bearer {token}"}


def _pdf(client: Any, code: str, headers: dict[str, str], lang: str = "fr") -> bytes:
    response = client.get(
        f"/api/v1/certificates/{code}/attestation.pdf?lang={lang}", headers=headers
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/pdf"
    assert response.headers["Cache-Control"] == "no-store"
    return response.get_data()


def _text(pdf: bytes, tmp_path: Path) -> str:
    path = tmp_path / "a.pdf"
    path.write_bytes(pdf)
    out = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, check=True)
    return out.stdout.decode("utf-8")


def _pdfsig(pdf: bytes, tmp_path: Path, nss: Path | None = None) -> str:
    path = tmp_path / "signed.pdf"
    path.write_bytes(pdf)
    args = ["pdfsig", *(["-nssdir", f"sql:{nss}"] if nss else []), str(path)]
    return subprocess.run(args, capture_output=True, text=True).stdout


def _nss_trusting(ca_pem: bytes, tmp_path: Path) -> Path:
    nss = tmp_path / "nss"
    nss.mkdir()
    (tmp_path / "ca.pem").write_bytes(ca_pem)
    subprocess.run(["certutil", "-d", f"sql:{nss}", "-N", "--empty-password"], check=True)
    subprocess.run(
        ["certutil", "-A", "-d", f"sql:{nss}", "-n", "ca", "-t", "CT,C,C", "-i",
         str(tmp_path / "ca.pem")],
        check=True,
    )  # fmt: skip
    return nss


def _qr_from_rendered_page(pdf: bytes, tmp_path: Path) -> str:
    (tmp_path / "page.pdf").write_bytes(pdf)
    subprocess.run(
        ["pdftoppm", "-r", "150", "-png", "-singlefile", str(tmp_path / "page.pdf"),
         str(tmp_path / "page")],
        check=True,
    )  # fmt: skip
    image = Image.open(tmp_path / "page.png")
    found = [
        r.text for r in zxingcpp.read_barcodes(image) if r.format == zxingcpp.BarcodeFormat.QRCode
    ]
    assert len(found) == 1, found
    return found[0]


def test_the_holder_downloads_a_signed_attestation_that_scans_and_validates(
    flow: Flow, client, certified, tmp_path: Path
) -> None:
    candidate, code = certified
    pdf = _pdf(client, code, _holder(flow, candidate))
    text = _text(pdf, tmp_path)
    for expected in ("ATTESTATION DE CERTIFICATION", "Camille LEFÈVRE", "14 mars 2007 à Rennes",
                     "Lycée Victor Hugo (Rennes)", "24 novembre 2026", "1er décembre 2026",
                     "jusqu'au 1er décembre 2029", code, "sur 640 atteignables",
                     "3 sur 5", "Mener une recherche et une veille d'information"):  # fmt: skip
        assert expected in text, expected
    view = client.get(f"/api/v1/certificates/{code}").get_json()
    assert f"{view['pix_score']} pix sur 640" in text
    assert f"événement n° {view['proof']['seq']}" in text
    assert view["proof"]["hash"][:32] in text and view["proof"]["hash"][32:] in text

    url = _qr_from_rendered_page(pdf, tmp_path)
    public_url = client.application.extensions["ledger"].config.public_url
    assert url.startswith(f"{public_url}/v/{code}?t=")
    jwks = client.get("/.well-known/jwks.json").get_json()
    claims = verify_token(parse_qr_url(url)[1], jwks).to_payload()
    assert (claims["c"], claims["ln"], claims["h"]) == (code, "Lefèvre", view["proof"]["hash"])
    assert client.get(url.replace(public_url, "")).status_code == 200

    ca_pem = client.get("/.well-known/attestation-ca.pem").get_data()
    assert "Signature is Valid." in _pdfsig(pdf, tmp_path)
    trusted = _pdfsig(pdf, tmp_path, _nss_trusting(ca_pem, tmp_path))
    assert "Signature is Valid." in trusted and "Certificate is Trusted." in trusted
    assert signing.validate(pdf, ca_pem).ok

    altered = bytearray(pdf)
    altered[len(pdf) // 4] ^= 0x01  # one byte inside the signed range
    assert "Signature is Valid." not in _pdfsig(bytes(altered), tmp_path)
    report = signing.validate(bytes(altered), ca_pem)
    assert not report.ok and "changed after it was signed" in report.reason


def test_the_qr_code_prints_at_least_half_a_millimetre_per_module() -> None:
    url = "https://verify.example.fr/v/P-2346789B?t=" + "x" * 400
    modules = len(qr_matrix(url))
    assert modules >= 89  # a long token URL: version 16 or more
    assert qr_side(modules) / 2.8346 / modules >= MIN_MODULE_MM  # points -> mm
    assert zxingcpp.read_barcode(Image.new("L", (1, 1))) is None  # the decoder itself is sane


def test_english_attestation_uses_digcomp_titles(flow: Flow, client, certified, tmp_path) -> None:
    candidate, code = certified
    text = _text(_pdf(client, code, _holder(flow, candidate), "en"), tmp_path)
    for expected in ("CERTIFICATE OF ACHIEVEMENT", "born on 14 March 2007 in Rennes",
                     "Browsing, searching and filtering", "Information and data literacy",
                     "3 out of 5", "out of 640 reachable"):  # fmt: skip
        assert expected in text, expected
    bad = client.get(
        f"/api/v1/certificates/{code}/attestation.pdf?lang=de", headers=_holder(flow, candidate)
    )
    assert bad.status_code in (400, 422) and bad.mimetype == PROBLEM


def test_the_ca_is_published_and_logged_once(flow: Flow, app, client, certified, auditor) -> None:
    candidate, code = certified
    holder = _holder(flow, candidate)
    _pdf(client, code, holder)
    _pdf(client, code, holder)
    pem = client.get("/.well-known/attestation-ca.pem")
    assert pem.status_code == 200 and pem.get_data().startswith(b"-----BEGIN CERTIFICATE-----")
    fingerprint = crypto.certificate_fingerprint(crypto.load_certificate(pem.get_data()))
    recorder = app.extensions["ledger"].ledger.recorder
    logged = recorder.iter_envelopes_of_type(ca.CA_PUBLISHED)
    assert [e.data["fingerprint"] for e in logged] == [fingerprint]
    assert ca.published_fingerprints(recorder) == {fingerprint: logged[0].seq}
    events = client.get("/api/v1/events?after=0&limit=10000", headers=auditor).get_data(
        as_text=True
    )
    assert fingerprint in events  # auditors see it, signed and chained like every event


def test_cancelled_is_gone_and_rescored_shows_its_current_state(
    flow: Flow, client, admin, tmp_path
) -> None:
    candidate, session, course = flow.started()
    flow.answer_all(course, wrong=1)
    flow.finalize(session)
    (code,) = flow.publish(session)
    holder = _holder(flow, candidate)
    challenge = course["challenges"][0]["challenge"]  # answered wrongly: the report neutralizes it
    flow.post(f"/api/v1/certificates/{code}/rescoring",
              {"neutralize": [challenge], "reason": "late issue report"}, admin)  # fmt: skip
    text = _text(_pdf(client, code, holder), tmp_path)
    view = client.get(f"/api/v1/certificates/{code}").get_json()
    assert "Résultat révisé le" in text and f"{view['pix_score']} pix sur 640" in text
    flow.post(f"/api/v1/certificates/{code}/cancellation", {"reason": "fraude avérée"}, admin)
    gone = client.get(f"/api/v1/certificates/{code}/attestation.pdf", headers=holder)
    assert gone.status_code == 410 and gone.mimetype == PROBLEM
    assert gone.get_json()["type"] == "/problems/certificate-cancelled"


def test_an_integrity_failure_gives_no_pdf(app, client, certified, admin) -> None:
    _, code = certified
    seq = certificate_events(app.extensions["ledger"].ledger.recorder, code)[0].seq
    with app.extensions["ledger"].ledger.db.write() as cur:
        cur.execute("UPDATE ledger_events SET data = replace(data, 'Rennes', 'Brest') WHERE seq = ?",
                    (seq,))  # fmt: skip
    response = client.get(f"/api/v1/certificates/{code}/attestation.pdf", headers=admin)
    assert response.status_code == 409 and response.mimetype == PROBLEM


def test_who_downloads_what(flow: Flow, app, client, admin, certified) -> None:
    candidate, code = certified
    url = f"/api/v1/certificates/{code}/attestation.pdf"
    holder = _holder(flow, candidate)
    other_candidate = _holder(flow, flow.eligible_candidate())
    other_centre = _staff_of_another_centre(flow, admin)
    for headers, status in (
        ({}, 401),
        ({"Authorization": "Bearer lt_nothere12345_" + "a" * 43}, 401),
        ({"Authorization": "Basic abc"}, 401),
        (flow.platform, 403),
        (make_token(app, "audit:read"), 403),
        (other_candidate, 403),
        (other_centre, 403),
    ):
        response = client.get(url, headers=headers)
        assert response.status_code == status, (headers, response.get_data(as_text=True))
        assert response.mimetype == PROBLEM
    for headers in (holder, flow.staff, admin):
        assert client.get(url, headers=headers).status_code == 200

    # a candidate token is for downloading, nothing else
    for method, path in (("get", f"/api/v1/candidates/{candidate}/certifications"),
                         ("get", "/api/v1/events"), ("post", "/api/v1/candidates"),
                         ("post", f"/api/v1/candidates/{candidate}/tokens")):  # fmt: skip
        response = getattr(client, method)(path, headers=holder, json={})
        assert response.status_code == 403 and response.mimetype == PROBLEM, path
    # only the platform creates candidate tokens, for candidates that exist
    for headers, status in ((flow.staff, 403), (holder, 403), (admin, 201)):
        response = client.post(f"/api/v1/candidates/{candidate}/tokens", json={}, headers=headers)
        assert response.status_code == status, headers
    missing = client.post("/api/v1/candidates/00000000-0000-4000-8000-000000000000/tokens",
                          json={}, headers=flow.platform)  # fmt: skip
    assert missing.status_code == 404 and missing.mimetype == PROBLEM
    unknown = client.get("/api/v1/certificates/P-22222222/attestation.pdf", headers=admin)
    assert unknown.status_code == 404 and unknown.mimetype == PROBLEM


def test_a_session_zips_its_attestations_for_its_centre(
    flow: Flow, app, client, admin, tmp_path: Path
) -> None:
    candidates = [flow.eligible_candidate() for _ in range(3)]
    session = flow.session()["id"]
    courses = []
    for candidate in candidates:
        flow.enrol(session, candidate)
        courses.append(flow.start(session, candidate))
    for course in courses:
        flow.answer_all(course)
    flow.finalize(session)
    codes = flow.publish(session)
    assert len(codes) == 3
    flow.post(f"/api/v1/certificates/{codes[0]}/cancellation", {"reason": "fraude"}, admin)
    url = f"/api/v1/sessions/{session}/attestations.zip"

    response = client.get(url, headers=flow.staff)
    assert response.status_code == 200 and response.mimetype == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.get_data()))
    names = sorted(archive.namelist())
    assert names == sorted(f"attestation-{c}-fr.pdf" for c in codes[1:])
    ca_pem = client.get("/.well-known/attestation-ca.pem").get_data()
    for name in names:
        pdf = archive.read(name)
        assert signing.validate(pdf, ca_pem).ok
        assert name.split("-", 1)[1][:10] in _text(pdf, tmp_path)
    assert client.get(url, headers=admin).status_code == 200

    holder = _holder(flow, candidates[1])
    other_staff = _staff_of_another_centre(flow, admin)
    for headers, status in (({}, 401), (holder, 403), (flow.platform, 403), (other_staff, 404)):
        refused = client.get(url, headers=headers)
        assert refused.status_code == status and refused.mimetype == PROBLEM


def test_configured_certificate_files_are_used_and_must_come_together(
    config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca.ensure_files(config)
    base = config.keys_dir / ca.DIRECTORY
    monkeypatch.setenv("LEDGER_ATTESTATION_CERT", str(base / ca.CERT))
    with pytest.raises(ConfigError, match="all of"):
        Config.from_env()
    monkeypatch.setenv("LEDGER_ATTESTATION_KEY", str(base / ca.KEY))
    monkeypatch.setenv("LEDGER_ATTESTATION_CA", str(base / ca.CA_CERT))
    configured = Config.from_env(keys_dir=tmp_path / "elsewhere")
    assert not ca.ensure_files(configured)  # nothing generated beside real certificates
    assert ca.load(configured).fingerprint == ca.load(config).fingerprint
    other = tmp_path / "other"
    ca.ensure_files(Config.from_env(keys_dir=other, attestation_cert=None, attestation_key=None,
                                    attestation_ca=None))  # fmt: skip
    monkeypatch.setenv("LEDGER_ATTESTATION_CA", str(other / ca.DIRECTORY / ca.CA_CERT))
    with pytest.raises(ca.AttestationKeyError, match="not issued by the CA"):
        ca.load(Config.from_env())
    assert ca.payload_problem({"fingerprint": "AB" * 32, "subject": "x"})
    assert ca.payload_problem({"fingerprint": "ab" * 32, "subject": "x\n"})
    assert not ca.payload_problem({"fingerprint": "ab" * 32, "subject": "CN=x"})


def test_verify_pdf_offline(flow: Flow, client, certified, tmp_path: Path) -> None:
    candidate, code = certified
    pdf = tmp_path / "attestation.pdf"
    pdf.write_bytes(_pdf(client, code, _holder(flow, candidate)))
    ca_file, jwks = tmp_path / "ca.pem", tmp_path / "jwks.json"
    ca_file.write_bytes(client.get("/.well-known/attestation-ca.pem").get_data())
    jwks.write_bytes(client.get("/.well-known/jwks.json").get_data())
    runner = CliRunner()

    def verify(*args: str) -> Any:
        return runner.invoke(main, ["verify-pdf", *args], catch_exceptions=False)

    good = verify(str(pdf), "--ca", str(ca_file), "--jwks", str(jwks))
    assert good.exit_code == 0 and good.output.startswith("VALID"), good.output
    assert f"QR token of {code} verified" in good.output
    altered = tmp_path / "altered.pdf"
    data = bytearray(pdf.read_bytes())
    data[len(data) // 4] ^= 0x01
    altered.write_bytes(bytes(data))
    bad = verify(str(altered), "--ca", str(ca_file))
    assert bad.exit_code == 1 and "changed after it was signed" in bad.stderr
    other = tmp_path / "other"
    ca.ensure_files(Config.from_env(keys_dir=other))
    foreign = verify(str(pdf), "--ca", str(other / ca.DIRECTORY / ca.CA_CERT))
    assert foreign.exit_code == 1 and "does not chain to the published" in foreign.stderr
    not_pdf = verify(str(jwks), "--ca", str(ca_file))
    assert not_pdf.exit_code == 1 and len(not_pdf.stderr.splitlines()) == 1
    missing = verify(str(tmp_path / "nothere.pdf"), "--ca", str(ca_file))
    assert missing.exit_code == 1 and "cannot read PDF" in missing.stderr
    ledger = flow.app.extensions["ledger"].ledger  # from an export, through the anchor only
    export_bundle(ledger, tmp_path / "bundle")
    anchor = ledger.trust_anchor().to_string()
    bundled = verify(str(pdf), "--bundle", str(tmp_path / "bundle"), "--trust-anchor", anchor)
    assert bundled.exit_code == 0 and f"QR token of {code} verified" in bundled.output
    (tmp_path / "bundle" / "attestation-ca.pem").write_bytes(
        (other / ca.DIRECTORY / ca.CA_CERT).read_bytes()
    )  # a CA the log never published, slipped into the bundle
    slipped = verify(str(pdf), "--bundle", str(tmp_path / "bundle"), "--trust-anchor", anchor)
    assert slipped.exit_code == 1 and "not logged by a signed" in slipped.stderr


def test_keys_init_creates_and_logs_the_ca_once(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEDGER_DATABASE_URL", database_url)
    monkeypatch.setenv("LEDGER_KEYS_DIR", str(tmp_path / "keys"))
    runner = CliRunner()
    first = runner.invoke(main, ["keys", "init"], catch_exceptions=False)
    again = runner.invoke(main, ["keys", "init"], catch_exceptions=False)
    assert first.exit_code == again.exit_code == 0
    line = [x for x in first.output.splitlines() if x.startswith("attestation CA")]
    assert line and line == [x for x in again.output.splitlines() if x.startswith("attestation CA")]
    files = sorted(p.name for p in (tmp_path / "keys" / ca.DIRECTORY).iterdir())
    assert files == ["ca.key", "ca.pem", "signer.key", "signer.pem"]
    assert all((tmp_path / "keys" / ca.DIRECTORY / f).stat().st_mode & 0o077 == 0 for f in files)
    audit = runner.invoke(main, ["audit", "verify"], catch_exceptions=False)
    assert audit.exit_code == 0, audit.output


def test_the_certificate_page_links_the_pdf_only_for_the_holder(
    flow: Flow, client, admin, certified
) -> None:
    candidate, code = certified
    link = f"/api/v1/certificates/{code}/attestation.pdf"
    holder = _holder(flow, candidate)
    other = _holder(flow, flow.eligible_candidate())
    anonymous = client.get(f"/v/{code}").get_data(as_text=True)
    for headers in ({}, other, flow.staff, admin, {"Authorization": "Bearer nonsense"}):
        page = client.get(f"/v/{code}", headers=headers)
        assert page.status_code == 200 and link not in page.get_data(as_text=True), headers
    page = client.get(f"/v/{code}", headers=holder)
    assert page.headers["Vary"] == "Authorization"
    assert f'href="{link}?lang=fr"' in page.get_data(as_text=True)
    assert "Télécharger l&#39;attestation" in page.get_data(as_text=True)
    assert client.get(f"/v/{code}").get_data(as_text=True) == anonymous  # the cache kept no link
    flow.post(f"/api/v1/certificates/{code}/cancellation", {"reason": "fraude"}, admin)
    assert link not in client.get(f"/v/{code}", headers=holder).get_data(as_text=True)


def test_the_audit_checks_the_logged_ca_and_the_bundle_carries_it(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEDGER_DATABASE_URL", database_url)
    monkeypatch.setenv("LEDGER_KEYS_DIR", str(tmp_path / "keys"))
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(main, list(args), catch_exceptions=False)

    init = run("init")
    assert init.exit_code == 0 and "attestation CA (SHA-256 " in init.output
    assert run("keys", "init").exit_code == 0
    bundle = tmp_path / "bundle"
    assert run("export", str(bundle)).exit_code == 0
    ca_pem = (tmp_path / "keys" / ca.DIRECTORY / ca.CA_CERT).read_bytes()
    assert (bundle / ca.CA_FILE).read_bytes() == ca_pem
    fingerprint = crypto.certificate_fingerprint(crypto.load_certificate(ca_pem))
    for source in ((), (str(bundle),)):
        ok = run("audit", "verify", *source)
        assert ok.exit_code == 0 and f"attestation CA {fingerprint[:16]}" in ok.output, ok.output

    other = tmp_path / "other"
    ca.ensure_files(Config.from_env(keys_dir=other))
    (bundle / ca.CA_FILE).write_bytes((other / ca.DIRECTORY / ca.CA_CERT).read_bytes())
    foreign = run("audit", "verify", str(bundle))
    assert (
        foreign.exit_code == 1 and "is not published in the log" in foreign.output + foreign.stderr
    )

    ledger = Ledger(Config.from_env())
    try:
        seq = ledger.recorder.record_fact(
            ca.ca_stream("zz"), ca.CA_PUBLISHED, {"fingerprint": "zz", "subject": "CN=x"}
        )
    finally:
        ledger.close()
    bad = run("audit", "verify")
    assert bad.exit_code == 1 and f"seq {seq}" in bad.output + bad.stderr
    assert "fingerprint is not 64 lowercase hex" in bad.output + bad.stderr


def test_an_erased_holder_gets_no_attestation(flow: Flow, app, client, admin, certified) -> None:
    candidate, code = certified
    holder = _holder(flow, candidate)
    st = app.extensions["ledger"]
    st.fresh()
    subject = verified_certificate(st.ledger, st.referential, code)[1]["subject"]
    flow.post(f"/api/v1/subjects/{subject}/erasure", {"reason": "data-subject-request"}, admin)
    for headers in (holder, admin):
        gone = client.get(f"/api/v1/certificates/{code}/attestation.pdf", headers=headers)
        assert gone.status_code == 410 and gone.get_json()["type"] == "/problems/holder-erased"


def test_missing_signing_files_are_a_503_not_a_500(app, client, admin, certified) -> None:
    _, code = certified
    config = app.extensions["ledger"].config
    for name in (ca.CERT, ca.KEY):
        (config.keys_dir / ca.DIRECTORY / name).unlink()
    for url in (f"/api/v1/certificates/{code}/attestation.pdf", "/.well-known/attestation-ca.pem"):
        response = client.get(url, headers=admin)
        assert response.status_code == 503 and response.mimetype == PROBLEM
        assert int(response.headers["Retry-After"]) > 0


def test_candidate_scopes_are_checked_like_centre_scopes() -> None:
    assert check_scopes(["candidate:9e5578a3-4f91-48d5-9850-d883ffb2b331"])
    for bad in ("candidate:", "candidate:*", "candidate:../x", "candidate:9E5578A3-4F91-48D5"):
        with pytest.raises(TokenError):
            check_scopes([bad])
    principal = Principal("t", "", frozenset({"candidate:9e5578a3-4f91-48d5-9850-d883ffb2b331"}))
    assert principal.has("candidate:*") and not principal.has("centre:*")
    assert not principal.has("events:append") and not principal.is_admin


def test_b_t_signature_with_a_timestamp_authority(tmp_path: Path) -> None:
    """With a TSA the signature carries an RFC 3161 timestamp (PAdES B-T) and still validates."""
    config = Config.from_env(keys_dir=tmp_path / "keys")
    ca.ensure_files(config)
    identity = ca.load(config)
    tsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)  # pyHanko's test TSA
    tsa_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "Test TSA")]))
        .issuer_name(identity.ca.subject)
        .public_key(tsa_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(identity.ca.not_valid_before_utc)
        .not_valid_after(identity.ca.not_valid_after_utc)
        .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.TIME_STAMPING]), True)
        .sign(_ca_key(config), hashes.SHA256())
    )
    stamper = DummyTimeStamper(signing._asn1_cert(tsa_cert), signing._asn1_key(tsa_key))
    page = render(_sample_attestation())
    timestamped = signing.sign(page, identity, stamper=stamper)
    assert signing.validate(timestamped, identity.ca_pem).ok
    status = _status(timestamped, identity)
    assert status.timestamp_validity is not None and status.timestamp_validity.intact
    assert _status(signing.sign(page, identity), identity).timestamp_validity is None  # B-B
    assert signing.timestamper("") is None and signing.timestamper("https://tsa.example/")


def _ca_key(config: Config) -> Any:
    return crypto.load_p256_key((config.keys_dir / ca.DIRECTORY / ca.CA_KEY).read_bytes())


def _status(pdf: bytes, identity: ca.AttestationIdentity) -> Any:
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext

    root = signing._asn1_cert(identity.ca)
    embedded = PdfFileReader(io.BytesIO(pdf)).embedded_signatures[0]
    context = ValidationContext(trust_roots=[root], allow_fetching=False)
    return validate_pdf_signature(embedded, context, ts_validation_context=context)


def _sample_attestation() -> Attestation:
    ref = load_referential()
    domains = [
        {"code": d.code, "title": d.title,
         "competences": [{"code": c.code, "title": c.title, "level": 2} for c in ref.competences_of(d.code)]}
        for d in ref.domains
    ]  # fmt: skip
    return Attestation(
        code="P-2346789B", first_name="Alex", last_name="Martin", birth_date="2001-05-02",
        birth_place="Nantes", centre="Centre test", centre_city="Nantes", passed_on="2026-11-24",
        issued_on="2026-12-01", valid_until="2029-12-01", pix_score=512, max_level=5,
        domains=domains, qr_url="https://verify.example.fr/v/P-2346789B?t=abc",
        verify_url="https://verify.example.fr/v/P-2346789B", issued_seq=7, issued_hash="0" * 64,
    )  # fmt: skip


def test_an_unreachable_timestamp_authority_is_a_503(config: Config, tmp_path: Path) -> None:
    """B-T configured but the TSA is down: a fault with Retry-After, not a 500 or an unstamped PDF."""
    from ledger.api import create_app

    initialized(config)
    closed = "http://127.0.0.1:9/"  # the discard port: nothing listens
    app = create_app(replace(config, tsa_url=closed))
    app.config["TESTING"] = True
    try:
        client = app.test_client()
        flow = Flow(app, client, make_token(app, "admin"))
        _, code, _ = flow.certified()
        for url in (f"/api/v1/certificates/{code}/attestation.pdf",
                    f"/api/v1/sessions/{_session_of(app, code)}/attestations.zip"):  # fmt: skip
            response = client.get(url, headers=flow.admin)
            assert response.status_code == 503 and response.mimetype == PROBLEM, url
            assert int(response.headers["Retry-After"]) > 0
        with pytest.raises(signing.TimestampUnavailable):
            signing.sign(
                render(_sample_attestation()), ca.load(config), stamper=signing.timestamper(closed)
            )
    finally:
        app.extensions["ledger"].ledger.close()


def _session_of(app: Any, code: str) -> str:
    st = app.extensions["ledger"]
    st.fresh()
    return verified_certificate(st.ledger, st.referential, code)[1]["session"]


def test_long_names_are_printed_in_full(tmp_path: Path) -> None:
    """An official document never cuts a name short: long ones shrink or wrap instead."""
    long = replace(
        _sample_attestation(), rescored_on="2027-01-15", first_name="Marie-Françoise-Élisabeth",
        last_name="de La Tour d'Auvergne-Lauraguais", birth_place="Saint-Rémy-de-Provence",
        centre="Lycée polyvalent régional Jean-Baptiste Poquelin de Molière",
        centre_city="Saint-Germain-en-Laye",
    )  # fmt: skip
    for lang in ("fr", "en"):
        text = " ".join(_text(render(long, lang), tmp_path).split())
        assert "Marie-Françoise-Élisabeth DE LA TOUR D'AUVERGNE-LAURAGUAIS" in text
        assert (
            "Lycée polyvalent régional Jean-Baptiste Poquelin de Molière (Saint-Germain-en-Laye)"
            in text
        )
        assert "…" not in text


def test_a_revision_appended_after_signing_is_reported(tmp_path: Path) -> None:
    """Changing the page by an incremental update leaves the signed bytes intact: still refused."""
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    config = Config.from_env(keys_dir=tmp_path / "keys")
    ca.ensure_files(config)
    identity = ca.load(config)
    signed = signing.sign(render(_sample_attestation()), identity)
    assert signing.validate(signed, identity.ca_pem).ok
    writer = IncrementalPdfFileWriter(io.BytesIO(signed))
    writer.root["/Lang"] = generic.TextStringObject("en")
    writer.update_root()
    out = io.BytesIO()
    writer.write(out)
    report = signing.validate(out.getvalue(), identity.ca_pem)
    assert not report.ok and "does not cover the whole file" in report.reason
    assert "Total document signed" not in _pdfsig(out.getvalue(), tmp_path)
