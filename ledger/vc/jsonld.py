"""JSON-LD with the bundled contexts only: the document loader and RDF canonicalization.

The loader serves the contexts in ledger/vc/contexts and refuses every other
URL, so issuing or checking a credential never touches the network and a
credential cannot make the verifier fetch anything.
"""

from __future__ import annotations

import copy
import functools
import json
from importlib import resources
from typing import Any

from pyld import jsonld

VC_V2 = "https://www.w3.org/ns/credentials/v2"
OB_V3 = "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"
DID_V1 = "https://www.w3.org/ns/did/v1"
MULTIKEY_V1 = "https://w3id.org/security/multikey/v1"
CONTEXT_FILES = {
    VC_V2: "credentials-v2.json",
    OB_V3: "ob-v3p0-3.0.3.json",
    DID_V1: "did-v1.json",
    MULTIKEY_V1: "multikey-v1.json",
}


class JsonLdError(ValueError):
    """A document that cannot be processed with the bundled contexts, or drops terms."""


@functools.cache
def _context(url: str) -> dict[str, Any]:
    text = resources.files("ledger.vc.contexts").joinpath(CONTEXT_FILES[url]).read_text("utf-8")
    return json.loads(text)


def bundled_context(url: str) -> dict[str, Any]:
    """A copy of one bundled context document (e.g. for a verifier's own loader)."""
    return copy.deepcopy(_context(url))


def document_loader(url: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """pyld loader: the bundled contexts, nothing else."""
    if url not in CONTEXT_FILES:
        raise jsonld.JsonLdError(
            f"context {url} is not bundled",
            "jsonld.LoadDocumentError",
            code="loading document failed",
        )
    return {"contextUrl": None, "documentUrl": url, "document": _context(url)}


def canonicalize(document: dict[str, Any], safe: bool = True) -> str:
    """RDF Dataset Canonicalization (RDFC-1.0, formerly URDNA2015) as N-Quads.

    Like the reference implementations' safe mode, a term the contexts do not
    define is an error rather than silently left out of what gets signed.
    The issuer skips that check (`safe=False`, half the cost) on documents it
    built itself; the tests verify every shape it issues in safe mode.
    """
    options = {
        "algorithm": "URDNA2015",
        "format": "application/n-quads",
        "documentLoader": document_loader,
    }
    try:
        if safe:
            check_terms(document)
        return jsonld.normalize(document, options)
    except (jsonld.JsonLdError, TypeError, ValueError, KeyError, AttributeError) as exc:
        if isinstance(exc, JsonLdError):
            raise
        raise JsonLdError(f"not processable JSON-LD: {str(exc).splitlines()[0]}") from exc


def check_terms(document: dict[str, Any]) -> None:
    """Raise JsonLdError when expansion would drop a value or leave a relative type.

    Every leaf value of the compact document must survive in its expanded form
    (an undefined property would vanish from the signed N-Quads, so changing it
    would not break the signature), and every type must become an absolute IRI.
    """
    expanded = jsonld.expand(document, {"documentLoader": document_loader})
    kept: set[str] = set()
    types: list[str] = []
    _expanded_leaves(expanded, kept, types)
    relative = [t for t in types if ":" not in t]
    if relative:
        raise JsonLdError(f"type(s) not defined by the contexts: {', '.join(relative)}")
    for value in _compact_leaves(document):
        if value not in kept and not any(k.endswith(value) for k in kept):
            raise JsonLdError(f"value {value!r} is under a term the contexts do not define")


def _expanded_leaves(node: Any, kept: set[str], types: list[str]) -> None:
    if isinstance(node, list):
        for item in node:
            _expanded_leaves(item, kept, types)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == "@type":
                items = value if isinstance(value, list) else [value]
                types.extend(str(t) for t in items)
                kept.update(str(t) for t in items)
            else:
                _expanded_leaves(value, kept, types)
    elif node is not None:
        kept.add(_text(node))


def _compact_leaves(node: Any) -> list[str]:
    if isinstance(node, list):
        return [leaf for item in node for leaf in _compact_leaves(item)]
    if isinstance(node, dict):
        return [
            leaf
            for key, value in node.items()
            if key not in ("@context", "type", "@type")
            for leaf in _compact_leaves(value)
        ]
    return [] if node is None else [_text(node)]


def _text(value: Any) -> str:
    return json.dumps(value) if isinstance(value, bool) else str(value)
