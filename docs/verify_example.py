"""Independent verifier of a ledger export, written from docs/LEDGER_FORMAT.md (v1.1) alone.

Usage: python verify_example.py BUNDLE_DIR ANCHOR [SAVED_CHECKPOINT]
ANCHOR is the log's trust anchor, obtained out of band (the line `ledger init`
prints: `<origin>+<key hash>+<base64 key>`). Keys are accepted only through the
endorsement chain rooted in it; the bundle's jwks.json is not used. With
SAVED_CHECKPOINT (a checkpoint.txt kept from an earlier audit) the log must still
extend it: same root over its first events, so a truncated or rewritten history
fails. Prints OK and exits 0, or prints the first failure and exits 1.
Needs only `cryptography` and `rfc8785`; shares no code with the ledger.
"""

import base64
import hashlib
import json
import sys
from pathlib import Path

import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

MEMBERS = {
    "keys.KeyActivated": {"kid", "jwk"},
    "keys.KeyRotated": {"kid", "jwk", "replaces"},
    "keys.KeyRetired": {"kid"},
    "keys.KeyCompromised": {"kid", "since"},
}


def b64url(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def thumbprint(jwk):  # RFC 7638
    required = {"crv": jwk["crv"], "kty": jwk["kty"], "x": jwk["x"]}
    digest = hashlib.sha256(rfc8785.dumps(required)).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def key_hash(origin, public):  # C2SP signed-note key hash, section 5
    return hashlib.sha256(origin.encode() + b"\n\x01" + public).digest()[:4]


def merkle_root(leaves):  # RFC 9162 section 2.1.1
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + merkle_root(leaves[:k]) + merkle_root(leaves[k:])).digest()


class Key:
    def __init__(self, public, start):
        self.public, self.start, self.end, self.since = public, start, None, None

    def may_sign(self, seq):
        return (
            self.start <= seq
            and (self.end is None or seq <= self.end)
            and (self.since is None or seq < self.since)
        )


def endorse(event, seq, keys, current):
    """Apply one key event signed by `current` (section 3); return the new current kid."""
    kind, data = event["type"], event["data"]
    if set(data) != MEMBERS.get(kind) or event["kid"] != current:
        raise ValueError("key event breaks the endorsement rule")
    if kind == "keys.KeyRotated" and data["replaces"] == current and data["kid"] not in keys:
        if data["jwk"]["crv"] != "Ed25519" or thumbprint(data["jwk"]) != data["kid"]:
            raise ValueError("rotation announces a malformed key")
        keys[current].end = seq
        keys[data["kid"]] = Key(b64url(data["jwk"]["x"]), seq + 1)
        return data["kid"]
    if kind == "keys.KeyRetired" and data["kid"] in keys:
        key = keys[data["kid"]]
        key.end = seq if key.end is None else min(key.end, seq)
        return None if data["kid"] == current else current
    since, kid = data.get("since"), data["kid"]
    if kind == "keys.KeyCompromised" and kid in keys and kid != current and type(since) is int:
        if not 1 <= since <= seq:
            raise ValueError("compromise `since` out of range")
        keys[kid].since = since if keys[kid].since is None else min(keys[kid].since, since)
        return current
    raise ValueError("key event breaks the endorsement rule")


def main(bundle, anchor, saved=None):
    origin, anchor_hash, blob = anchor.strip().split("+", 2)
    raw = base64.b64decode(blob)
    if raw[:1] != b"\x01" or len(raw) != 33 or key_hash(origin, raw[1:]).hex() != anchor_hash:
        return "malformed trust anchor"
    anchor_x = base64.urlsafe_b64encode(raw[1:]).rstrip(b"=").decode()
    anchor_kid = thumbprint({"crv": "Ed25519", "kty": "OKP", "x": anchor_x})
    keys, current, signed, leaves, prev = {}, None, {}, [], "0" * 64
    for line in (bundle / "events.ndjson").read_text().splitlines():
        event = json.loads(line)
        seq = len(leaves) + 1
        body = {k: v for k, v in event.items() if k not in ("hash", "kid", "sig")}
        if event["seq"] != seq or event["prev"] != prev:
            return f"seq {seq}: chain broken"
        if hashlib.sha256(rfc8785.dumps(body)).hexdigest() != event["hash"]:
            return f"seq {seq}: hash mismatch"
        is_key_event = event["type"].startswith("keys.")
        if is_key_event and not keys:  # the first key event announces the anchor, self-signed
            data = event["data"]
            if event["type"] != "keys.KeyActivated" or set(data) != {"kid", "jwk"}:
                return f"seq {seq}: the first key event is not keys.KeyActivated"
            if not event["kid"] == data["kid"] == anchor_kid or data["jwk"].get("x") != anchor_x:
                return f"seq {seq}: the first key is not the trust anchor"
            current = anchor_kid
            keys[current] = Key(raw[1:], seq)
            is_key_event = False
        key = keys.get(event["kid"])
        if key is None or not key.may_sign(seq):
            return f"seq {seq}: signing key not endorsed by the anchor's chain at this seq"
        try:
            Ed25519PublicKey.from_public_bytes(key.public).verify(
                b64url(event["sig"]), bytes.fromhex(event["hash"])
            )
            if is_key_event:
                current = endorse(event, seq, keys, current)
        except Exception as exc:
            return f"seq {seq}: {str(exc) or 'bad signature'}"
        if event["type"] == "keys.KeyCompromised":  # voids that key's signatures from `since`
            since = event["data"]["since"]
            voided = [s for s in signed.get(event["data"]["kid"], []) if s >= since]
            if voided:
                return f"seq {voided[0]}: signed by a key declared compromised"
        signed.setdefault(event["kid"], []).append(seq)
        prev = event["hash"]
        leaves.append(bytes.fromhex(prev))
    problem = check_note((bundle / "checkpoint.txt").read_text(), origin, keys, leaves)
    if problem:
        return problem
    if saved is not None:
        problem = check_note(saved, origin, keys, leaves)
        if problem:
            return f"saved checkpoint: {problem}"
    return f"OK {len(leaves)} events, {len(keys)} key(s), checkpoint of {origin} verified"


def check_note(note, origin, keys, leaves):
    """'' when the signed note is a checkpoint of these leaves, signed by a chain key."""
    text, signatures = note.rsplit("\n\n", 1)
    cp_origin, size, root = text.split("\n")
    if not (size.isascii() and size.isdigit()) or int(size) > len(leaves):
        return f"checkpoint size {size!r} is not within the log ({len(leaves)} events: truncated?)"
    if cp_origin != origin or base64.b64decode(root) != merkle_root(leaves[: int(size)]):
        return "checkpoint origin or root mismatch"
    signers = [
        k.public for k in keys.values() if k.may_sign(int(size)) or k.may_sign(int(size) + 1)
    ]
    for line in signatures.splitlines():
        name, _, sig = line.removeprefix("\u2014 ").partition(" ")
        sig = base64.b64decode(sig)
        for public in signers:
            if name == origin and sig[:4] == key_hash(origin, public):
                try:
                    Ed25519PublicKey.from_public_bytes(public).verify(
                        sig[4:], (text + "\n").encode()
                    )
                    return ""
                except Exception:
                    return "checkpoint signature does not verify"
    return "checkpoint not signed by a key of the chain"


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    try:
        saved = Path(sys.argv[3]).read_text() if len(sys.argv) == 4 else None
        result = main(Path(sys.argv[1]), sys.argv[2], saved)
    except Exception as exc:  # unreadable or malformed input is a failure too
        result = f"malformed input: {exc!r}"
    print(result)
    sys.exit(0 if result.startswith("OK ") else 1)
