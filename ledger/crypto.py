"""Every cryptographic primitive the ledger uses, in one place.

JCS canonical JSON (RFC 8785), SHA-256, Ed25519 signing and verification,
RFC 7638 JWK thumbprints, base64url, base58btc multibase and Multikey (for
Data Integrity proofs), AES-256-GCM sealing/key wrapping, and the ECDSA P-256
X.509 certificates that sign attestation PDFs (PDF readers do not validate
EdDSA). Nothing else in the code base touches `cryptography` directly, so an audit of
what is signed, and how, starts and ends here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from typing import Any

import rfc8785
from cryptography import x509
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

ZERO_HASH = "0" * 64
NONCE_BYTES = 12
DATA_KEY_BYTES = 32


PARALLEL_SIGNING_MIN = 128
_pools: dict[int, ThreadPoolExecutor] = {}


def _signing_pool(threads: int) -> ThreadPoolExecutor:
    if threads not in _pools:
        _pools[threads] = ThreadPoolExecutor(threads, thread_name_prefix="sign")
    return _pools[threads]


class CryptoError(Exception):
    """A signature, seal or key that does not check out."""


# --- encodings -------------------------------------------------------------


def b64url(raw: bytes) -> str:
    """Base64url without padding (RFC 7515 section 2)."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Inverse of `b64url`; raises CryptoError on anything malformed."""
    if not isinstance(text, str) or "=" in text:
        raise CryptoError("not unpadded base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise CryptoError("not unpadded base64url") from exc


def b64(raw: bytes) -> str:
    """Standard padded base64, as C2SP notes and RFC 9162 proofs use."""
    return base64.b64encode(raw).decode("ascii")


def b64_decode(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (ValueError, TypeError) as exc:
        raise CryptoError("not base64") from exc


_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58)}
ED25519_MULTICODEC = b"\xed\x01"  # multicodec varint of ed25519-pub


def b58btc(raw: bytes) -> str:
    """Bitcoin base58: leading zero bytes become '1's, the rest a big-endian number."""
    number = int.from_bytes(raw, "big")
    digits = ""
    while number:
        number, rest = divmod(number, 58)
        digits = _B58[rest] + digits
    return "1" * (len(raw) - len(raw.lstrip(b"\0"))) + digits


def b58btc_decode(text: str) -> bytes:
    if not isinstance(text, str) or any(c not in _B58_INDEX for c in text):
        raise CryptoError("not base58btc")
    number = 0
    for c in text:
        number = number * 58 + _B58_INDEX[c]
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    return b"\0" * (len(text) - len(text.lstrip("1"))) + body


def multibase_b58(raw: bytes) -> str:
    """Multibase base58btc ('z' prefix), as Data Integrity proofValues and Multikeys use."""
    return "z" + b58btc(raw)


def multibase_b58_decode(text: str) -> bytes:
    if not isinstance(text, str) or not text.startswith("z"):
        raise CryptoError("not multibase base58btc (no 'z' prefix)")
    return b58btc_decode(text[1:])


def ed25519_multikey(public_raw: bytes) -> str:
    """`publicKeyMultibase` of an Ed25519 Multikey: 'z6Mk...' (multicodec 0xed01 + key)."""
    return multibase_b58(ED25519_MULTICODEC + public_raw)


def public_key_from_multikey(text: str) -> bytes:
    """Raw Ed25519 public key of a Multikey `publicKeyMultibase`; CryptoError otherwise."""
    raw = multibase_b58_decode(text)
    if not raw.startswith(ED25519_MULTICODEC) or len(raw) != 34:
        raise CryptoError("not an Ed25519 Multikey")
    return raw[2:]


# --- canonical JSON and hashes --------------------------------------------


MAX_SAFE_INT = 2**53 - 1
_fast_dumps = json.JSONEncoder(
    ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
).encode


def _plain(value: Any) -> bool:
    """True when the stdlib encoder's output is already JCS for `value`.

    That holds for strings, booleans, None, safe integers, lists, and objects whose
    keys are ASCII (so code-point and UTF-16 key orders agree). Floats and anything
    unusual go through `rfc8785`, the reference implementation. Written as plain
    loops: this runs once per stored event.
    """
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return -MAX_SAFE_INT <= value <= MAX_SAFE_INT
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or not key.isascii() or not _plain(item):
                return False
        return True
    if kind is list:
        return all(_plain(item) for item in value)  # lists are rare in payloads
    return False


def canonical_json(value: Any) -> bytes:
    """RFC 8785 (JCS) bytes of `value`: what every hash and signature covers.

    Event payloads (ASCII keys, no floats) take the C encoder, whose output is
    identical there (tests compare both on generated values); the rest `rfc8785`.
    """
    if _plain(value):
        return _fast_dumps(value).encode("utf-8")
    return rfc8785.dumps(value)


canonical_str_member = encode_basestring
"""JCS form of one JSON string: RFC 8785 escapes exactly what the stdlib's C escaper does."""


def sha256(raw: bytes) -> bytes:
    return hashlib.sha256(raw).digest()


def sha256_hex(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


# --- Ed25519 ---------------------------------------------------------------


class SigningKey:
    """An Ed25519 private key with its public JWK and RFC 7638 `kid`."""

    def __init__(self, private: Ed25519PrivateKey):
        self._private = private
        self.public_raw = private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.kid = jwk_thumbprint(self.public_raw)

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_pem(cls, pem: bytes) -> SigningKey:
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError) as exc:
            raise CryptoError("not a PEM private key") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise CryptoError("not an Ed25519 private key")
        return cls(key)

    def to_pem(self) -> bytes:
        return self._private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def sign(self, message: bytes) -> bytes:
        return self._private.sign(message)

    def sign_many(self, messages: list[bytes], threads: int = 1) -> list[bytes]:
        """Signatures of `messages`, in order; large batches on several threads.

        OpenSSL releases the GIL while signing, so a batch of a thousand events signs
        in about 1/threads of the time. Small batches stay on the calling thread.
        """
        if threads <= 1 or len(messages) < PARALLEL_SIGNING_MIN:
            return [self._private.sign(m) for m in messages]
        size = -(-len(messages) // threads)
        parts = [messages[i : i + size] for i in range(0, len(messages), size)]
        signed = _signing_pool(threads).map(
            lambda part: [self._private.sign(m) for m in part], parts
        )
        return [signature for part in signed for signature in part]

    def public_jwk(self) -> dict[str, str]:
        return public_jwk(self.public_raw)

    def __repr__(self) -> str:  # never print key material
        return f"SigningKey(kid={self.kid!r})"


def public_jwk(public_raw: bytes) -> dict[str, str]:
    """RFC 8037 OKP JWK for an Ed25519 public key, as served in the JWKS."""
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": b64url(public_raw),
        "kid": jwk_thumbprint(public_raw),
        "alg": "EdDSA",
        "use": "sig",
    }


def jwk_thumbprint(public_raw: bytes) -> str:
    """RFC 7638 thumbprint: SHA-256 over the required members in JCS order."""
    required = {"crv": "Ed25519", "kty": "OKP", "x": b64url(public_raw)}
    return b64url(sha256(canonical_json(required)))


def public_key_from_jwk(jwk: dict[str, Any]) -> bytes:
    """Raw 32-byte public key of an Ed25519 OKP JWK, checked against its `kid`."""
    if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
        raise CryptoError("JWK is not an Ed25519 OKP key")
    raw = b64url_decode(str(jwk.get("x", "")))
    if len(raw) != 32:
        raise CryptoError("JWK x is not 32 bytes")
    if "kid" in jwk and jwk["kid"] != jwk_thumbprint(raw):
        raise CryptoError("JWK kid is not its RFC 7638 thumbprint")
    return raw


def verify(public_raw: bytes, signature: bytes, message: bytes) -> bool:
    """True when `signature` is a valid Ed25519 signature of `message`."""
    try:
        Ed25519PublicKey.from_public_bytes(public_raw).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def verify_batch(items: list[tuple[bytes, bytes, bytes]]) -> int | None:
    """Index of the first (public key, signature, message) that does not verify, else None.

    Each distinct key is loaded once per batch: an audit's batches share one or two keys.
    """
    loaded: dict[bytes, Ed25519PublicKey | None] = {}
    for index, (public_raw, signature, message) in enumerate(items):
        if public_raw not in loaded:
            try:
                loaded[public_raw] = Ed25519PublicKey.from_public_bytes(public_raw)
            except ValueError:
                loaded[public_raw] = None
        key = loaded[public_raw]
        try:
            if key is None:
                return index
            key.verify(signature, message)
        except InvalidSignature:
            return index
    return None


# --- AES-256-GCM sealing (crypto-shredding) --------------------------------


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def seal(key: bytes, plaintext: bytes, aad: bytes = b"") -> bytes:
    """nonce || AES-256-GCM(ciphertext+tag); a fresh random nonce per call."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad or None)


def unseal(key: bytes, sealed: bytes, aad: bytes = b"") -> bytes:
    if len(sealed) < NONCE_BYTES + 16:
        raise CryptoError("sealed value too short")
    try:
        return AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad or None)
    except InvalidTag as exc:
        raise CryptoError("sealed value does not open with this key") from exc


def derive_key(secret: bytes, info: bytes) -> bytes:
    """A 256-bit key bound to `info`, from a high-entropy secret (HKDF-SHA256)."""
    return HKDF(algorithm=hashes.SHA256(), length=DATA_KEY_BYTES, salt=None, info=info).derive(
        secret
    )


def hmac_sha256_hex(key: bytes, data: bytes) -> str:
    """Keyed digest: without the key, a guess of `data` cannot be confirmed."""
    return hmac.new(key, data, hashlib.sha256).hexdigest()


def random_token(nbytes: int = 32) -> str:
    return b64url(os.urandom(nbytes))


# --- ECDSA P-256 X.509: the attestation PDFs' issuing CA and signing certificate ---


CA_VALIDITY_DAYS = 25 * 365
DOCUMENT_CERT_VALIDITY_DAYS = 10 * 365


def new_p256_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def private_key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def load_p256_key(pem: bytes) -> ec.EllipticCurvePrivateKey:
    """An ECDSA P-256 private key from PEM; CryptoError for anything else."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise CryptoError("not a PEM private key") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise CryptoError("not an ECDSA P-256 private key")
    return key


def load_certificate(pem: bytes) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise CryptoError("not a PEM X.509 certificate") from exc


def certificate_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def certificate_fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the DER certificate, lowercase hex: what the log records for the CA."""
    return cert.fingerprint(hashes.SHA256()).hex()


def _name(common_name: str, organization: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(x509.NameOID.COUNTRY_NAME, "FR"),
            x509.NameAttribute(x509.NameOID.ORGANIZATION_NAME, organization[:64]),
            x509.NameAttribute(x509.NameOID.COMMON_NAME, common_name[:64]),
        ]
    )


def _builder(subject: x509.Name, issuer: x509.Name, public: Any, days: int) -> Any:
    now = datetime.now(UTC).replace(microsecond=0)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
    )


def issue_ca(key: ec.EllipticCurvePrivateKey, organization: str) -> x509.Certificate:
    """A self-signed issuing CA: may sign certificates, nothing else, one level deep."""
    name = _name(f"{organization} attestation CA", organization)
    usage = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
    return (
        _builder(name, name, key.public_key(), CA_VALIDITY_DAYS)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage, critical=True)
        .sign(key, hashes.SHA256())
    )


def issue_document_cert(
    ca_key: ec.EllipticCurvePrivateKey,
    ca: x509.Certificate,
    public: ec.EllipticCurvePublicKey,
    organization: str,
) -> x509.Certificate:
    """A document-signing certificate under `ca`: digitalSignature and nonRepudiation only."""
    usage = x509.KeyUsage(True, True, False, False, False, False, False, False, False)
    return (
        _builder(
            _name(f"{organization} attestations", organization),
            ca.subject,
            public,
            DOCUMENT_CERT_VALIDITY_DAYS,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )


def ecdsa_p256_sign(key: ec.EllipticCurvePrivateKey, message: bytes) -> bytes:
    """One ECDSA P-256 / SHA-256 signature (DER): the bare cost the benchmark compares with."""
    return key.sign(message, ec.ECDSA(hashes.SHA256()))


def compact_jws(payload: dict[str, Any], key: SigningKey, typ: str) -> str:
    """RFC 7515 compact JWS (EdDSA) of `payload` as JCS: any JOSE library checks it with the JWKS."""
    header = {"alg": "EdDSA", "kid": key.kid, "typ": typ}
    signing_input = f"{b64url(canonical_json(header))}.{b64url(canonical_json(payload))}"
    return f"{signing_input}.{b64url(key.sign(signing_input.encode('ascii')))}"


def content_digest(body: bytes) -> str:
    """RFC 9530 Content-Digest header value (sha-256)."""
    return f"sha-256=:{b64(sha256(body))}:"


def http_signature_headers(key: SigningKey, url: str, body: bytes, created: int) -> dict[str, str]:
    """RFC 9421 HTTP Message Signature (ed25519) of a JSON POST: method, target, digest, type."""
    digest = content_digest(body)
    params = (
        '("@method" "@target-uri" "content-digest" "content-type")'
        f';created={created};keyid="{key.kid}";alg="ed25519"'
    )
    base = (
        f'"@method": POST\n"@target-uri": {url}\n"content-digest": {digest}\n'
        f'"content-type": application/json\n"@signature-params": {params}'
    )
    return {
        "Content-Type": "application/json",
        "Content-Digest": digest,
        "Signature-Input": f"sig1={params}",
        "Signature": f"sig1=:{b64(key.sign(base.encode('utf-8')))}:",
    }
