"""Request bodies of the API, checked once before any view runs.

Every POST body is read with the API's cap (so a chunked body without
Content-Length is refused past the cap too), must be declared JSON, must be
strict UTF-8 and parse as one JSON object without duplicate keys, NaN or
non-finite numbers. Anything else is a 4xx problem here, so no view, parser
or serializer ever sees input that could raise inside the framework
(Python's json raises RecursionError on deep nesting and ValueError on
integers of more than 4,300 digits).
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable
from typing import Any

from flask import Request

from ledger.api.problems import ApiProblem

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
TOO_LARGE = "ledger.body_too_large"
PARSED = "ledger.body_json"  # the checked JSON document, so a view need not parse it again


class BoundedBody:
    """WSGI middleware reading a body without Content-Length (chunked) up to a cap.

    werkzeug silently truncates such a body at the cap instead of refusing
    it, so it is read here with one byte to spare: over the cap, the request
    is marked and answered 413 by the app; under it, the body is handed on
    with its Content-Length like any other.
    """

    def __init__(self, app: Callable[..., Any], cap: Callable[[str], int]):
        self.app, self.cap = app, cap

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        if chunked and not environ.get("CONTENT_LENGTH") and environ.get("wsgi.input_terminated"):
            cap = self.cap(environ.get("PATH_INFO", ""))
            data = environ["wsgi.input"].read(cap + 1)
            if len(data) > cap:
                environ[TOO_LARGE] = True
                data = b""
            environ["wsgi.input"] = io.BytesIO(data)
            environ["CONTENT_LENGTH"] = str(len(data))
        return self.app(environ, start_response)


def check_api_body(request: Request, max_bytes: int) -> None:
    """Raise ApiProblem (413/415/400) unless the request's body is acceptable JSON."""
    if request.environ.get(TOO_LARGE) or (request.content_length or 0) > max_bytes:
        raise ApiProblem(
            413, "content-too-large", f"request bodies are limited to {max_bytes} bytes"
        )
    if request.method not in BODY_METHODS:
        return
    data = request.get_data(cache=True)
    if not data:
        return
    if not request.is_json:
        raise ApiProblem(
            415, "unsupported-media-type", "send the body as Content-Type: application/json"
        )
    document = parse(data)
    if not isinstance(document, dict):  # every request schema of the API is an object
        raise _malformed("the request body must be a JSON object")
    request.environ[PARSED] = document


def parse(data: bytes) -> Any:
    """The JSON document in `data`, or ApiProblem 400 naming what is wrong with it."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise _malformed("the request body is not UTF-8") from None
    try:
        document = json.loads(
            text, object_pairs_hook=_unique_keys, parse_constant=_no_constant, parse_float=_finite
        )
    except RecursionError:  # nesting the schemas' own depth limit (422) never reaches
        raise _malformed("the request body nests too deeply to be read") from None
    except json.JSONDecodeError as error:
        raise _malformed(f"the request body is not valid JSON: {error}") from None
    except ValueError:  # a duplicate key, NaN/Infinity, 1e999, an integer of > 4,300 digits
        raise _malformed(
            "the request body has a duplicate key, NaN/Infinity or an oversize number"
        ) from None
    return document


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) != len(pairs):
        raise ValueError("duplicate key in an object")
    return document


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):  # 1e999 would become inf
        raise ValueError("a number overflows")
    return number


def _malformed(detail: str) -> ApiProblem:
    return ApiProblem(400, "malformed-json", detail)
