"""The verify site in a real browser: Playwright driving Debian's headless Chromium.

A live server runs the app on a free local port; every test keeps a screenshot
under test-artifacts/screenshots/ to look at.
"""

from __future__ import annotations

import shutil
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from werkzeug.serving import make_server

from ledger.api import create_app
from ledger.config import Config
from tests.certification_flow import Flow
from tests.conftest import initialized

pytestmark = pytest.mark.browser
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "screenshots"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A live server with one certified candidate, and the app to act on it."""
    work = tmp_path_factory.mktemp("site")
    server = make_server("127.0.0.1", 0, None, threaded=True)  # bound first, to know the port
    port = server.server_port
    server.server_close()
    config = Config.from_env(
        database_url=f"sqlite:///{work / 'ledger.db'}", keys_dir=work / "keys",
        public_url=f"http://127.0.0.1:{port}", lookup_rate_limit="10000/minute",
    )  # fmt: skip
    initialized(config)
    app = create_app(config)
    client = app.test_client()
    _, admin_token = app.extensions["ledger"].tokens.create(["admin"], "browser tests")
    flow = Flow(app, client, {"Authorization": f"Bearer {admin_token}"})
    _, code, _ = flow.certified()
    live = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=live.serve_forever, daemon=True)
    thread.start()
    yield {"url": config.public_url, "code": code, "flow": flow, "client": client, "work": work}
    live.shutdown()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield instance
        instance.close()


def shoot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_load_state("load")
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_type_a_code_and_see_valid(site, browser: Browser) -> None:
    page = browser.new_page(locale="fr-FR", viewport={"width": 1100, "height": 900})
    page.goto(site["url"] + "/")
    shoot(page, "01-home")
    code = site["code"]
    page.get_by_label("Code de vérification").fill(code[2:].lower())
    page.get_by_role("button", name="Vérifier").click()
    page.wait_for_url(f"**/v/{code}*")
    assert page.locator(".status.valid").inner_text().strip().endswith("Valide")
    assert page.locator(".proof dd.ok").count() == 2
    shoot(page, "02-certificate-valid")
    page.close()


def test_upload_the_qr_image_and_see_valid_checked_in_the_browser(site, browser: Browser) -> None:
    png = site["client"].get(f"/api/v1/certificates/{site['code']}/qr.png").data
    image = site["work"] / "qr.png"
    image.write_bytes(png)
    page = browser.new_page(locale="fr-FR", viewport={"width": 1100, "height": 900})
    page.goto(site["url"] + "/scan")
    shoot(page, "03-scan")
    page.set_input_files("#file", str(image))
    page.get_by_role("button", name="Vérifier le fichier").click()
    page.wait_for_url("**/v/*?t=*")
    assert "Valide" in page.locator(".status").inner_text()
    assert "correspond à l'état actuel" in page.locator(".token").inner_text()
    page.wait_for_selector("#browser-check[data-result=ok]", timeout=10_000)
    shoot(page, "04-certificate-qr-checked-in-browser")
    page.close()


def test_an_altered_token_is_flagged_by_server_and_browser(site, browser: Browser) -> None:
    token = site["client"].get(f"/api/v1/certificates/{site['code']}/qr.png")
    from ledger.qr_image import decode_qr

    text = decode_qr(token.data)[0]
    head, payload, sig = text.split("?t=")[1].split(".")
    altered_sig = ("B" if sig[0] != "B" else "C") + sig[1:]
    page = browser.new_page(locale="fr-FR")
    page.goto(f"{site['url']}/v/{site['code']}?t={head}.{payload}.{altered_sig}")
    assert "n'est pas authentique" in page.locator(".token").inner_text()
    page.wait_for_selector("#browser-check[data-result=ko]", timeout=10_000)
    shoot(page, "05-altered-token")
    page.close()


def test_page_works_with_javascript_off(site, browser: Browser) -> None:
    context = browser.new_context(java_script_enabled=False, viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.goto(site["url"] + "/?lang=en")
    page.get_by_label("Verification code").fill(site["code"])
    page.get_by_role("button", name="Check").click()
    assert "Valid" in page.locator(".status").inner_text()
    assert page.locator("text=Level 3 out of 5").count() == 1
    shoot(page, "06-no-javascript-phone-english")
    context.close()


def test_unknown_code_page(site, browser: Browser) -> None:
    page = browser.new_page(locale="fr-FR")
    response = page.goto(site["url"] + "/v/P-BBBBBBBB")
    assert response is not None and response.status == 404
    assert "Aucun certificat" in page.content()
    shoot(page, "07-unknown-code")
    page.close()


def _attestation(site: dict[str, Any], altered: bool) -> Path:
    """Fetched from the live server: pyHanko's event loop cannot run in Playwright's thread."""
    flow: Flow = site["flow"]
    url = f"{site['url']}/api/v1/certificates/{site['code']}/attestation.pdf"
    with urllib.request.urlopen(urllib.request.Request(url, headers=flow.admin)) as response:
        data = bytearray(response.read())
    if altered:
        data[len(data) // 4] ^= 0x01
    path = site["work"] / ("altered.pdf" if altered else "attestation.pdf")
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize(
    ("lang", "altered", "button", "verdict", "shot"),
    [
        ("fr", False, "Vérifier le fichier", "Attestation authentique", "09-scan-pdf-genuine-fr"),
        ("en", False, "Check the file", "Genuine attestation", "10-scan-pdf-genuine-en"),
        ("fr", True, "Vérifier le fichier", "ne peut pas être tenue", "11-scan-pdf-altered-fr"),
        ("en", True, "Check the file", "cannot be taken as genuine", "12-scan-pdf-altered-en"),
    ],
)
def test_upload_an_attestation_pdf_and_see_every_check(
    site, browser: Browser, lang: str, altered: bool, button: str, verdict: str, shot: str
) -> None:
    pdf = _attestation(site, altered)
    page = browser.new_page(locale="fr-FR", viewport={"width": 1100, "height": 900})
    page.goto(f"{site['url']}/scan?lang={lang}")
    page.set_input_files("#file", str(pdf))
    page.get_by_role("button", name=button).click()
    page.wait_for_selector("#pdf-report")
    assert verdict in page.locator("#pdf-report .status").inner_text()
    marks = page.locator("#pdf-report td.ko").count()
    shoot(page, shot)
    assert marks == (1 if altered else 0)
    page.close()


def test_a_rescored_certificate_says_what_changed_and_why(site, browser: Browser) -> None:
    flow: Flow = site["flow"]
    _, session, course = flow.started()
    flow.answer_all(course, wrong=2)
    flow.finalize(session)
    (code,) = flow.publish(session)
    wrong = course["challenges"][0]["challenge"]
    body = {"neutralize": [wrong], "reason": "image absente à l'écran"}
    flow.post(f"/api/v1/certificates/{code}/rescoring", body, flow.admin)
    page = browser.new_page(locale="fr-FR", viewport={"width": 1100, "height": 900})
    operator = browser.new_page(extra_http_headers=flow.admin)  # the free text is theirs
    for lang, words, reason in (
        ("fr", ("score révisé : signalement tardif", "Règles de calcul v2 —"), "Motif : image"),
        ("en", ("rescored: late report of an issue", "Scoring rules v2 —"), "Reason: image"),
    ):
        page.goto(f"{site['url']}/v/{code}?lang={lang}")
        history = page.locator(".history").inner_text()
        assert all(word in history for word in words) and "image" not in history, history
        assert " pix" in page.locator(".history .rescoring li").first.inner_text()
        shoot(page, f"09-rescored-history-{lang}")
        operator.goto(f"{site['url']}/v/{code}?lang={lang}")
        assert reason in operator.locator(".history").inner_text()
    operator.close()
    page.close()


def test_a_fraud_cancellation_reads_as_the_issuers_decision_publicly(
    site, browser: Browser
) -> None:
    """Next to the holder's name the public reads a neutral category; the operator the signed one."""
    flow: Flow = site["flow"]
    code = flow.certified()[1]
    body = {"reason": "copie constatée, PV 12", "category": "fraud"}
    flow.post(f"/api/v1/certificates/{code}/cancellation", body, flow.admin)
    operator = browser.new_page(extra_http_headers=flow.admin)
    for lang, neutral, detailed in (
        ("fr", "décision de l'émetteur", "fraude avérée"),
        ("en", "decision of the issuer", "confirmed fraud"),
    ):
        for width, (w, h) in WIDTHS.items():
            page = browser.new_page(viewport={"width": w, "height": h})
            page.goto(f"{site['url']}/v/{code}?lang={lang}")
            status = page.locator(".status").inner_text()
            assert neutral in status and detailed not in status and "PV 12" not in status
            shoot(page, f"10-cancelled-public-{lang}-{width}")
            page.close()
        operator.goto(f"{site['url']}/v/{code}?lang={lang}")
        status = operator.locator(".status").inner_text()
        assert detailed in status and "PV 12" in status
    operator.close()


def test_cancelled_certificate_with_an_older_valid_qr(site, browser: Browser) -> None:
    flow: Flow = site["flow"]
    from ledger.qr_image import decode_qr

    old_url = decode_qr(site["client"].get(f"/api/v1/certificates/{site['code']}/qr.png").data)[0]
    flow.post(
        f"/api/v1/certificates/{site['code']}/cancellation",
        {"reason": "fraude constatée"},
        flow.admin,
    )
    page = browser.new_page(locale="fr-FR", viewport={"width": 1100, "height": 900})
    page.goto(old_url)
    assert "Annulé" in page.locator(".status").inner_text()
    assert "dit désormais autre chose" in page.locator(".token").inner_text()
    page.wait_for_selector("#browser-check[data-result=ok]", timeout=10_000)
    shoot(page, "08-cancelled-with-old-qr")
    page.close()


@pytest.fixture(scope="module")
def valid(site) -> str:
    """A certificate of its own, still valid whatever the other tests cancel or rescore."""
    return site["flow"].certified()[1]


PAGES = {"home": "/", "scan": "/scan", "certificate": "/v/{code}", "unknown": "/v/P-BBBBBBBB",
         "bad-code": "/lookup?code=AEIOU", "legal": "/legal"}  # fmt: skip
WIDTHS = {"phone": (390, 844), "desktop": (1280, 800)}


@pytest.mark.parametrize("lang", ["fr", "en"])
@pytest.mark.parametrize("width", list(WIDTHS))
def test_every_page_in_both_languages_at_phone_and_desktop_widths(
    site, valid: str, browser: Browser, lang: str, width: str
) -> None:
    w, h = WIDTHS[width]
    context = browser.new_context(viewport={"width": w, "height": h}, locale=lang)
    page = context.new_page()
    for name, path in PAGES.items():
        page.goto(site["url"] + path.format(code=valid))  # no ?lang: the browser's locale
        assert page.locator("html").get_attribute("lang") == lang, name
        assert page.locator("footer a[href='/legal']").count() == 1, name
        shoot(page, f"site-{name}-{lang}-{width}")
    context.close()


def test_plain_statement_first_and_the_proof_behind_a_disclosure(
    site, valid: str, browser: Browser
) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 800}, locale="en-GB")
    page.goto(f"{site['url']}/v/{valid}")
    statement = page.locator("#statement").inner_text()
    assert statement.startswith("This certificate was issued by ") and "valid until" in statement
    assert not page.locator("#technical").evaluate("d => d.open")
    assert not page.locator(".proof").is_visible()
    page.wait_for_selector("#log-summary[class*=ok]", timeout=10_000)  # browser check, summarized
    page.locator("#technical summary").click()
    assert page.locator(".proof dd.ok").count() == 2
    page.close()


def test_qr_decodes_from_a_desktop_screenshot_at_three_pixels_per_module(
    site, valid: str, browser: Browser
) -> None:
    import zxingcpp
    from PIL import Image

    from ledger.qr_image import decode_qr, qr_matrix

    png = site["client"].get(f"/api/v1/certificates/{valid}/qr.png")
    assert png.status_code == 200, png.get_data(as_text=True)
    expected = decode_qr(png.data)[0]
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(f"{site['url']}/v/{valid}")
    shot = site["work"] / "screen.png"
    page.screenshot(path=str(shot))
    (found,) = zxingcpp.read_barcodes(Image.open(shot), formats=zxingcpp.BarcodeFormat.QRCode)
    assert found.text.split("?t=")[0] == expected.split("?t=")[0]
    box = page.locator("img.qr").bounding_box()
    assert box is not None and box["width"] / len(qr_matrix(expected)) >= 3
    page.close()


def test_certificate_prints_on_one_a4_page_without_the_chrome(
    site, valid: str, browser: Browser
) -> None:
    import subprocess

    page = browser.new_page()
    page.goto(f"{site['url']}/v/{valid}?lang=en")
    pdf = site["work"] / "print.pdf"
    page.pdf(path=str(pdf), format="A4")
    page.emulate_media(media="print")
    assert not page.locator("header.top").is_visible() and not page.locator("footer").is_visible()
    shoot(page, "site-certificate-print")
    page.close()
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True)
    assert "Pages:           1\n" in info.stdout
