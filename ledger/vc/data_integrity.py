"""Data Integrity proofs with the `eddsa-rdfc-2022` cryptosuite (W3C vc-di-eddsa, section 3.3).

What is signed: sha256(canonical proof configuration) || sha256(canonical
document), both canonicalized with RDFC-1.0 and the proof configuration
carrying the document's `@context`. The signature is Ed25519, the
`proofValue` multibase base58btc. The document loader knows the bundled
contexts only, so neither side fetches anything.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ledger import crypto
from ledger.vc.jsonld import JsonLdError, canonicalize

CRYPTOSUITE = "eddsa-rdfc-2022"
PROOF_TYPE = "DataIntegrityProof"


class ProofError(Exception):
    """A proof that is missing, malformed, from an unknown key or does not verify."""


def _hash_data(document: dict[str, Any], proof_config: dict[str, Any], safe: bool) -> bytes:
    unsecured = {k: v for k, v in document.items() if k != "proof"}
    config = {"@context": document.get("@context"), **proof_config}
    try:
        return crypto.sha256(canonicalize(config, safe).encode()) + crypto.sha256(
            canonicalize(unsecured, safe).encode()
        )
    except JsonLdError as exc:
        raise ProofError(str(exc)) from exc


def add_proof(
    document: dict[str, Any], key: crypto.SigningKey, verification_method: str, created: str
) -> dict[str, Any]:
    """`document` with an assertionMethod proof signed by `key` (listed as `verification_method`)."""
    config = {
        "type": PROOF_TYPE,
        "cryptosuite": CRYPTOSUITE,
        "created": created,
        "verificationMethod": verification_method,
        "proofPurpose": "assertionMethod",
    }
    signature = key.sign(_hash_data(document, config, safe=False))
    return {**document, "proof": {**config, "proofValue": crypto.multibase_b58(signature)}}


def verify_proof(document: dict[str, Any], public_key: Callable[[str], bytes | None]) -> str:
    """The verification method that signed `document`; ProofError says why when it did not.

    `public_key(method_id)` gives the raw Ed25519 key of a verification method
    the verifier accepts for assertions, or None.
    """
    proof = document.get("proof")
    if not isinstance(proof, dict):
        raise ProofError("the document has no single proof")
    if proof.get("type") != PROOF_TYPE or proof.get("cryptosuite") != CRYPTOSUITE:
        raise ProofError(f"the proof is not a {PROOF_TYPE} with cryptosuite {CRYPTOSUITE}")
    if proof.get("proofPurpose") != "assertionMethod":
        raise ProofError("the proof's purpose is not assertionMethod")
    method = proof.get("verificationMethod")
    key = public_key(method) if isinstance(method, str) else None
    if key is None:
        raise ProofError(f"verification method {method!r} is not one of the issuer's keys")
    try:
        signature = crypto.multibase_b58_decode(proof.get("proofValue"))  # type: ignore[arg-type]
    except crypto.CryptoError as exc:
        raise ProofError(f"proofValue: {exc}") from exc
    config = {k: v for k, v in proof.items() if k != "proofValue"}
    if not crypto.verify(key, signature, _hash_data(document, config, safe=True)):
        raise ProofError("the signature does not match the credential: it was changed")
    return method
