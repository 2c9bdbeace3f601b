"""Verify a ledger the way an outside auditor does (LEDGER_FORMAT.md sections 2, 3, 5).

Input is a sequence of envelope records (dicts, as parsed from ndjson) and a
JWKS. For every record, in order: `seq` is the next integer, `prev` is the
previous `hash`, `hash` recomputes from JCS, `kid` is in the JWKS and `sig`
verifies. The first failure stops the walk and is reported with its `seq`.
Then the Merkle root over all hashes is compared with a signed checkpoint.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ledger import crypto, envelope
from ledger.audit.checkpoint import CheckpointError, verify_checkpoint
from ledger.audit.merkle import root_hash

Progress = Callable[[int], None]


@dataclass
class AuditReport:
    """What an audit found; `ok` only when every check passed."""

    events: int = 0
    first_bad_seq: int | None = None
    problem: str = ""
    root: bytes = b""
    checkpoint_size: int | None = None
    keys_used: set[str] = field(default_factory=set)

    @property
    def ok(self) -> bool:
        return self.first_bad_seq is None and not self.problem

    def fail(self, seq: int | None, problem: str) -> AuditReport:
        self.first_bad_seq = seq
        self.problem = problem
        return self


def load_jwks(jwks: dict[str, Any]) -> dict[str, bytes]:
    """kid -> raw public key, each JWK checked against its own thumbprint."""
    keys: dict[str, bytes] = {}
    for jwk in jwks.get("keys", []):
        raw = crypto.public_key_from_jwk(jwk)
        keys[crypto.jwk_thumbprint(raw)] = raw
    return keys


def _check_record(
    record: dict[str, Any], expected_seq: int, prev: str, keys: dict[str, bytes]
) -> str:
    """Empty string when the record is sound at this position, else what is wrong."""
    if record.get("seq") != expected_seq:
        return f"expected seq {expected_seq}, found {record.get('seq')!r} (gap, deletion or reordering)"
    if record.get("prev") != prev:
        return "prev does not match the previous event's hash (chain broken)"
    if not envelope.check_hash(record):
        return "hash does not match the event's content (event altered)"
    public = keys.get(str(record.get("kid")))
    if public is None:
        return f"signing key {record.get('kid')!r} is not in the JWKS"
    if not envelope.check_signature(record, public):
        return "signature does not verify"
    return ""


def verify_records(
    records: Iterable[dict[str, Any]],
    jwks: dict[str, Any],
    checkpoint: str | None = None,
    origin: str | None = None,
    progress: Progress | None = None,
) -> AuditReport:
    report = AuditReport()
    try:
        keys = load_jwks(jwks)
    except crypto.CryptoError as exc:
        return report.fail(None, f"JWKS: {exc}")
    leaves: list[bytes] = []
    prev = crypto.ZERO_HASH
    for record in records:
        expected = report.events + 1
        problem = _check_record(record, expected, prev, keys)
        if problem:
            return report.fail(expected, problem)
        prev = record["hash"]
        leaves.append(bytes.fromhex(prev))
        report.keys_used.add(record["kid"])
        report.events = expected
        if progress:
            progress(1)
    report.root = root_hash(leaves)
    if checkpoint is not None:
        _check_checkpoint(report, checkpoint, origin, keys, leaves)
    return report


def _check_checkpoint(
    report: AuditReport, note: str, origin: str | None, keys: dict[str, bytes], leaves: list[bytes]
) -> None:
    name = origin or note.split("\n", 1)[0]
    try:
        cp = verify_checkpoint(note, name, keys.values())
    except CheckpointError as exc:
        report.fail(None, f"checkpoint: {exc}")
        return
    report.checkpoint_size = cp.size
    if cp.size > report.events:
        report.fail(
            report.events + 1, f"checkpoint covers {cp.size} events, log has {report.events}"
        )
    elif cp.root != root_hash(leaves[: cp.size]):
        report.fail(None, f"checkpoint root for size {cp.size} does not match the events")


def read_ndjson(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                yield {"seq": f"unparseable line {number}"}


def verify_bundle(directory: Path, progress: Progress | None = None) -> AuditReport:
    """Verify an export: events.ndjson, jwks.json and (if present) checkpoint.txt."""
    events = directory / "events.ndjson"
    jwks_path = directory / "jwks.json"
    for needed in (events, jwks_path):
        if not needed.is_file():
            return AuditReport().fail(None, f"bundle has no {needed.name}")
    try:
        jwks = json.loads(jwks_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        return AuditReport().fail(None, f"jwks.json is not JSON: {exc}")
    checkpoint_path = directory / "checkpoint.txt"
    checkpoint = checkpoint_path.read_text(encoding="utf-8") if checkpoint_path.is_file() else None
    return verify_records(read_ndjson(events), jwks, checkpoint, progress=progress)
