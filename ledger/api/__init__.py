"""Flask application factory: blueprints, OpenAPI, problem+json errors."""

from __future__ import annotations

import logging
import threading
from typing import Any

from flask import Flask, Response, request
from flask_smorest import Api
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException, ServiceUnavailable

from ledger import log_redaction, logs, metrics
from ledger.api import problems, schemas
from ledger.api.attestation_check import PATH as PDF_CHECK_PATH
from ledger.api.body import BoundedBody, check_api_body
from ledger.api.headers import ResponseHeaders
from ledger.api.observe import init_observe
from ledger.api.openapi import WEBHOOKS, ProblemResponses
from ledger.api.state import ApiState
from ledger.config import Config, setting
from ledger.domain.base import DomainError
from ledger.projections.runner import create_tables
from ledger.services.certification import publish_referential
from ledger.store.db import StoreUnavailable
from verify_site import init_site
from verify_site.views import error_page, wants_html

API_VERSION = "1.0.0"
REDACTING_FILTER = log_redaction.RedactingFilter()  # one instance: filters are added once


class ProblemApi(Api):
    """flask-smorest Api whose HTTP errors are RFC 9457 problem+json.

    Blueprints are routed at once but documented when the spec is first read:
    most processes (every worker, every test app) never serve the OpenAPI
    document, and writing it is a third of creating the app.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        self._undocumented: list[tuple[Any, str, Any]] = []
        self._documenting = threading.Lock()  # two first reads must not split the work
        self._spec: Any = None
        super().__init__(*args, **kwargs)

    @property  # type: ignore[override]
    def spec(self) -> Any:
        if self._undocumented:
            with self._documenting:
                while self._spec is not None and self._undocumented:
                    blp, name, params = self._undocumented[0]
                    blp.register_views_in_doc(
                        self, self._app, self._spec, name=name, parameters=params
                    )
                    self._spec.tag({"name": name, "description": blp.description})
                    self._undocumented.pop(0)
        return self._spec

    @spec.setter
    def spec(self, value: Any) -> None:
        self._spec = value

    def register_blueprint(self, blp: Any, *, parameters: Any = None, **options: Any) -> None:
        """`Api.register_blueprint`, with the documentation left for the first read of `spec`."""
        name = options.get("name", blp.name)
        self._app.extensions["flask-smorest"]["blp_name_to_api"][name] = self
        self._app.register_blueprint(blp, **options)
        self._undocumented.append((blp, name, parameters))

    def handle_http_exception(self, error: HTTPException):  # type: ignore[override]
        if wants_html():
            return error_page(error)
        return problems.from_http(error)


def create_app(config: Config | None = None) -> Flask:
    config = config or Config.from_env()
    app = Flask(__name__, static_folder=None)
    app.config.update(
        API_TITLE="CRCN certification ledger",
        API_VERSION=API_VERSION,
        OPENAPI_VERSION="3.1.0",
        OPENAPI_URL_PREFIX="/api/v1",
        OPENAPI_JSON_PATH="openapi.json",
        MAX_CONTENT_LENGTH=max(config.max_body_bytes, config.max_upload_bytes),
        JSON_SORT_KEYS=False,
        API_SPEC_OPTIONS={
            "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
            "info": {
                "description": "Signed, hash-chained ledger of digital-competence certification. "
                "Errors are application/problem+json (RFC 9457)."
            },
            "webhooks": WEBHOOKS,
        },
    )
    logs.configure(setting("LEDGER_LOG_LEVEL"), config.log_format)
    metrics.install()
    api_state = ApiState.open(config)
    create_tables(api_state.ledger.db, api_state.projections)
    publish_referential(api_state.ledger, api_state.referential)
    app.extensions["ledger"] = api_state

    api = ProblemApi(app, spec_kwargs={"extra_plugins": [ProblemResponses()]})
    api.spec.components.schema("AnswerIn", schema=schemas.AnswerIn)
    api.spec.components.schema("AnswerBatchIn", schema=schemas.AnswerBatchIn)
    api.spec.components.schema("ReferentialOut", schema=schemas.ReferentialOut)
    api.spec.components.schema("WebhookPayload", schema=schemas.WebhookPayload)
    _register(api, app)
    app.register_error_handler(ValidationError, problems.from_validation)
    init_site(app, config)
    app.wsgi_app = ResponseHeaders(  # type: ignore[method-assign]
        BoundedBody(app.wsgi_app, lambda path: _body_cap(config, path))
    )
    init_observe(app, access_log=config.log_format == "json")  # gunicorn's in text mode

    @app.before_request
    def check_api_bodies() -> None:
        """API bodies: capped lower than the verify site's uploads, JSON, well-formed."""
        if request.path.startswith("/api/") and request.path != PDF_CHECK_PATH:
            check_api_body(request, config.max_body_bytes)  # the PDF check reads its own

    app.register_error_handler(StoreUnavailable, _unavailable)
    app.register_error_handler(DomainError, problems.from_domain)
    app.register_error_handler(problems.ApiProblem, problems.from_api)
    app.register_error_handler(Exception, problems.from_unexpected)
    log_redaction.learn_routes(app)
    logging.getLogger("werkzeug").addFilter(REDACTING_FILTER)
    return app


def _unavailable(error: StoreUnavailable) -> Response:
    """503 with Retry-After: problem+json for the API, the error page for the site."""
    response = problems.from_unavailable(error)
    if wants_html():
        page = error_page(ServiceUnavailable(retry_after=problems.RETRY_AFTER_S))
        page.headers["Retry-After"] = response.headers["Retry-After"]
        return page
    return response


def _body_cap(config: Config, path: str) -> int:
    api = path.startswith("/api/") and path != PDF_CHECK_PATH
    return config.max_body_bytes if api else config.max_upload_bytes


def _register(api: Api, app: Flask) -> None:
    from ledger.api import (
        attestation_check,
        attestations,
        candidates,
        certificates,
        certification,
        credentials,
        docs,
        health,
        institutions,
        log,
        monitoring,
        problem_types,
        referential,
        tlog,
    )

    for module in (
        candidates,
        referential,
        certification,
        certificates,
        attestations,
        attestation_check,
        credentials,
        log,
        tlog,
        health,
        institutions,
    ):
        api.register_blueprint(module.blp)
    app.register_blueprint(log.well_known)
    app.register_blueprint(attestations.well_known)
    app.register_blueprint(credentials.did_site)
    app.register_blueprint(docs.bp)
    app.register_blueprint(problem_types.bp)
    app.register_blueprint(monitoring.bp)
