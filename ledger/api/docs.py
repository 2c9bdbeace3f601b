"""A browsable API reference rendered on the server from the OpenAPI document.

No CDN script, no JavaScript: it works offline and under a strict CSP.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, render_template

bp = Blueprint(
    "docs", __name__, template_folder="templates", static_folder="static",
    static_url_path="/api/v1/docs/static",
)  # fmt: skip
METHODS = ("get", "post", "put", "patch", "delete")


def _operations(spec: dict[str, Any]) -> list[dict[str, Any]]:
    ops = []
    for path, item in sorted(spec.get("paths", {}).items()):
        for method in METHODS:
            if method in item:
                op = item[method]
                ops.append(
                    {
                        "method": method.upper(),
                        "path": path,
                        "summary": op.get("summary", ""),
                        "description": op.get("description", ""),
                        "secured": bool(op.get("security")),
                        "scopes": op.get("x-required-scopes", []),
                        "request_example": _example(op.get("requestBody")),
                        "response_example": _success_example(op.get("responses", {})),
                        "parameters": _parameters(op, spec),
                        "body": _ref_name(op.get("requestBody")),
                        "responses": sorted(op.get("responses", {}).items()),
                        "tag": (op.get("tags") or [""])[0],
                    }
                )
    return ops


def _parameters(op: dict[str, Any], spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The operation's parameters, a shared one (`$ref` to components) as itself."""
    shared = spec.get("components", {}).get("parameters", {})
    return [
        shared.get(p["$ref"].rsplit("/", 1)[-1], p) if "$ref" in p else p
        for p in op.get("parameters", [])
    ]


def _example(body: dict[str, Any] | None) -> Any:
    """The first example of a request body or response, for the page to show."""
    for entry in (body or {}).get("content", {}).values():
        if "example" in entry:
            return entry["example"]
    return None


def _success_example(responses: dict[str, Any]) -> Any:
    success = [r for status, r in sorted(responses.items()) if status.startswith("2")]
    return next((e for e in map(_example, success) if e is not None), None)


def _ref_name(body: dict[str, Any] | None) -> str:
    if not body:
        return ""
    schema = next(iter(body.get("content", {}).values()), {}).get("schema", {})
    refs = [s.get("$ref", "") for s in schema.get("oneOf", [schema])]
    return " or ".join(r.rsplit("/", 1)[-1] for r in refs if r)


@bp.route("/api/v1/docs")
def docs() -> str:
    spec = current_app.extensions["flask-smorest"]["apis"][""]["ext_obj"].spec.to_dict()
    return render_template(
        "api_docs.html",
        info=spec["info"],
        operations=_operations(spec),
        schemas=sorted(spec.get("components", {}).get("schemas", {}).items()),
    )
