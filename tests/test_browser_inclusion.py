"""The certificate page checks its events' inclusion proofs in the browser (WebCrypto).

Headless Chromium against a live server (fixtures of test_browser.py): success on
a real certificate in French and English, failure when the history the page
fetches has a proof hash or the checkpoint root altered on the way.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import Browser, Route

from tests import test_browser
from tests.test_browser import shoot
from tests.test_history_api import cosign_latest

pytestmark = pytest.mark.browser
site, browser = test_browser.site, test_browser.browser  # the live server and Chromium


def _flip(text: str) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[0] ^= 1
    return base64.b64encode(bytes(raw)).decode()


def _open(site: dict, browser: Browser, lang: str, alter: Callable[[dict], None] | None) -> Any:
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    if alter is not None:

        def tamper(route: Route) -> None:
            response = route.fetch()
            body = response.json()
            alter(body)
            route.fulfill(response=response, body=json.dumps(body))

        page.route("**/history", tamper)
    page.goto(f"{site['url']}/v/{site['code']}?lang={lang}")
    return page


def test_browser_verifies_the_inclusion_proofs_fr_and_en(site, browser: Browser) -> None:
    for lang, words in (
        ("fr", "Vérifié dans votre navigateur :"),
        ("en", "Checked in your browser:"),
    ):
        page = _open(site, browser, lang, None)
        page.wait_for_selector("#log-check[data-result=ok]", timeout=10_000)
        text = page.locator("#log-check").inner_text()
        assert text.startswith(words), text
        assert "1 " in text
        page.locator("#log-check").scroll_into_view_if_needed()
        shoot(page, f"20-inclusion-checked-{lang}")
        page.close()


def test_a_tampered_proof_is_reported(site, browser: Browser) -> None:
    def alter(body: dict) -> None:
        hashes = body["events"][0]["inclusion"]["hashes"]
        hashes[0] = _flip(hashes[0])

    page = _open(site, browser, "fr", alter)
    page.wait_for_selector("#log-check[data-result=ko]", timeout=10_000)
    text = page.locator("#log-check").inner_text()
    assert text.startswith("Échec de la vérification dans votre navigateur"), text
    assert "preuve d'inclusion" in text
    shoot(page, "21-inclusion-tampered-proof-fr")
    page.close()


def test_a_tampered_root_is_reported(site, browser: Browser) -> None:
    def alter(body: dict) -> None:
        cp = body["checkpoint"]
        flipped = _flip(cp["root"])
        cp["note"] = cp["note"].replace(cp["root"], flipped)
        cp["root"] = flipped

    page = _open(site, browser, "en", alter)
    page.wait_for_selector("#log-check[data-result=ko]", timeout=10_000)
    text = page.locator("#log-check").inner_text()
    assert text.startswith("Check in your browser failed"), text
    assert "not signed by a log key" in text
    shoot(page, "22-inclusion-tampered-root-en")
    page.close()


def test_the_page_without_javascript_still_explains_the_proof(site, browser: Browser) -> None:
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(f"{site['url']}/v/{site['code']}?lang=en")
    assert "Inclusion in the public log" in page.content()
    assert page.locator("#log-check").is_hidden()
    context.close()


def test_witness_cosignatures_are_checked_in_the_browser(site, browser: Browser) -> None:
    """Configures a witness on the live server: later tests of this module see it too."""
    st = site["flow"].app.extensions["ledger"]
    cosign_latest(st.ledger)
    st.views.pages.clear()  # the cached history predates the witness
    page = _open(site, browser, "fr", None)
    page.wait_for_selector("#log-check[data-result=ok]", timeout=10_000)
    assert (
        "cosigné par 1 témoin(s) indépendant(s) (quorum : 1)"
        in page.locator("#log-check").inner_text()
    )
    shoot(page, "23-inclusion-witnessed-fr")
    page.close()

    def forge(body: dict) -> None:
        note = body["checkpoint"]["note"]
        line = note.splitlines()[-1]
        blob = line.rsplit(" ", 1)[1]
        raw = bytearray(base64.b64decode(blob))
        raw[-1] ^= 1  # the signature, not the key ID: the line still names the witness
        body["checkpoint"]["note"] = note.replace(blob, base64.b64encode(bytes(raw)).decode())

    page = _open(site, browser, "en", forge)
    page.wait_for_selector("#log-check[data-result=ko]", timeout=10_000)
    assert "too few valid witness cosignatures" in page.locator("#log-check").inner_text()
    page.close()


def test_a_history_that_cannot_be_fetched_is_reported(site, browser: Browser) -> None:
    page = browser.new_page()
    page.route("**/history", lambda route: route.fulfill(status=503, body="{}"))
    page.goto(f"{site['url']}/v/{site['code']}?lang=en")
    page.wait_for_selector("#log-check[data-result=ko]", timeout=10_000)
    assert "could not be fetched" in page.locator("#log-check").inner_text()
    page.close()
