"""The v1 event envelope (LEDGER_FORMAT.md section 2): build, seal with a signature, check.

`hash` = SHA-256 of JCS(envelope without hash, kid, sig); `sig` = Ed25519
over the 32 raw bytes of `hash` (the recorder signs). Writers build the JCS bytes by placing the
already-canonical `data` inside the fixed member order, which is exactly what
RFC 8785 produces (tests pin this against the `rfc8785` package); checkers
use the literal spec path: parse, drop three members, canonicalize, hash.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ledger import crypto

HASHED_FIELDS = ("seq", "id", "stream", "version", "type", "time", "data", "prev")
ENVELOPE_FIELDS = (*HASHED_FIELDS, "hash", "kid", "sig")


@dataclass(frozen=True)
class Envelope:
    """One stored event as auditors see it; `data_json` is its JCS text."""

    seq: int
    id: str
    stream: str
    version: int
    type: str
    time: str
    data_json: str
    prev: str
    hash: str
    kid: str
    sig: str

    @property
    def data(self) -> dict[str, Any]:
        return json.loads(self.data_json)

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "id": self.id,
            "stream": self.stream,
            "version": self.version,
            "type": self.type,
            "time": self.time,
            "data": self.data,
            "prev": self.prev,
            "hash": self.hash,
            "kid": self.kid,
            "sig": self.sig,
        }

    def to_json_line(self) -> str:
        """One ndjson line, members in spec order, data verbatim (already JCS)."""
        head = ",".join(
            f"{json.dumps(name)}:{json.dumps(getattr(self, name), ensure_ascii=False)}"
            for name in ("seq", "id", "stream", "version", "type", "time")
        )
        tail = ",".join(
            f"{json.dumps(name)}:{json.dumps(getattr(self, name))}"
            for name in ("prev", "hash", "kid", "sig")
        )
        return "{" + head + ',"data":' + self.data_json + "," + tail + "}"


def _jstr(value: str) -> str:
    return crypto.canonical_str_member(value)


def hashed_bytes(
    seq: int, id: str, stream: str, version: int, type: str, time: str, data_json: str, prev: str
) -> bytes:
    """JCS bytes of the hashed members, built in RFC 8785 member order."""
    return linked_bytes(hashed_template(id, stream, version, type, time, data_json), seq, prev)


HashedTemplate = tuple[bytes, bytes]
"""`hashed_bytes` without its chain-dependent members: the bytes before `prev` and after `seq`."""


def hashed_template(
    id: str, stream: str, version: int, type: str, time: str, data_json: str
) -> HashedTemplate:
    """Everything `hashed_bytes` holds but `prev` and `seq`, built before the append lock."""
    head = f'{{"data":{data_json},"id":{_jstr(id)},"prev":'
    tail = (
        f',"stream":{_jstr(stream)},"time":{_jstr(time)},"type":{_jstr(type)},'
        f'"version":{int(version)}}}'
    )
    return head.encode("utf-8"), tail.encode("utf-8")


def linked_bytes(template: HashedTemplate, seq: int, prev: str) -> bytes:
    """`hashed_bytes` from its template once the chain gave the event its `seq` and `prev`."""
    head, tail = template
    return b"".join((head, _jstr(prev).encode("utf-8"), b',"seq":', b"%d" % int(seq), tail))


def check_hash(record: dict[str, Any]) -> bool:
    """Spec path: JCS of the record minus hash/kid/sig hashes to its `hash`."""
    body = {k: v for k, v in record.items() if k not in ("hash", "kid", "sig")}
    try:
        return crypto.sha256_hex(crypto.canonical_json(body)) == record.get("hash")
    except (TypeError, ValueError):  # a value JCS cannot encode: not a valid envelope
        return False


def signature_input(record: dict[str, Any]) -> tuple[bytes, bytes] | None:
    """(signature, signed message = raw `hash` bytes), or None when either is malformed."""
    try:
        digest = bytes.fromhex(str(record["hash"]))
        signature = crypto.b64url_decode(str(record["sig"]))
    except (KeyError, ValueError, crypto.CryptoError):
        return None
    return (signature, digest) if len(digest) == 32 else None


def check_signature(record: dict[str, Any], public_raw: bytes) -> bool:
    """`sig` is a valid Ed25519 signature of the raw `hash` bytes under `public_raw`."""
    parts = signature_input(record)
    return parts is not None and crypto.verify(public_raw, *parts)
