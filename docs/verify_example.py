"""Independent verifier of a ledger export, written from docs/LEDGER_FORMAT.md alone.

Usage: python verify_example.py BUNDLE_DIR
Needs only `cryptography` and `rfc8785`; shares no code with the ledger.
"""

import base64
import hashlib
import json
import sys
from pathlib import Path

import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def b64url(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def merkle_root(leaves):  # RFC 9162 section 2.1.1
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + merkle_root(leaves[:k]) + merkle_root(leaves[k:])).digest()


def main(bundle):
    keys = {
        k["kid"]: Ed25519PublicKey.from_public_bytes(b64url(k["x"]))
        for k in json.loads((bundle / "jwks.json").read_text())["keys"]
    }
    prev, leaves = "0" * 64, []
    for line in (bundle / "events.ndjson").read_text().splitlines():
        event = json.loads(line)
        seq = len(leaves) + 1
        body = {k: v for k, v in event.items() if k not in ("hash", "kid", "sig")}
        if event["seq"] != seq or event["prev"] != prev:
            return f"seq {seq}: chain broken"
        if hashlib.sha256(rfc8785.dumps(body)).hexdigest() != event["hash"]:
            return f"seq {seq}: hash mismatch"
        try:
            keys[event["kid"]].verify(b64url(event["sig"]), bytes.fromhex(event["hash"]))
        except Exception:
            return f"seq {seq}: bad signature"
        prev = event["hash"]
        leaves.append(bytes.fromhex(prev))
    origin, size, root = (bundle / "checkpoint.txt").read_text().split("\n")[:3]
    if base64.b64decode(root) != merkle_root(leaves[: int(size)]):
        return "checkpoint root mismatch"
    return f"OK {len(leaves)} events, checkpoint {origin} size {size}"


if __name__ == "__main__":
    print(main(Path(sys.argv[1])))
