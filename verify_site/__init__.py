"""The public verify site: server-rendered pages, French by default, no build step."""

from __future__ import annotations

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from ledger.api.limits import init_limits
from ledger.config import Config
from verify_site.views import site


def init_site(app: Flask, config: Config) -> None:
    if config.proxy_hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=config.proxy_hops, x_proto=config.proxy_hops)  # type: ignore[method-assign]
    init_limits(app, config)
    app.register_blueprint(site)
