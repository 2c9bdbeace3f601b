"""The verify site as an official service: who issues, legal notice, languages, plain statement."""

from __future__ import annotations

import html as html_lib
from pathlib import Path

import pytest

from ledger.api import create_app
from ledger.config import Config, ConfigError
from ledger.domain.certificate import CODE_ALPHABET
from ledger.domain.referential import ENGLISH_TITLES
from tests.certification_flow import Flow
from tests.conftest import initialized, make_token

PNG_1PX = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cf000000020001e221bc330000000049454e44ae426082"
)


def text(response) -> str:
    return html_lib.unescape(response.get_data(as_text=True))


@pytest.fixture
def issuer_app(tmp_path: Path):
    """A site with its issuer configured (name, contact, logo)."""
    logo = tmp_path / "logo.png"
    logo.write_bytes(PNG_1PX)
    config = Config.from_env(
        database_url=f"sqlite:///{tmp_path / 'ledger.db'}", keys_dir=tmp_path / "keys",
        issuer_name="Académie de test", issuer_contact="dpo@example.org", issuer_logo=logo,
    )  # fmt: skip
    initialized(config)
    app = create_app(config)
    yield app
    app.extensions["ledger"].ledger.close()


def test_every_page_names_the_issuer_and_links_the_legal_notice(issuer_app) -> None:
    client = issuer_app.test_client()
    for path in ("/", "/scan", "/v/P-22222222", "/legal"):
        page = text(client.get(path))
        assert "Académie de test" in page, path
        assert 'href="mailto:dpo@example.org"' in page, path
        assert 'href="/legal"' in page, path
        assert 'src="/issuer-logo"' in page, path
    logo = client.get("/issuer-logo")
    assert logo.status_code == 200 and logo.data == PNG_1PX


@pytest.mark.parametrize(
    ("lang", "words"),
    [
        ("fr", ["Éditeur du service", "3 ans", "effacement", "dpo@example.org",
                "livret scolaire", "admission dans l'enseignement supérieur", "webhooks"]),
        ("en", ["Publisher", "3 years", "erasure", "dpo@example.org",
                "school record", "higher-education admission platform", "webhooks"]),
    ],
)  # fmt: skip
def test_legal_page_says_who_what_why_how_long_and_how_to_erase(issuer_app, lang, words) -> None:
    page = text(issuer_app.test_client().get(f"/legal?lang={lang}"))
    for word in words:
        assert word in page
    assert "seul le titulaire communique" not in page and "only the holder hands" not in page


def test_contact_must_be_an_email_or_a_url(monkeypatch) -> None:
    monkeypatch.setenv("LEDGER_ISSUER_CONTACT", "call us")
    with pytest.raises(ConfigError, match="LEDGER_ISSUER_CONTACT"):
        Config.from_env()


def test_no_logo_configured_is_a_404(client) -> None:
    assert client.get("/issuer-logo").status_code == 404


def test_browser_language_is_honoured_on_first_visit(client) -> None:
    english = client.get("/", headers={"Accept-Language": "en-GB,en;q=0.9,fr;q=0.5"})
    assert '<html lang="en">' in text(english) and "Accept-Language" in english.headers["Vary"]
    assert '<html lang="fr">' in text(client.get("/", headers={"Accept-Language": "de"}))
    chosen = client.get("/?lang=fr", headers={"Accept-Language": "en"})
    assert '<html lang="fr">' in text(chosen)


def test_english_page_gives_the_english_competence_titles(client, admin, app) -> None:
    _, code, _ = Flow(app, client, admin).certified()
    english = text(client.get(f"/v/{code}?lang=en"))
    for title in ENGLISH_TITLES.values():
        assert title in english, title
    french = text(client.get(f"/v/{code}?lang=fr"))
    assert "Mener une recherche et une veille d'information" in french
    assert "Browsing, searching" not in french


def test_unknown_code_hint_names_the_real_alphabet(client) -> None:
    for lang in ("fr", "en"):
        assert CODE_ALPHABET in text(client.get(f"/v/P-22222222?lang={lang}"))
        assert CODE_ALPHABET in text(client.get(f"/lookup?code=AEIOU&lang={lang}"))


def test_cancellation_shows_its_category_publicly_and_its_text_privately(
    client, admin, app
) -> None:
    flow = Flow(app, client, admin)
    _, code, _ = flow.certified()
    bad = client.post(
        f"/api/v1/certificates/{code}/cancellation",
        json={"reason": "x", "category": "gossip"},
        headers=admin,
    )
    assert bad.status_code == 422 and "category" in bad.get_data(as_text=True)
    flow.post(f"/api/v1/certificates/{code}/cancellation", {"reason": "copie sur voisin"}, admin)
    public = text(client.get(f"/v/{code}?lang=en"))
    assert "other reason" in public and "copie sur voisin" not in public
    assert "copie sur voisin" in text(client.get(f"/v/{code}?lang=en", headers=admin))
    events = client.get("/api/v1/events?limit=10000", headers=make_token(app, "audit:read")).text
    assert '"category":"other"' in events
