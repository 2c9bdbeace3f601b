"""WSGI entry point: `gunicorn wsgi:app` or `ledger serve`.

The API and the public verify site are one Flask application.
"""

from __future__ import annotations

from flask import Flask

from ledger.server import load_app


def create_wsgi_app() -> Flask:
    return load_app()


def __getattr__(name: str) -> Flask:
    """`wsgi:app` builds the app lazily, in the worker that imports it."""
    if name == "app":
        return create_wsgi_app()
    raise AttributeError(name)
