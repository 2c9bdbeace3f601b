"""The certificate page checks its events' inclusion proofs in the browser (WebCrypto).

Headless Chromium against a live server (fixtures of test_browser.py): success on
a real certificate in French and English, failure when the history the page
fetches has a proof hash or the checkpoint root altered on the way. The keys the
page trusts are written in it from configuration: a history naming other log or
witness keys, or dropping the quorum, does not buy an "ok".
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import Browser, Route

from ledger.audit.checkpoint import Checkpoint, parse_note, sign_checkpoint
from ledger.audit.cosignature import VerifierKey, cosign, witness_vkey
from ledger.crypto import SigningKey
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
    _show_proof(page)
    return page


def _show_proof(page: Any) -> None:
    """The technical proof sits behind a closed disclosure: open it, as a curious reader would."""
    page.wait_for_selector("details", state="attached")
    page.evaluate("document.querySelectorAll('details').forEach(d => { d.open = true; })")


def _result(page: Any) -> tuple[str, str]:
    """The browser check's outcome once it is no longer pending: (kind, text)."""
    found = page.wait_for_selector(
        "#log-check[data-result]:not([data-result=pending])", timeout=10_000
    )
    return found.get_attribute("data-result"), found.inner_text()


def test_browser_verifies_the_inclusion_proofs_fr_and_en(site, browser: Browser) -> None:
    for lang, words in (
        ("fr", "Vérifié dans votre navigateur :"),
        ("en", "Checked in your browser:"),
    ):
        page = _open(site, browser, lang, None)
        kind, text = _result(page)
        assert kind == "ok" and text.startswith(words), text
        assert "1 " in text
        page.locator("#log-check").scroll_into_view_if_needed()
        shoot(page, f"20-inclusion-checked-{lang}")
        page.close()


STATEMENT = {
    "fr": {
        "server": "Le serveur vient de vérifier ses signatures et leur chaînage.",
        "log": "Votre navigateur vient de vérifier sa place dans le registre public.",
        "next": "Il figurera dans le prochain point de contrôle du registre public.",
        "more_recent": "plus récent(s) : ils figureront dans le prochain point de contrôle",
        "nojs": "Sa place dans le registre public n'est pas vérifiée ici",
        "claim": "registre public viennent",
    },
    "en": {
        "server": "Its signatures and their chain were checked by the server just now.",
        "log": "Its place in the public log was checked by your browser just now.",
        "next": "It will be in the public log's next checkpoint.",
        "more_recent": "more recent event(s): they will be in the next checkpoint",
        "nojs": "Its place in the public log is not checked here",
        "claim": "place in the public log were checked",
    },
}


def _statement(page: Any) -> str:
    """The plain statement once the browser check settled."""
    _result(page)
    return page.locator("#statement").inner_text()


def test_the_statement_claims_the_log_only_once_the_browser_checked_it(
    site, browser: Browser
) -> None:
    for lang, words in STATEMENT.items():
        page = _open(site, browser, lang, None)
        statement = _statement(page)
        assert words["server"] in statement and words["log"] in statement, statement
        assert words["next"] not in statement and words["nojs"] not in statement
        page.close()


def test_a_pending_checkpoint_is_said_plainly(site, browser: Browser) -> None:
    """The certificate's events are after the checkpoint: no log claim, the next one is named."""

    def pending(body: dict) -> None:
        for event in body["events"]:
            event.update(inclusion=None, reason="not-yet-in-checkpoint")

    for lang, words in STATEMENT.items():
        page = _open(site, browser, lang, pending)
        statement = _statement(page)
        assert words["server"] in statement and words["next"] in statement, statement
        assert words["log"] not in statement
        proof = page.locator("#log-check").inner_text()
        assert words["more_recent"] in proof, proof
        assert not re.search(r"(?<!\d)0 (event|événement)", proof), proof  # not "0 included"
        page.locator("#statement").scroll_into_view_if_needed()
        shoot(page, f"27-statement-pending-{lang}")
        page.close()


def test_a_failed_check_adds_no_log_claim(site, browser: Browser) -> None:
    def alter(body: dict) -> None:
        body["checkpoint"]["root"] = _flip(body["checkpoint"]["root"])

    page = _open(site, browser, "en", alter)
    statement = _statement(page)
    assert STATEMENT["en"]["server"] in statement and "public log" not in statement
    page.close()


def test_without_javascript_the_statement_makes_no_log_claim(site, browser: Browser) -> None:
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    for lang, words in STATEMENT.items():
        page.goto(f"{site['url']}/v/{site['code']}?lang={lang}")
        statement = page.locator("#statement").inner_text()
        assert words["server"] in statement and words["nojs"] in statement, statement
        for claim in (words["log"], words["next"], words["claim"]):
            assert claim not in statement
        shoot(page, f"28-statement-no-javascript-{lang}")
    context.close()


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
    _show_proof(page)
    assert "Inclusion in the public log" in page.content()
    assert page.locator("#log-check").is_hidden()
    context.close()


def _configure_witness(site: dict, when: int, name: str = "witness.example/univ") -> str:
    """A witness on the live server (quorum 1) that cosigned the latest checkpoint at `when`."""
    st = site["flow"].app.extensions["ledger"]
    vkey = cosign_latest(st.ledger, name, when)
    st.views.pages.clear()  # cached pages carry the former configuration
    return vkey


def test_witness_cosignatures_are_checked_in_the_browser(site, browser: Browser) -> None:
    """Configures a witness on the live server: later tests of this module see it too."""
    _configure_witness(site, int(time.time()))
    page = _open(site, browser, "fr", None)
    kind, text = _result(page)
    assert kind == "ok", text
    assert "cosigné par 1 témoin(s) indépendant(s) : witness.example/univ (quorum : 1)" in text
    assert re.search(r"clé du journal d'identifiant [0-9a-f]{8}", text), text
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
    kind, text = _result(page)
    assert kind == "ko" and "too few valid witness cosignatures" in text, text
    page.close()


def _without_cosignatures(note: str) -> str:
    """The note with only its first (the log's) signature line."""
    body, _, signatures = note.rpartition("\n\n")
    return f"{body}\n\n{signatures.splitlines()[0]}\n"


def test_a_forged_witness_key_in_the_history_is_ignored(site, browser: Browser) -> None:
    """A key the operator minted as a "witness", listed in the JSON: the page's keys win."""
    fake = SigningKey.generate()
    fake_vkey = str(witness_vkey("witness.example/fake", fake))

    def forge(body: dict) -> None:
        note = _without_cosignatures(body["checkpoint"]["note"])
        line = cosign(parse_note(note)[2], "witness.example/fake", fake, int(time.time()))
        body["checkpoint"]["note"] = note + line
        body["witness_keys"] = [fake_vkey]

    page = _open(site, browser, "en", forge)
    kind, text = _result(page)
    assert kind == "ko" and "too few valid witness cosignatures" in text, text
    assert "fake" not in text
    page.close()


def test_a_forged_log_key_in_the_history_is_ignored(site, browser: Browser) -> None:
    """A new log key minted by the operator signs the note: the page does not list it."""
    minted = SigningKey.generate()

    def forge(body: dict) -> None:
        cp, _, _ = parse_note(body["checkpoint"]["note"])
        body["checkpoint"]["note"] = sign_checkpoint(
            Checkpoint(cp.origin, cp.size, cp.root), minted
        )
        body["log_keys"] = [str(VerifierKey(cp.origin, 1, minted.public_raw))]

    page = _open(site, browser, "en", forge)
    kind, text = _result(page)
    assert kind == "ko" and "not signed by a log key" in text, text
    page.close()


def test_a_missing_quorum_is_a_warning_not_ok(site, browser: Browser) -> None:
    """The history drops the witnesses and sets quorum 0: the page's quorum still stands."""

    def drop(body: dict) -> None:
        cp = body["checkpoint"]
        cp.update(note=_without_cosignatures(cp["note"]), witnessed=False, quorum=0, cosigners={})
        body["witness_keys"] = []

    for lang, words in (
        ("fr", "pas encore confirmé par les témoins"),
        ("en", "not yet confirmed by witnesses"),
    ):
        page = _open(site, browser, lang, drop)
        kind, text = _result(page)
        assert kind == "warn" and words in text, text
        page.locator("#log-check").scroll_into_view_if_needed()
        shoot(page, f"24-inclusion-unconfirmed-{lang}")
        page.close()


def test_a_repeated_cosignature_counts_once(site, browser: Browser) -> None:
    """The witness's line twice, its key listed twice, quorum 2 claimed: still one witness."""

    def repeat(body: dict) -> None:
        cp = body["checkpoint"]
        cp["note"] += cp["note"].splitlines(keepends=True)[-1]
        cp["quorum"] = 2
        body["witness_keys"] = body["witness_keys"] * 2

    page = _open(site, browser, "en", repeat)
    kind, text = _result(page)
    assert kind == "ok", text
    assert "cosigned by 1 independent witness(es): witness.example/univ (quorum: 1)" in text
    page.close()


def test_strict_note_parsing(site, browser: Browser) -> None:
    """Lines the old parser skipped reject the note: a malformed one, a failing log signature."""

    def garbage(body: dict) -> None:
        body["checkpoint"]["note"] += "\u2014 not-a-signature\n"

    def failing(body: dict) -> None:
        note = body["checkpoint"]["note"]
        first = note.rpartition("\n\n")[2].splitlines()[0]
        name, blob = first[2:].split(" ")
        raw = bytearray(base64.b64decode(blob))
        raw[-1] ^= 1  # same log key ID, signature broken: C2SP says reject
        body["checkpoint"]["note"] = (
            note + f"\u2014 {name} {base64.b64encode(bytes(raw)).decode()}\n"
        )

    def leading_zero(body: dict) -> None:
        cp = body["checkpoint"]
        lines = cp["note"].split("\n")
        lines[1] = "0" + lines[1]
        cp["note"] = "\n".join(lines)

    for alter in (garbage, failing, leading_zero):
        page = _open(site, browser, "en", alter)
        kind, text = _result(page)
        assert kind == "ko" and "not signed by a log key" in text, (alter.__name__, text)
        page.close()


def test_missing_versions_are_reported(site, browser: Browser) -> None:
    """Inclusion does not prove the status; a gap in the versions listed is at least caught."""

    def renumber(body: dict) -> None:
        body["events"][0]["version"] = 2

    page = _open(site, browser, "fr", renumber)
    kind, text = _result(page)
    assert kind == "ko" and "versions non consécutives" in text, text
    assert "pas que le statut affiché est le dernier" in page.locator(".log-limit").inner_text()
    page.close()


def test_an_event_left_out_of_checkpoints_too_long_is_a_warning(site, browser: Browser) -> None:
    """After a truncation the witness refuses, the event stays unproven: warn, not ok."""

    def unproven(body: dict) -> None:
        event = body["events"][0]
        event.update(inclusion=None, reason="not-yet-in-checkpoint")
        event["time"] = "2020" + event["time"][4:]

    for lang, words in (("fr", "attendent depuis trop longtemps"), ("en", "waited too long")):
        page = _open(site, browser, lang, unproven)
        kind, text = _result(page)
        assert kind == "warn" and words in text, text
        page.locator("#log-check").scroll_into_view_if_needed()
        shoot(page, f"25-inclusion-stale-{lang}")
        page.close()


def test_an_old_cosignature_is_a_warning(site, browser: Browser) -> None:
    """The witnesses' newest cosignature is older than twice the checkpoint age policy."""
    max_age = site["flow"].app.extensions["ledger"].ledger.config.checkpoint_max_age_s
    _configure_witness(site, int(time.time()) - 3 * max_age, "witness.example/late")
    try:
        page = _open(site, browser, "en", None)
        kind, text = _result(page)
        assert kind == "warn" and "latest cosignature is too old" in text, text
        page.close()
    finally:
        _configure_witness(site, int(time.time()))


def test_a_history_that_cannot_be_fetched_is_reported(site, browser: Browser) -> None:
    page = browser.new_page()
    page.route("**/history", lambda route: route.fulfill(status=503, body="{}"))
    page.goto(f"{site['url']}/v/{site['code']}?lang=en")
    _show_proof(page)
    page.wait_for_selector("#log-check[data-result=ko]", timeout=10_000)
    assert "could not be fetched" in page.locator("#log-check").inner_text()
    page.close()
