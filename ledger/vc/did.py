"""The issuer's `did:web` identifier and DID document, derived from the public URL and the keys.

`did:web:host%3Aport` resolves to https://host:port/.well-known/did.json (a
path in the public URL becomes `:`-separated segments, resolved to
<url>/did.json). Each Ed25519 key is a `Multikey` whose fragment is its RFC
7638 thumbprint, the `kid` the log's envelopes and the JWKS already use.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

from ledger import crypto
from ledger.vc.jsonld import DID_V1, MULTIKEY_V1


def did_web(public_url: str) -> str:
    """The did:web identifier of the service at `public_url`."""
    parts = urlsplit(public_url)
    host = quote(parts.netloc, safe="")  # host:port -> host%3Aport
    path = [quote(segment, safe="") for segment in parts.path.split("/") if segment]
    return ":".join(["did", "web", host, *path])


def method_id(did: str, kid: str) -> str:
    return f"{did}#{kid}"


def did_document(did: str, public_keys: list[bytes]) -> dict[str, Any]:
    """DID document listing `public_keys` (oldest first) for assertions and authentication."""
    methods = [
        {
            "id": method_id(did, crypto.jwk_thumbprint(raw)),
            "type": "Multikey",
            "controller": did,
            "publicKeyMultibase": crypto.ed25519_multikey(raw),
        }
        for raw in public_keys
    ]
    ids = [m["id"] for m in methods]
    return {
        "@context": [DID_V1, MULTIKEY_V1],
        "id": did,
        "verificationMethod": methods,
        "assertionMethod": ids,
        "authentication": ids,
    }


def assertion_key(did_doc: dict[str, Any], method: str) -> bytes | None:
    """Raw Ed25519 key of `method` if the DID document lists it for assertions, else None."""
    if not isinstance(did_doc, dict) or method not in (did_doc.get("assertionMethod") or []):
        return None
    for entry in did_doc.get("verificationMethod") or []:
        if (
            isinstance(entry, dict)
            and entry.get("id") == method
            and entry.get("type") == "Multikey"
            and entry.get("controller") == did_doc.get("id")
        ):
            try:
                return crypto.public_key_from_multikey(entry.get("publicKeyMultibase", ""))
            except crypto.CryptoError:
                return None
    return None
