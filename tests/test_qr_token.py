"""The certificate QR token: signed, checked, and readable by a verifier that shares no code."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import replace
from datetime import date
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import crypto
from ledger.domain.certificate import CODE_ALPHABET, new_code, valid_until
from ledger.domain.referential import COMPETENCE_CODES
from ledger.qr_token import (
    CertificateClaims,
    TokenInvalid,
    decode_unverified,
    levels_string,
    parse_qr_url,
    qr_url,
    sign_token,
    verify_token,
)

KEY = crypto.SigningKey.generate()
OTHER_KEY = crypto.SigningKey.generate()
JWKS = {"keys": [KEY.public_jwk(), OTHER_KEY.public_jwk()]}
PUBLIC_URL = "https://certification.numerique.gouv.fr"
ISSUING_HASH = crypto.sha256_hex(b'{"seq":4127,"type":"certification.CertificateIssued"}')


def certificate_row(code: str = "P-3K7QX9BD") -> dict[str, Any]:
    """A certificate as the certificates projection returns it."""
    issued_on = date(2026, 3, 14)
    return {
        "code": code,
        "competences": [
            {"code": "1.1", "level": 4},
            {"code": "1.2", "level": 3},
            {"code": "1.3", "level": 5},
            {"code": "2.1", "level": 2},
            {"code": "3.2", "level": 1},
            {"code": "5.2", "level": 6},
        ],
        "issued_on": issued_on.isoformat(),
        "valid_until": valid_until(issued_on).isoformat(),
        "pix_score": 512,
        "max_level": 6,
        "issued_seq": 4127,
    }


HOLDER = {
    "first_name": "Marie-Hélène",
    "last_name": "Lefèvre-Ducroquet",
    "birth_date": "1987-02-28",
}
CLAIMS = CertificateClaims.from_certificate(certificate_row(), HOLDER, ISSUING_HASH)


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def jcs(value: dict[str, Any]) -> bytes:
    """JCS for objects with ASCII keys, no floats: what every token part is."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def signed(header: dict[str, Any], payload: dict[str, Any], key: crypto.SigningKey = KEY) -> str:
    """A token assembled by hand, for contents `sign_token` refuses to produce."""
    signing_input = f"{b64url(jcs(header))}.{b64url(jcs(payload))}"
    return f"{signing_input}.{b64url(key.sign(signing_input.encode()))}"


HEADER = {"alg": "EdDSA", "kid": KEY.kid, "typ": "cert+jws"}


def reason(token: str, jwks: dict[str, Any] = JWKS) -> str:
    with pytest.raises(TokenInvalid) as caught:
        verify_token(token, jwks)
    assert str(caught.value)
    return caught.value.reason


# --- round trip and independent verification --------------------------------


def test_claims_come_from_a_certificate_row() -> None:
    assert CLAIMS.code == "P-3K7QX9BD"
    assert CLAIMS.levels == "4352000010000006"
    assert CLAIMS.competence_levels()["5.2"] == 6
    assert list(CLAIMS.competence_levels()) == list(COMPETENCE_CODES)
    assert CLAIMS.valid_until == "2029-03-14"
    erased = CertificateClaims.from_certificate(certificate_row(), None, ISSUING_HASH)
    assert (erased.first_name, erased.last_name, erased.birth_date) == ("", "", "")


def test_token_round_trip() -> None:
    token = sign_token(CLAIMS, KEY)
    assert verify_token(token, JWKS) == CLAIMS
    header, claims = decode_unverified(token)
    assert header == HEADER
    assert claims == CLAIMS
    assert CertificateClaims.from_payload(CLAIMS.to_payload()) == CLAIMS
    assert sign_token(CLAIMS, KEY) == token  # Ed25519 is deterministic


def test_a_verifier_with_only_base64_json_and_cryptography_accepts_the_token() -> None:
    head, body, signature = sign_token(CLAIMS, KEY).split(".")
    assert b64url_decode(head) == f'{{"alg":"EdDSA","kid":"{KEY.kid}","typ":"cert+jws"}}'.encode()
    payload = json.loads(b64url_decode(body))
    assert payload == {
        "c": "P-3K7QX9BD", "fn": "Marie-Hélène", "ln": "Lefèvre-Ducroquet", "bd": "1987-02-28",
        "l": "4352000010000006", "p": 512, "m": 6, "iat": "2026-03-14", "exp": "2029-03-14",
        "h": ISSUING_HASH,
    }  # fmt: skip
    assert b64url_decode(body) == jcs(payload)
    (jwk,) = [k for k in JWKS["keys"] if k["kid"] == KEY.kid]
    required = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": jwk["x"]}, separators=(",", ":"))
    assert b64url(hashlib.sha256(required.encode()).digest()) == jwk["kid"]
    public = Ed25519PublicKey.from_public_bytes(b64url_decode(jwk["x"]))
    public.verify(b64url_decode(signature), f"{head}.{body}".encode("ascii"))  # raises if bad


# --- what a verifier refuses, and why ----------------------------------------


def test_an_altered_payload_has_a_bad_signature() -> None:
    head, _, signature = sign_token(CLAIMS, KEY).split(".")
    richer = {**CLAIMS.to_payload(), "p": 640, "l": "6666666666666666"}
    assert reason(f"{head}.{b64url(jcs(richer))}.{signature}") == "bad-signature"


def test_an_altered_header_has_a_bad_signature() -> None:
    _, body, signature = sign_token(CLAIMS, KEY).split(".")
    other = b64url(jcs({**HEADER, "kid": OTHER_KEY.kid}))
    assert reason(f"{other}.{body}.{signature}") == "bad-signature"


@pytest.mark.parametrize("flip", [0, 31, 63])
def test_an_altered_signature_is_bad(flip: int) -> None:
    head, body, signature = sign_token(CLAIMS, KEY).split(".")
    raw = bytearray(b64url_decode(signature))
    raw[flip] ^= 0x01
    assert reason(f"{head}.{body}.{b64url(bytes(raw))}") == "bad-signature"
    assert reason(f"{head}.{body}.{b64url(bytes(raw[:32]))}") == "bad-signature"


def test_a_key_missing_from_the_jwks_is_unknown() -> None:
    token = sign_token(CLAIMS, crypto.SigningKey.generate())
    assert reason(token) == "unknown-key"
    assert reason(sign_token(CLAIMS, KEY), {"keys": [OTHER_KEY.public_jwk()]}) == "unknown-key"
    assert reason(sign_token(CLAIMS, KEY), {"keys": []}) == "unknown-key"
    assert reason(sign_token(CLAIMS, KEY), {}) == "unknown-key"


def test_a_jwks_entry_whose_kid_is_not_its_thumbprint_is_not_used() -> None:
    impostor = {**OTHER_KEY.public_jwk(), "kid": KEY.kid}
    assert reason(sign_token(CLAIMS, KEY), {"keys": [impostor]}) == "unknown-key"


@pytest.mark.parametrize(
    "header",
    [
        {**HEADER, "typ": "JWT"},
        {**HEADER, "alg": "none"},
        {**HEADER, "alg": "ES256"},
        {"alg": "EdDSA", "kid": KEY.kid},
        {**HEADER, "crit": ["exp"]},
        {**HEADER, "kid": 7},
    ],
    ids=["typ-jwt", "alg-none", "alg-es256", "no-typ", "crit", "kid-not-text"],
)
def test_a_header_that_is_not_ours_is_malformed(header: dict[str, Any]) -> None:
    assert reason(signed(header, CLAIMS.to_payload())) == "malformed"


def test_encodings_the_issuer_never_writes_are_malformed() -> None:
    token = sign_token(CLAIMS, KEY)
    head, body, signature = token.split(".")
    spaced = b64url(json.dumps(CLAIMS.to_payload()).encode())
    last = signature[-1]
    sloppy = last.translate(str.maketrans("AQgw", "BRhx"))  # same bytes, stray low bits
    for bad in (
        "", "a.b", f"{token}.", f"{head}.{body}", f"{head}..{signature}",
        f"{head}.{body}.{signature}==", f"{head}.{body}.{signature[:-1]}{sloppy}",
        f"{head}.{body}!.{signature}", f"{b64url(b'[1,2]')}.{body}.{signature}",
        f"{head}.{b64url(b'not json')}.{signature}", "x" * 5000,
    ):  # fmt: skip
        assert reason(bad) == "malformed", bad
    loose = f"{head}.{spaced}"  # signed by the right key, but not JCS
    assert reason(f"{loose}.{b64url(KEY.sign(loose.encode()))}") == "malformed"


@pytest.mark.parametrize(
    "change",
    [
        {"c": "P-00000000"}, {"c": "P-3k7qx9bd"}, {"fn": None}, {"bd": "14/03/1987"},
        {"bd": "1987-02-30"}, {"l": "43520001000000"}, {"l": "4352000100000009"},
        {"l": "435200010000000²"}, {"l": "7352000100000006"}, {"p": "512"}, {"p": True},
        {"p": -1}, {"m": 0}, {"m": 9}, {"iat": "2026-3-14"}, {"exp": "2026-03-13"},
        {"h": ISSUING_HASH.upper()}, {"h": ISSUING_HASH[:63]}, {"h": f"{ISSUING_HASH}\n"},
    ],
    ids=lambda change: "-".join(change),
)  # fmt: skip
def test_signed_but_ill_formed_claims_are_bad_claims(change: dict[str, Any]) -> None:
    assert reason(signed(HEADER, {**CLAIMS.to_payload(), **change})) == "bad-claims"
    with pytest.raises(TokenInvalid) as caught:
        CertificateClaims.from_payload({**CLAIMS.to_payload(), **change})
    assert caught.value.reason == "bad-claims"


def test_missing_or_extra_claims_are_bad_claims() -> None:
    payload = CLAIMS.to_payload()
    del payload["h"]
    assert reason(signed(HEADER, payload)) == "bad-claims"
    assert reason(signed(HEADER, {**CLAIMS.to_payload(), "admin": True})) == "bad-claims"


def test_claims_cannot_be_built_ill_formed() -> None:
    with pytest.raises(TokenInvalid, match="levels"):
        replace(CLAIMS, levels="12")
    with pytest.raises(TokenInvalid, match="names"):
        replace(CLAIMS, first_name="\ud800")
    assert levels_string([{"code": "4.3", "level": 2}]) == "0000000000000200"


# --- any claims round-trip ---------------------------------------------------


@st.composite
def claims(draw: st.DrawFn) -> CertificateClaims:
    max_level = draw(st.integers(1, 8))
    issued, until = sorted(draw(st.lists(st.dates(), min_size=2, max_size=2)))
    name = st.text(st.characters(exclude_categories=("Cs",)), max_size=60)
    return CertificateClaims(
        code="P-" + draw(st.text(st.sampled_from(CODE_ALPHABET), min_size=8, max_size=8)),
        first_name=draw(name),
        last_name=draw(name),
        birth_date=draw(st.one_of(st.just(""), st.dates().map(date.isoformat))),
        levels=draw(
            st.text(st.sampled_from("0123456789"[: max_level + 1]), min_size=16, max_size=16)
        ),
        pix_score=draw(st.integers(0, 2**53 - 1)),
        max_level=max_level,
        issued_on=issued.isoformat(),
        valid_until=until.isoformat(),
        event_hash=draw(st.binary(min_size=32, max_size=32)).hex(),
    )


@settings(max_examples=200, deadline=None)
@given(claims())
def test_any_claims_round_trip(drawn: CertificateClaims) -> None:
    token = sign_token(drawn, KEY)
    assert verify_token(token, JWKS) == drawn
    assert decode_unverified(token)[1] == drawn
    url = qr_url(PUBLIC_URL, drawn.code, token)
    assert parse_qr_url(url, PUBLIC_URL) == (drawn.code, token)


# --- the printed URL ---------------------------------------------------------

LONG_FRENCH_NAMES = [  # up to 40 characters each, accents and all
    ("Marie-Hélène Françoise Éléonore Adélaïde", "Le Boulanger de La Rochefoucauld-Lévêque"),
    ("Jean-Baptiste Anaïs Noël Gaëtan Hervé", "Lefèvre-Ducroquet de Saint-Exupéry"),
    ("Anne-Cécile Bénédicte Joséphine Zoé", "Château-Thierry de Montalembert-Rivière"),
    ("Éloïse-Thérèse Chloé Désirée Aimée", "Côté-Bérénger d'Aubigné de Fénelon"),
]


@pytest.mark.parametrize(("first", "last"), LONG_FRENCH_NAMES)
def test_the_qr_url_stays_under_700_bytes(first: str, last: str) -> None:
    holder = {"first_name": first, "last_name": last, "birth_date": "1958-12-31"}
    row = {**certificate_row(new_code()), "pix_score": 1024, "max_level": 8}
    row["competences"] = [{"code": code, "level": 8} for code in COMPETENCE_CODES]
    long = CertificateClaims.from_certificate(row, holder, ISSUING_HASH)
    assert max(len(first), len(last)) >= 34
    url = qr_url(PUBLIC_URL, long.code, sign_token(long, KEY))
    assert len(url.encode("utf-8")) < 700
    assert url.isascii()
    assert verify_token(parse_qr_url(url, PUBLIC_URL)[1], JWKS) == long


def test_qr_url_form_and_parse() -> None:
    token = sign_token(CLAIMS, KEY)
    url = qr_url(PUBLIC_URL + "/", CLAIMS.code, token)
    assert url == f"{PUBLIC_URL}/v/P-3K7QX9BD?t={token}"
    assert parse_qr_url(url) == ("P-3K7QX9BD", token)
    assert parse_qr_url(f"  {url}\n", PUBLIC_URL) == ("P-3K7QX9BD", token)
    assert parse_qr_url(url.replace("https://certification", "HTTPS://Certification"), PUBLIC_URL)
    assert parse_qr_url(url.replace(".fr/", ".fr:443/"), PUBLIC_URL)
    prefixed = qr_url("https://pix.example/certif", CLAIMS.code, token)
    assert parse_qr_url(prefixed, "https://pix.example/certif/") == ("P-3K7QX9BD", token)
    assert parse_qr_url(prefixed) == ("P-3K7QX9BD", token)


@pytest.mark.parametrize(
    "text",
    [
        "https://example.org/hello", "hello world", "", "WIFI:S:home;T:WPA;P:secret;;",
        "mailto:contact@example.org", "ftp://certification.numerique.gouv.fr/v/P-3K7QX9BD?t=a.b.c",
        "https://evil.example/v/P-3K7QX9BD?t=a.b.c",
        "https://certification.numerique.gouv.fr.evil.example/v/P-3K7QX9BD?t=a.b.c",
        "https://certification.numerique.gouv.fr@evil.example/v/P-3K7QX9BD?t=a.b.c",
        "http://certification.numerique.gouv.fr/v/P-3K7QX9BD?t=a.b.c",
        "https://certification.numerique.gouv.fr:8443/v/P-3K7QX9BD?t=a.b.c",
        "https://certification.numerique.gouv.fr/x/v/P-3K7QX9BD?t=a.b.c",
        "https://certification.numerique.gouv.fr/v/P-3K7QX9BD",
        "https://certification.numerique.gouv.fr/v/P-3K7QX9BD?t=",
        "https://certification.numerique.gouv.fr/v/P-3K7QX9BD?t=a.b.c&next=/admin",
        "https://certification.numerique.gouv.fr/v/hello?t=a.b.c",
        "https://certification.numerique.gouv.fr/v/P-3K7QX9BD/more?t=a.b.c",
        "https://[::1/v/P-3K7QX9BD?t=a.b.c",
    ],
)  # fmt: skip
def test_a_link_that_is_not_ours_is_foreign(text: str) -> None:
    with pytest.raises(TokenInvalid) as caught:
        parse_qr_url(text, PUBLIC_URL)
    assert caught.value.reason == "foreign"
    assert str(caught.value)


def test_without_a_site_any_verification_link_parses_but_other_links_do_not() -> None:
    assert parse_qr_url("https://evil.example/v/P-3K7QX9BD?t=a.b.c") == ("P-3K7QX9BD", "a.b.c")
    for text in ("https://example.org/hello", "not a url", "ftp://x.example/v/P-3K7QX9BD?t=a"):
        with pytest.raises(TokenInvalid) as caught:
            parse_qr_url(text)
        assert caught.value.reason == "foreign"
