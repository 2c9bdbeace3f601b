"""The attestation PDFs' X.509 identity: issuing CA, document-signing certificate, log entry.

PDF readers people use (Adobe, poppler/NSS) do not validate EdDSA, so attestations
are signed with an ECDSA P-256 certificate issued by the ledger's own CA. The files
live in `<keys dir>/attestation/` (never in the repository), or wherever
LEDGER_ATTESTATION_CERT / _KEY / _CA point. The CA's SHA-256 fingerprint is logged
once as a signed `attestation.CaPublished` event, so a PDF's chain of trust ends
in the log, which auditors already check.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from ledger import crypto
from ledger.config import Config
from ledger.keys import write_secret

DIRECTORY = "attestation"
CA_CERT, CA_KEY, CERT, KEY = "ca.pem", "ca.key", "signer.pem", "signer.key"
ORGANIZATION = "Certification CRCN"
CA_PUBLISHED = "attestation.CaPublished"
CA_FILE = "attestation-ca.pem"  # its name in audit bundles
_STREAM_NAMESPACE = uuid.UUID("0b0e4c52-5d8e-4f43-8f5a-7d2f0e6a9c31")
_FINGERPRINT = re.compile(r"^[0-9a-f]{64}$")
MAX_SUBJECT = 300


class AttestationKeyError(Exception):
    """The attestation certificate, key or CA is missing or does not fit together."""


@dataclass(frozen=True)
class AttestationIdentity:
    """The document-signing key, its certificate and the issuing CA."""

    ca: x509.Certificate
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey = field(repr=False)

    @property
    def fingerprint(self) -> str:
        return crypto.certificate_fingerprint(self.ca)

    @property
    def ca_pem(self) -> bytes:
        return crypto.certificate_pem(self.ca)


def _paths(config: Config) -> tuple[Path, Path, Path]:
    base = config.keys_dir / DIRECTORY
    return (
        config.attestation_cert or base / CERT,
        config.attestation_key or base / KEY,
        config.attestation_ca or base / CA_CERT,
    )


def ensure_files(config: Config) -> bool:
    """Create the CA and the document-signing certificate if none is configured or present."""
    if config.attestation_cert or (config.keys_dir / DIRECTORY / CERT).is_file():
        return False
    base = config.keys_dir / DIRECTORY
    base.mkdir(parents=True, exist_ok=True)
    ca_key, key = crypto.new_p256_key(), crypto.new_p256_key()
    ca = crypto.issue_ca(ca_key, ORGANIZATION)
    cert = crypto.issue_document_cert(ca_key, ca, key.public_key(), ORGANIZATION)
    write_secret(base / CA_KEY, crypto.private_key_pem(ca_key))
    write_secret(base / KEY, crypto.private_key_pem(key))
    write_secret(base / CA_CERT, crypto.certificate_pem(ca))
    write_secret(base / CERT, crypto.certificate_pem(cert))
    return True


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        raise AttestationKeyError(
            f"no attestation {what} at {path.name}: run `ledger keys init` "
            "or set LEDGER_ATTESTATION_CERT, _KEY and _CA"
        ) from None


def load(config: Config) -> AttestationIdentity:
    """The configured (or generated) identity, checked to fit together."""
    cert_path, key_path, ca_path = _paths(config)
    try:
        cert = crypto.load_certificate(_read(cert_path, "certificate"))
        key = crypto.load_p256_key(_read(key_path, "key"))
        ca = crypto.load_certificate(_read(ca_path, "CA certificate"))
    except crypto.CryptoError as exc:
        raise AttestationKeyError(f"attestation signing identity: {exc}") from exc
    if cert.public_key() != key.public_key():
        raise AttestationKeyError("the attestation key does not belong to its certificate")
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, crypto.InvalidSignature) as exc:
        raise AttestationKeyError("the attestation certificate is not issued by the CA") from exc
    return AttestationIdentity(ca=ca, cert=cert, key=key)


# --- the CA in the log ---------------------------------------------------------


def published_payload(identity: AttestationIdentity) -> dict[str, str]:
    return {"fingerprint": identity.fingerprint, "subject": identity.ca.subject.rfc4514_string()}


def payload_problem(data: Any) -> str:
    """Why a CaPublished payload is malformed, or ''."""
    if not isinstance(data, dict) or set(data) != {"fingerprint", "subject"}:
        return "attestation.CaPublished must hold exactly fingerprint and subject"
    if not isinstance(data["fingerprint"], str) or not _FINGERPRINT.match(data["fingerprint"]):
        return "attestation.CaPublished fingerprint is not 64 lowercase hex digits"
    subject = data["subject"]
    if not isinstance(subject, str) or not subject.isprintable() or len(subject) > MAX_SUBJECT:
        return "attestation.CaPublished subject is not a printable name"
    return ""


def ca_stream(fingerprint: str) -> str:
    return str(uuid.uuid5(_STREAM_NAMESPACE, fingerprint))


def published_seqs(recorder: Any) -> dict[str, list[int]]:
    """Fingerprint -> seqs of every well-formed CaPublished event in the log (unverified)."""
    found: dict[str, list[int]] = {}
    for env in recorder.iter_envelopes_of_type(CA_PUBLISHED):
        data = env.data
        if not payload_problem(data) and env.stream == ca_stream(data["fingerprint"]):
            found.setdefault(data["fingerprint"], []).append(env.seq)
    return found


def published_fingerprints(recorder: Any) -> dict[str, int]:
    """Fingerprint -> seq of the first well-formed CaPublished event of each CA (unverified)."""
    return {fingerprint: seqs[0] for fingerprint, seqs in published_seqs(recorder).items()}


def ensure_published(
    recorder: Any, identity: AttestationIdentity, sound: Callable[[int], bool]
) -> int:
    """The seq of the event logging this CA, written now if the log has no sound one yet.

    `sound(seq)` checks a stored event (hash, trusted signature, chain link): a
    row someone inserted for our fingerprint must not stop the genuine event.
    """
    seqs = published_seqs(recorder).get(identity.fingerprint, [])
    known = next((seq for seq in seqs if sound(seq)), None)
    if known is not None:
        return known
    payload = published_payload(identity)
    problem = payload_problem(payload)
    if problem:
        raise AttestationKeyError(problem)
    from ledger.store.recorder import ConcurrencyConflict

    try:
        return recorder.record_fact(ca_stream(identity.fingerprint), CA_PUBLISHED, payload)
    except ConcurrencyConflict:  # another process logged it first
        return published_fingerprints(recorder)[identity.fingerprint]
