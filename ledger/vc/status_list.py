"""W3C Bitstring Status List (v1.0): entries in credentials, and the list credential itself.

A list holds SIZE bits (16 KiB, the spec's minimum, for group privacy);
bit `i` is the most significant bit-first position `i` of the bitstring, set
when the credential with `statusListIndex` i is revoked. The list travels
GZIP-compressed, as multibase base64url (prefix 'u', no padding).
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterable
from typing import Any

from ledger import crypto
from ledger.vc.jsonld import VC_V2

SIZE = 131_072  # bits: 16 KiB
PURPOSE = "revocation"
MAX_ENCODED = 1_000_000  # a list larger than this, compressed, is refused unread


class StatusListError(ValueError):
    """An encodedList or status entry that cannot be read."""


def place(index: int) -> tuple[int, int]:
    """(list number from 1, index within that list) of a certificate's global index."""
    return index // SIZE + 1, index % SIZE


def encode(revoked: Iterable[int]) -> str:
    """The `encodedList` of a list with the bits at `revoked` set."""
    bits = bytearray(SIZE // 8)
    for index in revoked:
        if not 0 <= index < SIZE:
            raise StatusListError(f"index {index} outside the list")
        bits[index // 8] |= 0x80 >> (index % 8)
    return "u" + crypto.b64url(gzip.compress(bytes(bits), mtime=0))


def decode(encoded: str) -> bytes:
    """The bitstring of an `encodedList`; StatusListError if it is not one."""
    if not isinstance(encoded, str) or not encoded.startswith("u") or len(encoded) > MAX_ENCODED:
        raise StatusListError("encodedList is not multibase base64url")
    try:
        packed = crypto.b64url_decode(encoded[1:])
        inflater = zlib.decompressobj(wbits=31)  # gzip, bounded: no decompression bomb
        bits = inflater.decompress(packed, SIZE // 8 * 64)
    except (crypto.CryptoError, zlib.error) as exc:
        raise StatusListError("encodedList is not GZIP in base64url") from exc
    if len(bits) < SIZE // 8 or inflater.unconsumed_tail:
        raise StatusListError("the bitstring is shorter than 16 KiB or too large")
    return bits


def is_set(bits: bytes, index: int) -> bool:
    if not 0 <= index < len(bits) * 8:
        raise StatusListError(f"statusListIndex {index} is outside the list")
    return bool(bits[index // 8] & (0x80 >> (index % 8)))


def entry(list_url: str, index: int) -> dict[str, Any]:
    """The `credentialStatus` of the credential at `index` of the list at `list_url`."""
    return {
        "id": f"{list_url}#{index}",
        "type": "BitstringStatusListEntry",
        "statusPurpose": PURPOSE,
        "statusListIndex": str(index),
        "statusListCredential": list_url,
    }


def list_credential(
    issuer: str, list_url: str, revoked: Iterable[int], valid_from: str
) -> dict[str, Any]:
    """The unsigned BitstringStatusListCredential for the list at `list_url`."""
    return {
        "@context": [VC_V2],
        "id": list_url,
        "type": ["VerifiableCredential", "BitstringStatusListCredential"],
        "issuer": issuer,
        "validFrom": valid_from,
        "credentialSubject": {
            "id": f"{list_url}#list",
            "type": "BitstringStatusList",
            "statusPurpose": PURPOSE,
            "encodedList": encode(revoked),
        },
    }
