"""The trust anchor and the key endorsement chain (LEDGER_FORMAT.md section 3, v1.1).

The log must not be able to vouch for its own keys: whoever can write to the
database could otherwise announce a key of their own and re-sign everything.
So the first key is the log's trust anchor, known to auditors out of band, and
every later key is introduced by a `keys.KeyRotated` event signed by the key it
replaces; retirement and compromise are likewise signed by the current key.
`KeyHistory` folds the key events into the set of endorsed keys, and is the one
place that decides whether a key may sign at a given `seq`.
"""

from __future__ import annotations

import bisect
import copy
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ledger import crypto, envelope

KEY_ACTIVATED = "keys.KeyActivated"
KEY_ROTATED = "keys.KeyRotated"
KEY_RETIRED = "keys.KeyRetired"
KEY_COMPROMISED = "keys.KeyCompromised"
KEY_EVENT_PREFIX = "keys."
ANCHOR_FILE = "anchor.json"
_MEMBERS = {
    KEY_ACTIVATED: {"kid", "jwk"},
    KEY_ROTATED: {"kid", "jwk", "replaces"},
    KEY_RETIRED: {"kid"},
    KEY_COMPROMISED: {"kid", "since"},
}
_VKEY_ALG = b"\x01"  # C2SP signed-note Ed25519
_KEY_FIELDS = ("kid", "endorsed_at", "valid_from", "valid_until", "compromised_since")


class TrustError(Exception):
    """An anchor that cannot be read, or a key event that must not be written."""


# --- the anchor --------------------------------------------------------------


@dataclass(frozen=True)
class Anchor:
    """The log's first key and its origin: the root every other key is endorsed from."""

    kid: str
    public_key: bytes = field(repr=False)
    origin: str

    @classmethod
    def of(cls, public_key: bytes, origin: str) -> Anchor:
        if len(public_key) != 32:
            raise TrustError("an anchor key is a 32-byte Ed25519 public key")
        if not origin or any(ch.isspace() or ch == "+" for ch in origin):
            raise TrustError(f"log origin {origin[:60]!r} is empty or holds a space or '+'")
        return cls(crypto.jwk_thumbprint(public_key), public_key, origin)

    def to_string(self) -> str:
        """C2SP verifier key `<origin>+<key hash hex>+<base64(0x01 || key)>`, as printed."""
        key_hash = _key_hash(self.origin, self.public_key)
        return f"{self.origin}+{key_hash.hex()}+{crypto.b64(_VKEY_ALG + self.public_key)}"

    @classmethod
    def parse(cls, text: str) -> Anchor:
        """An anchor from its printed string or from the JSON `ledger init` writes."""
        text = text.strip()
        if text.startswith("{"):
            return cls._from_json(text)
        parts = text.split("+", 2)  # the origin holds no '+'; base64 may
        if len(parts) != 3 or len(parts[1]) != 8:
            raise TrustError("a trust anchor reads <origin>+<8 hex digits>+<base64 key>")
        origin, hash_hex, blob_text = parts
        try:
            blob = crypto.b64_decode(blob_text)
            key_hash = bytes.fromhex(hash_hex)
        except (crypto.CryptoError, ValueError) as exc:
            raise TrustError("trust anchor key or key hash is not well-formed") from exc
        if len(blob) != 33 or blob[:1] != _VKEY_ALG:
            raise TrustError("trust anchor is not an Ed25519 key")
        anchor = cls.of(blob[1:], origin)
        if _key_hash(origin, anchor.public_key) != key_hash:
            raise TrustError("trust anchor key hash does not match its key and origin")
        return anchor

    @classmethod
    def _from_json(cls, text: str) -> Anchor:
        try:
            raw = json.loads(text)
            anchor = cls.of(crypto.b64url_decode(raw["x"]), raw["origin"])
        except (ValueError, KeyError, TypeError, crypto.CryptoError) as exc:
            raise TrustError("anchor JSON needs `origin` and `x` (base64url key)") from exc
        if raw.get("kid", anchor.kid) != anchor.kid:
            raise TrustError("anchor JSON `kid` is not the thumbprint of its key")
        return anchor

    @classmethod
    def load(cls, source: str) -> Anchor:
        """An anchor from a file path or from the printed string itself."""
        path = Path(source)
        try:
            is_file = path.is_file()
        except OSError:
            is_file = False
        if is_file:
            try:
                return cls.parse(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError) as exc:
                raise TrustError(f"cannot read trust anchor {path.name}") from exc
        if "+" not in source and not source.lstrip().startswith("{"):
            raise TrustError(f"trust anchor {source[:60]!r} is neither a file nor an anchor string")
        return cls.parse(source)

    def to_json(self) -> str:
        body = {"origin": self.origin, "kid": self.kid, "x": crypto.b64url(self.public_key)}
        return json.dumps({**body, "anchor": self.to_string()}, indent=2) + "\n"

    def save(self, directory: Path) -> Path:
        """Write `anchor.json` (public, not a secret) atomically into `directory`."""
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / ANCHOR_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(self.to_json(), encoding="utf-8")
        os.replace(tmp, path)
        return path


def _key_hash(origin: str, public_key: bytes) -> bytes:
    """The C2SP key hash, the same that names the key on checkpoint signatures."""
    return crypto.sha256(origin.encode() + b"\n" + _VKEY_ALG + public_key)[:4]


def configured_anchor(setting: str, keys_dir: Path) -> tuple[Anchor, str] | None:
    """The anchor from LEDGER_TRUST_ANCHOR, else `anchor.json` in the keys dir; and where from."""
    if setting:
        return Anchor.load(setting), "LEDGER_TRUST_ANCHOR"
    path = keys_dir / ANCHOR_FILE
    if path.is_file():
        return Anchor.load(str(path)), str(path.name)
    return None


# --- key events ----------------------------------------------------------------


def is_key_event(type_name: str) -> bool:
    return type_name.startswith(KEY_EVENT_PREFIX)


def activation(key: crypto.SigningKey) -> dict[str, Any]:
    return {"kid": key.kid, "jwk": key.public_jwk()}


def rotation(new_key: crypto.SigningKey, replaces: str) -> dict[str, Any]:
    return {"kid": new_key.kid, "jwk": new_key.public_jwk(), "replaces": replaces}


def retirement(kid: str) -> dict[str, Any]:
    return {"kid": kid}


def compromise(kid: str, since: int) -> dict[str, Any]:
    return {"kid": kid, "since": since}


@dataclass
class EndorsedKey:
    """A key the chain endorses, and the seqs it may sign."""

    kid: str
    public_key: bytes = field(repr=False)
    endorsed_at: int
    valid_from: int
    valid_until: int | None = None
    compromised_since: int | None = None

    def may_sign(self, seq: int) -> bool:
        return (
            self.valid_from <= seq
            and (self.valid_until is None or seq <= self.valid_until)
            and (self.compromised_since is None or seq < self.compromised_since)
        )

    def why_not(self, seq: int) -> str:
        if self.compromised_since is not None and seq >= self.compromised_since:
            return f"key {self.kid} is compromised from seq {self.compromised_since}"
        if seq < self.valid_from:
            return f"key {self.kid} may sign only from seq {self.valid_from}"
        return f"key {self.kid} was replaced or retired at seq {self.valid_until}"


def _record(item: Any) -> dict[str, Any]:
    """An envelope record as a dict; `Envelope` objects are converted."""
    return item if isinstance(item, dict) else json.loads(item.to_json_line())


class KeyHistory:
    """The keys endorsed by the chain rooted in the anchor, folded from key events in seq order.

    With no anchor (weaker: the database vouches for itself) the first key
    event's key is taken as the anchor.
    """

    def __init__(self, anchor: Anchor | None):
        self.anchor = anchor
        self.keys: dict[str, EndorsedKey] = {}
        self.current: str | None = None
        self.started = False  # a first key event was seen (accepted or not)
        self.rejected: list[tuple[int, str]] = []

    @classmethod
    def fold(cls, envelopes: Iterable[Any], anchor: Anchor | None) -> KeyHistory:
        history = cls(anchor)
        for item in envelopes:
            history.apply(item)
        return history

    def copy(self) -> KeyHistory:
        return copy.deepcopy(self)

    def to_state(self) -> dict[str, Any]:
        """The folded chain as JSON-ready data, so a monitor can resume without the events."""
        keys = [
            {**{n: getattr(k, n) for n in _KEY_FIELDS}, "public_key": crypto.b64(k.public_key)}
            for k in self.keys.values()
        ]
        return {"keys": keys, "current": self.current, "started": self.started}

    @classmethod
    def from_state(cls, anchor: Anchor | None, state: dict[str, Any]) -> KeyHistory:
        """The chain saved by `to_state`; TrustError when the saved data is malformed."""
        history = cls(anchor)
        try:
            for item in state["keys"]:
                key = EndorsedKey(
                    **{n: item[n] for n in _KEY_FIELDS},
                    public_key=crypto.b64_decode(item["public_key"]),
                )
                history.keys[key.kid] = key
            history.current, history.started = state["current"], bool(state["started"])
        except (KeyError, TypeError, crypto.CryptoError) as exc:
            raise TrustError("saved key history is malformed") from exc
        return history

    # --- folding ----------------------------------------------------------------

    def apply(self, item: Any) -> str:
        """Fold one event; '' when it is not a key event or is endorsed, else why it is not."""
        record = _record(item)
        if not is_key_event(str(record.get("type", ""))):
            return ""
        problem = self._check(record)
        seq = record.get("seq")
        if problem:
            self.rejected.append((seq if isinstance(seq, int) else 0, problem))
        self.started = True
        return problem

    def _check(self, record: dict[str, Any]) -> str:
        kind, seq, data = record.get("type"), record.get("seq"), record.get("data")
        if kind not in _MEMBERS:
            return f"unknown key event type {kind!r}"
        if not isinstance(data, dict) or set(data) != _MEMBERS[kind]:
            return f"{kind} must hold exactly {sorted(_MEMBERS[kind])}"
        if not isinstance(seq, int) or isinstance(seq, bool) or not envelope.check_hash(record):
            return "key event hash does not match its content"
        if not self.started:
            return self._genesis(record, data)
        if kind == KEY_ACTIVATED:
            return "a key may only be introduced by a rotation signed by the key it replaces"
        signer = self.keys.get(self.current or "")
        if signer is None or record.get("kid") != signer.kid:
            return f"{kind} is not signed by the current key {self.current}"
        problem = self._signature(record, signer)
        if problem:
            return problem
        if kind == KEY_ROTATED:
            return self._rotate(seq, data, signer)
        if kind == KEY_RETIRED:
            return self._retire(seq, data)
        return self._compromise(seq, data)

    def _genesis(self, record: dict[str, Any], data: dict[str, Any]) -> str:
        seq = record["seq"]
        if record.get("type") != KEY_ACTIVATED:
            return "the first key event must be keys.KeyActivated announcing the trust anchor"
        public = _jwk_key(data)
        if public is None or record.get("kid") != data["kid"]:
            return "the first key event does not announce a well-formed, self-signed key"
        if self.anchor is not None and public != self.anchor.public_key:
            return f"the first key {data['kid']} is not the trust anchor {self.anchor.kid}"
        key = EndorsedKey(data["kid"], public, endorsed_at=seq, valid_from=seq)
        problem = self._signature(record, key)
        if not problem:
            self.keys[key.kid] = key
            self.current = key.kid
        return problem

    def _rotate(self, seq: int, data: dict[str, Any], signer: EndorsedKey) -> str:
        public = _jwk_key(data)
        if public is None:
            return "rotation announces a malformed key"
        if data["replaces"] != signer.kid:
            return f"rotation replaces {data['replaces']!r}, not the current key {signer.kid}"
        if data["kid"] in self.keys:
            return f"key {data['kid']} was endorsed before"
        signer.valid_until = seq
        self.keys[data["kid"]] = EndorsedKey(data["kid"], public, seq, valid_from=seq + 1)
        self.current = data["kid"]
        return ""

    def _retire(self, seq: int, data: dict[str, Any]) -> str:
        key = self.keys.get(data["kid"]) if isinstance(data["kid"], str) else None
        if key is None:
            return f"retirement of key {data['kid']!r}, which the chain never endorsed"
        key.valid_until = seq if key.valid_until is None else min(key.valid_until, seq)
        if key.kid == self.current:
            self.current = None  # the log is closed: nothing may be signed after this
        return ""

    def _compromise(self, seq: int, data: dict[str, Any]) -> str:
        key = self.keys.get(data["kid"]) if isinstance(data["kid"], str) else None
        since = data["since"]
        if key is None:
            return f"compromise of key {data['kid']!r}, which the chain never endorsed"
        if key.kid == self.current:
            return "the current key cannot declare itself compromised: rotate first"
        if not isinstance(since, int) or isinstance(since, bool) or not 1 <= since <= seq:
            return f"compromise `since` must be a seq between 1 and {seq}"
        previous = key.compromised_since
        key.compromised_since = since if previous is None else min(previous, since)
        return ""

    @staticmethod
    def _signature(record: dict[str, Any], key: EndorsedKey) -> str:
        if not key.may_sign(record["seq"]):
            return key.why_not(record["seq"])
        if not envelope.check_signature(record, key.public_key):
            return "key event signature does not verify"
        return ""

    # --- using the endorsed keys -----------------------------------------------

    @property
    def anchor_kid(self) -> str | None:
        if self.anchor is not None:
            return self.anchor.kid
        return next(iter(self.keys), None)

    def public_key(self, kid: str) -> bytes | None:
        key = self.keys.get(kid)
        return key.public_key if key else None

    def signature_problem(self, item: Any) -> str:
        """'' when the record's `kid` may sign at its `seq` and `sig` verifies; else why not."""
        record = _record(item)
        public, problem = self.signer(record)
        if problem:
            return problem
        if not envelope.check_signature(record, public):
            return "signature does not verify"
        return ""

    def signer(self, record: dict[str, Any]) -> tuple[bytes, str]:
        """(public key, '') of the key that may sign the record at its `seq`, or (b'', why not).

        The signature itself is not checked: a parallel audit verifies it elsewhere.
        """
        key = self.keys.get(str(record.get("kid")))
        seq = record.get("seq")
        if key is None:
            return (
                b"",
                f"signing key {record.get('kid')!r} is not endorsed by the trust anchor's chain",
            )
        if not isinstance(seq, int) or not key.may_sign(seq):
            return b"", key.why_not(seq) if isinstance(seq, int) else "seq is not an integer"
        return key.public_key, ""

    def verify_one(self, item: Any) -> bool:
        """Hash and signature of one envelope, its key accepted only through the chain."""
        record = _record(item)
        return envelope.check_hash(record) and not self.signature_problem(record)

    def checkpoint_keys(self, size: int) -> list[bytes]:
        """Keys that may sign a checkpoint of `size` events: valid at seq `size` or `size + 1`."""
        return [
            k.public_key for k in self.keys.values() if k.may_sign(size) or k.may_sign(size + 1)
        ]

    def jwks(self) -> dict[str, Any]:
        """The endorsed keys as a JWKS (compromised keys left out): derived, never trusted."""
        return {
            "keys": [
                crypto.public_jwk(k.public_key)
                for k in self.keys.values()
                if k.compromised_since is None
            ]
        }


def _jwk_key(data: dict[str, Any]) -> bytes | None:
    """The raw key of `data["jwk"]` if it is an Ed25519 JWK whose thumbprint is `data["kid"]`."""
    try:
        raw = crypto.public_key_from_jwk(data["jwk"])
    except (crypto.CryptoError, AttributeError, TypeError, KeyError):
        return None
    return raw if crypto.jwk_thumbprint(raw) == data["kid"] else None


class SignedSeqs:
    """Which seqs each key signed, so a later compromise can name the first one it voids.

    Kept as runs of consecutive seqs per key (a key signs one stretch of the log),
    so memory grows with the number of key changes, not with the log.
    """

    def __init__(self) -> None:
        self._by_kid: dict[str, list[list[int]]] = {}  # kid -> [[first, last], ...] ascending

    def add(self, kid: str, seq: int) -> None:
        runs = self._by_kid.setdefault(kid, [])
        if runs and runs[-1][1] == seq - 1:
            runs[-1][1] = seq
        else:
            runs.append([seq, seq])

    def first_from(self, kid: str, since: int) -> int | None:
        runs = self._by_kid.get(kid, [])
        index = bisect.bisect_left([last for _, last in runs], since)
        return max(runs[index][0], since) if index < len(runs) else None

    def to_state(self) -> dict[str, list[list[int]]]:
        return copy.deepcopy(self._by_kid)

    @classmethod
    def from_state(cls, state: dict[str, list[list[int]]]) -> SignedSeqs:
        """Runs saved by `to_state` (a monitor's own state file), checked for shape."""
        signed = cls()
        for kid, runs in state.items():
            if not all(
                isinstance(r, list) and len(r) == 2 and all(type(n) is int for n in r) for r in runs
            ):
                raise TrustError("saved signed seqs are malformed")
            signed._by_kid[str(kid)] = [list(r) for r in runs]
        return signed
