"""What a monitor remembers of a log between runs, in one JSON file it rewrites atomically.

Enough to resume without the events: the trust anchor, the last checkpoint it
accepted (size, root, note), the hash of its last event (the chain link the next
one must carry), the Merkle frontier (the peaks of MerkleAccumulator, O(log n))
and the key endorsement chain folded so far. Memory and file size stay flat.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ledger import crypto
from ledger.audit.merkle import EMPTY_ROOT, MerkleAccumulator, MerkleError
from ledger.trust import Anchor, KeyHistory, SignedSeqs, TrustError

STATE_FILE = "state.json"
FORMAT = 1
MAX_STATE_BYTES = 1024 * 1024


class StateError(Exception):
    """The state directory cannot be read or written, or holds something else."""


@dataclass
class MonitorState:
    anchor: Anchor
    size: int = 0
    root: bytes = EMPTY_ROOT
    prev: str = crypto.ZERO_HASH
    note: str = ""
    tree: MerkleAccumulator = field(default_factory=MerkleAccumulator)
    history: KeyHistory | None = None
    signed: SignedSeqs = field(default_factory=SignedSeqs)

    def __post_init__(self) -> None:
        if self.history is None:
            self.history = KeyHistory(self.anchor)

    @property
    def keys(self) -> KeyHistory:
        assert self.history is not None
        return self.history

    def to_json(self) -> str:
        body = {
            "format": FORMAT,
            "anchor": self.anchor.to_string(),
            "size": self.size,
            "root": crypto.b64(self.root),
            "prev": self.prev,
            "note": self.note,
            "peaks": [[width, node.hex()] for width, node in self.tree.peaks],
            "keys": self.keys.to_state(),
            "signed": self.signed.to_state(),
        }
        return json.dumps(body, indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str) -> MonitorState:
        try:
            raw = json.loads(text)
            if raw.get("format") != FORMAT:
                raise StateError(f"state format {raw.get('format')!r} is not {FORMAT}")
            anchor = Anchor.parse(raw["anchor"])
            tree = MerkleAccumulator.from_peaks((w, bytes.fromhex(h)) for w, h in raw["peaks"])
            state = cls(
                anchor=anchor,
                size=int(raw["size"]),
                root=crypto.b64_decode(raw["root"]),
                prev=str(raw["prev"]),
                note=str(raw["note"]),
                tree=tree,
                history=KeyHistory.from_state(anchor, raw["keys"]),
                signed=SignedSeqs.from_state(raw["signed"]),
            )
        except StateError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise StateError(f"the monitor state is malformed: {exc}") from exc
        except (TrustError, MerkleError, crypto.CryptoError) as exc:
            raise StateError(f"the monitor state is malformed: {exc}") from exc
        if state.tree.size != state.size:
            raise StateError("the monitor state's Merkle frontier does not match its size")
        return state


def load(directory: Path) -> MonitorState | None:
    """The saved state, or None on a first run (no state file yet)."""
    path = directory / STATE_FILE
    try:
        if not path.is_file():
            return None
        with path.open("rb") as handle:
            raw = handle.read(MAX_STATE_BYTES + 1)
    except OSError as exc:
        raise StateError(f"cannot read {path}: {exc.strerror}") from exc
    if len(raw) > MAX_STATE_BYTES:
        raise StateError(f"{path} is larger than a monitor state can be")
    try:
        return MonitorState.from_json(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise StateError(f"{path} is not UTF-8") from exc


def save(directory: Path, state: MonitorState) -> None:
    """Write the state to a temporary file, flush it to disk, then rename it over the old one."""
    path = directory / STATE_FILE
    tmp = directory / (STATE_FILE + ".tmp")
    try:
        with tmp.open("w", encoding="utf-8") as handle:
            handle.write(state.to_json())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise StateError(f"cannot write {path}: {exc.strerror}") from exc
