"""Public pages: look a certificate up by code, show it with its proof, scan a QR code.

Every page works without JavaScript; the one script adds a second, independent
check of the QR token's signature inside the visitor's browser.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, redirect, render_template, request, send_file, url_for
from werkzeug.exceptions import HTTPException

from ledger.api.limits import lookups, uploads
from ledger.api.problems import RETRY_AFTER_S
from ledger.api.state import state
from ledger.domain.certificate import normalize_code
from ledger.domain.referential import title_in
from ledger.qr_image import ImageUnreadable, decode_qr
from ledger.qr_token import TokenInvalid, parse_qr_url, verify_token
from ledger.services.attestation_check import PDF_MAGIC, NotAPdf, TooComplex, check_pdf
from ledger.services.history import page_trust
from ledger.services.pdf_sandbox import SandboxBusy
from ledger.services.qr import INVALID, TokenCheck, check_token
from ledger.services.verification import (
    HOLDER,
    INTEGRITY_FAILURE,
    PUBLIC,
    audience_of,
    for_audience,
    trusted_jwks,
)
from verify_site.i18n import LANGUAGES, MESSAGES, current_language, format_date, translator

site = Blueprint(
    "site", __name__, template_folder="templates", static_folder="static", static_url_path="/static"
)

ACCEPTED_TYPES = {"image/png", "image/jpeg", "image/webp", "image/gif", "application/pdf"}
LEVEL_WORDS = {"fr": "Niveau", "en": "Level"}


def render(template: str, **context: Any) -> str:
    lang = current_language()
    return render_template(
        template, lang=lang, t=translator(lang), date=lambda iso: format_date(iso, lang),
        other_lang=next(x for x in LANGUAGES if x != lang), issuer=issuer(),
        title=lambda code, french: title_in(code, french, lang), **context,
    )  # fmt: skip


def issuer() -> dict[str, Any]:
    """Who stands behind the site, as configured: every page names it (an official service)."""
    config = state().config
    contact = config.issuer_contact
    href = contact if contact.startswith(("http://", "https://")) else f"mailto:{contact}"
    logo = config.issuer_logo
    return {
        "name": config.issuer_name,
        "contact": contact,
        "contact_href": href if contact else "",
        "logo": url_for("site.issuer_logo") if logo and logo.is_file() else None,
    }


def page(template: str, status: int = 200, **context: Any) -> Response:
    return finish(render(template, **context), status)


def finish(html: str, status: int) -> Response:
    """Wrap a rendered page: remember an explicit language choice, never cache."""
    response = Response(html, status, mimetype="text/html")
    response.vary.update(("Accept-Language", "Cookie"))  # the language may come from either
    if request.args.get("lang") in LANGUAGES:
        response.set_cookie(
            "lang",
            current_language(),
            max_age=365 * 86400,
            samesite="Lax",
            secure=request.is_secure,
        )
    return response


def wants_html() -> bool:
    """Site pages (and unknown paths outside the API) get HTML errors, the API problem+json."""
    path = request.path
    return not path.startswith(("/api/", "/.well-known/", "/tlog/"))


def error_page(error: HTTPException) -> Response:
    lang = current_language()
    t = translator(lang)
    status = error.code or 500
    if status == 404:
        return not_found()
    if status == 429:
        retry = getattr(error, "retry_after", None) or 60
        response = page("error.html", 429, message=t("rate_limited", seconds=retry))
        response.headers["Retry-After"] = str(retry)
        return response
    if status == 413:
        return page("scan.html", 413, error="too_large")
    return page("error.html", status, message=error.description or t("error_title"))


@site.route("/")
def index() -> Response:
    return page("index.html")


@site.route("/legal")
def legal() -> Response:
    """Legal notice and privacy: who publishes, what is shown, why, how long, how to erase."""
    return page("legal.html")


@site.route("/issuer-logo")
def issuer_logo() -> Response:
    """The configured logo file, the only local file the site serves besides its static ones."""
    logo = state().config.issuer_logo
    if logo is None or not logo.is_file():
        abort(404)
    return send_file(logo, max_age=3600)


@site.route("/lookup")
@lookups
def lookup() -> Response:
    """The form's target: tolerant input, then a redirect to the canonical page."""
    raw = request.args.get("code", "")
    code = normalize_code(raw)
    if code is None:
        return page("index.html", 400, error="bad_code", typed=raw[:40])
    return redirect(url_for("site.certificate", code=code, lang=request.args.get("lang")), 303)


def not_found() -> Response:
    """The same page, status and size class for every unknown or malformed code."""
    return page("not_found.html", 404)


@site.route("/v/<code>")
@lookups
def certificate(code: str) -> Response:
    canonical = normalize_code(code)
    if canonical is None:
        return not_found()
    st = state()
    view = st.views.get(canonical)
    if view is None:
        return not_found()
    if canonical != code:
        return redirect(url_for("site.certificate", code=canonical, **request.args), 301)
    token = request.args.get("t")
    scopes = _bearer_scopes()
    audience = audience_of(scopes, view)
    download = _holder_download(canonical, view) if audience == HOLDER else None
    private = audience != PUBLIC  # may read the free-text reasons
    key = (canonical, current_language(), token)
    html = None if private else st.views.pages.get(key)
    if html is None:
        verified = view["status"] != INTEGRITY_FAILURE
        check = check_token(st.ledger, view, token) if token and verified else None
        html = _render_certificate(for_audience(view, audience), token, check, download)
        if not private and (token is None or (check is not None and check.state != INVALID)):
            st.views.pages[key] = html  # never keyed by a token the ledger did not sign
    response = finish(html, 200)
    response.headers["Vary"] = "Authorization"
    return response


def _bearer_scopes() -> frozenset[str] | None:
    """The scopes of a valid bearer token; none (the public page) for a missing or bad one."""
    scheme, _, bearer = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    principal = state().tokens.authenticate(bearer.strip())
    return principal.scopes if principal is not None else None


def _holder_download(code: str, view: dict[str, Any]) -> str | None:
    """The attestation link for the holder, while the certificate is theirs to show.

    The public page stays the same for everyone else (centre tokens included): it
    offers nothing personal beyond what it always shows.
    """
    if view["status"] == "cancelled" or view["holder"] is None:
        return None
    return url_for("attestations.attestation_pdf", code=code, lang=current_language())


def _render_certificate(
    view: dict[str, Any],
    token: str | None,
    check: TokenCheck | None,
    download: str | None = None,
) -> str:
    t = translator(current_language())
    what = ", ".join(t(f"what_{d}") for d in check.differences if d != "holder") if check else ""
    trust = page_trust(state().ledger)
    return render(
        "certificate.html",
        cert=view,
        check=check,
        token=token,
        what=what,
        download=download,
        private=view["audience"] != PUBLIC,
        category=view["status_category"] or "other",
        trust=trust,
    )


@site.route("/scan", methods=["GET"])
def scan() -> Response:
    return page("scan.html")


@site.route("/scan", methods=["POST"])
@uploads
def scan_upload() -> Response:
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return page("scan.html", 400, error="no_file")
    if upload.mimetype not in ACCEPTED_TYPES:
        return page("scan.html", 415, error="wrong_type")
    limit = state().config.max_upload_bytes
    data = upload.read(limit + 1)
    if len(data) > limit:
        return page("scan.html", 413, error="too_large")
    if upload.mimetype == "application/pdf" or data.startswith(PDF_MAGIC):
        return _check_pdf(data)
    try:
        texts = decode_qr(data)
    except ImageUnreadable:
        return page("scan.html", 422, error="unreadable")
    if not texts:
        return page("scan.html", 422, error="no_qr")
    return _follow(texts[0])


def _check_pdf(data: bytes) -> Response:
    """An attestation PDF gets every check (signature, CA, QR, status), shown on the page."""
    st = state()
    st.fresh()
    try:
        report = check_pdf(st.ledger, data, st.views.get)
    except TooComplex:
        return page("scan.html", 422, error="too_complex")
    except NotAPdf:
        return page("scan.html", 422, error="unreadable")
    except SandboxBusy:
        response = page("scan.html", 503, error="busy")
        response.headers["Retry-After"] = str(RETRY_AFTER_S)
        return response
    return page("scan.html", report=report, messages=MESSAGES[current_language()])


def _follow(text: str) -> Response:
    """Send a decoded QR to its certificate page, or say why it cannot be followed."""
    st = state()
    try:
        code, token = parse_qr_url(text, st.config.public_url)
    except TokenInvalid:
        return page("scan.html", 422, error="foreign_qr", text=text[:120])
    try:
        verify_token(token, trusted_jwks(st.ledger))
    except TokenInvalid as exc:
        why = translator(current_language())(f"why_{exc.reason}")
        return page("scan.html", 422, error="forged", why=why)
    return redirect(url_for("site.certificate", code=code, t=token), 303)
