"""Verify a ledger the way an outside auditor does (LEDGER_FORMAT.md sections 2, 3 v1.1, 5).

Input is a sequence of envelope records (dicts, as parsed from ndjson) and the
trust anchor. For every record, in order: `seq` is the next integer, `prev` is
the previous `hash`, `hash` recomputes from JCS, and `sig` verifies under a key
the endorsement chain rooted in the anchor accepts at that `seq` (key events
are folded into the chain as they come). The first failure stops the walk and
is reported with its `seq`. Then the Merkle root over all hashes is compared
with a signed checkpoint, and with a checkpoint the auditor saved earlier, so
a truncated or rewritten history fails too. The JWKS is never trusted.
On the live log, every stored checkpoint and tile is compared with the events
as well (`StoredEvidence`): they are derived from the events by the log itself.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ledger import crypto, envelope
from ledger.attestation.ca import CA_FILE, CA_PUBLISHED, ca_stream, payload_problem
from ledger.audit.checkpoint import (
    Checkpoint,
    CheckpointError,
    parse_checkpoint,
    verify_checkpoint,
)
from ledger.audit.merkle import EMPTY_ROOT, MerkleAccumulator, leaf_hash
from ledger.audit.parallel import SignatureChecker
from ledger.audit.tiles import HASH, TileBuilder, TileError
from ledger.trust import KEY_COMPROMISED, Anchor, KeyHistory, SignedSeqs, is_key_event

Progress = Callable[[int], None]
BAD_SIGNATURE = "signature does not verify"
PROGRESS_STEP = 256  # events per progress report: a progress bar costs more than a hash


@dataclass
class AuditReport:
    """What an audit found; `ok` only when every check passed."""

    events: int = 0
    first_bad_seq: int | None = None
    problem: str = ""
    root: bytes = b""
    checkpoint_size: int | None = None
    checkpoint_note: str | None = None
    since_size: int | None = None
    stored_checkpoints: int | None = None  # live audit: stored checkpoints checked
    anchor_kid: str | None = None
    anchor_from_log: bool = True
    keys_used: set[str] = field(default_factory=set)
    attestation_cas: dict[str, int] = field(default_factory=dict)  # CA fingerprint -> seq

    @property
    def ok(self) -> bool:
        return self.first_bad_seq is None and not self.problem

    def fail(self, seq: int | None, problem: str) -> AuditReport:
        self.first_bad_seq = seq
        self.problem = problem
        return self


class StoredCheckpointRow(Protocol):
    """A checkpoint the live log stored: its size and root columns and its signed note."""

    size: int
    root: bytes
    note: str


class TileSource(Protocol):
    """The live log's stored tiles (`TileStore`): read one tile's first `width` hashes."""

    def tile(self, level: int, index: int, width: int = ...) -> bytes | None: ...


class StoredEvidence:
    """What the live log keeps beside its events, compared with them as they stream by.

    The tiles and stored checkpoints are derived from the events by the log
    itself; nothing else re-derives them, so an edited tile row or an old
    checkpoint row deleted-and-forged would go unnoticed unless the audit checks
    them all. Memory stays flat: checkpoints are pulled one at a time in size
    order, and each tile is compared when the audit's own TileBuilder completes it.
    """

    def __init__(
        self,
        checkpoints: Iterator[StoredCheckpointRow],
        tiles: TileSource | None = None,
        tree_size: int = 0,
        origin: str | None = None,
    ):
        """`tree_size`: the integrated size of `tiles`, read before the audit's events."""
        self._checkpoints = checkpoints
        self._next: StoredCheckpointRow | None = None
        self._tiles = tiles
        self._tree_size = tree_size if tiles is not None else 0
        self._builder = TileBuilder(0, {})
        self._origin = origin
        self.checked = 0  # stored checkpoints verified against the events

    def start(self, history: KeyHistory) -> str:
        """Fetch the first stored checkpoint past size 0 (those of 0 checked here), or a problem."""
        problem = self._pull()
        while not problem and self._next is not None and self._next.size == 0:
            problem = self._checkpoint(self._next, EMPTY_ROOT, history) or self._pull()
        return problem

    def leaf(self, seq: int, raw: bytes, tree: MerkleAccumulator, history: KeyHistory) -> str:
        """Check what is stored at size `seq`, the event's raw hash just appended to `tree`."""
        if seq <= self._tree_size:
            problem = self._tiles_at(seq, leaf_hash(raw))
            if problem:
                return problem
        while self._next is not None and self._next.size <= seq:
            if self._next.size < seq:  # read in size order: only a broken store repeats one
                return f"stored checkpoint {self._next.size} is out of order"
            problem = self._checkpoint(self._next, tree.root(), history) or self._pull()
            if problem:
                return problem
        return ""

    def finish(self, events: int) -> str:
        """After the walk: a tree wider than the log means the log's tail was cut."""
        if self._tree_size > events:
            return (
                f"the tiles hold a tree of {self._tree_size} leaves, the log has {events} "
                "events: its tail was truncated"
            )
        return ""

    def _pull(self) -> str:
        try:
            self._next = next(self._checkpoints, None)
        except CheckpointError as exc:  # a row the store refused: its message names the size
            return str(exc)
        return ""

    def _checkpoint(self, row: StoredCheckpointRow, root: bytes, history: KeyHistory) -> str:
        """The row's note is signed by an endorsed key, and its root is the events' root."""
        try:
            cp = _verified(row.note, self._origin, history)
        except CheckpointError as exc:
            return f"stored checkpoint {row.size}: {exc}"
        if (cp.size, cp.root, row.root) != (row.size, root, root):
            return f"stored checkpoint {row.size}: its root does not match the events"
        self.checked += 1
        return ""

    def _tiles_at(self, seq: int, leaf: bytes) -> str:
        """Compare the tiles leaf `seq` completes (and at the tree's size, its right edge)."""
        assert self._tiles is not None  # only called for seq <= tree size, 0 without tiles
        done = self._builder.append(leaf)
        if seq == self._tree_size:
            done += self._builder.partials()
        for level, index, hashes in done:
            try:
                stored = self._tiles.tile(level, index, len(hashes) // HASH)
            except TileError as exc:
                return f"tile {level}/{index}: {exc}"
            if stored != hashes:
                return f"stored tile {level}/{index} does not match the events"
        return ""


def check_record(record: dict[str, Any], expected_seq: int, prev: str) -> str:
    """Empty string when the record's position and content are sound, else what is wrong."""
    if record.get("seq") != expected_seq:
        return f"expected seq {expected_seq}, found {record.get('seq')!r} (gap, deletion or reordering)"
    if record.get("prev") != prev:
        return "prev does not match the previous event's hash (chain broken)"
    if not envelope.check_hash(record):
        return "hash does not match the event's content (event altered)"
    return ""


def check_key(
    record: dict[str, Any],
    history: KeyHistory,
    signed: SignedSeqs,
    checker: SignatureChecker | None = None,
) -> tuple[int, str]:
    """(seq, problem) of the first signature the record makes invalid, or (0, '').

    With a `checker`, the record's own signature is handed to it instead of being
    verified here (key events are still verified in place: the chain depends on them).
    """
    seq = record["seq"]
    problem = history.apply(record) if is_key_event(str(record.get("type"))) else ""
    problem = problem or _signature(record, history, checker)
    if problem:
        return seq, problem
    if record.get("type") == KEY_COMPROMISED:
        kid, since = record["data"]["kid"], record["data"]["since"]
        voided = signed.first_from(kid, since)
        if voided is not None:
            return (
                voided,
                f"signed by key {kid}, declared compromised from seq {since} at seq {seq}",
            )
    signed.add(record["kid"], seq)
    return 0, ""


def _signature(
    record: dict[str, Any], history: KeyHistory, checker: SignatureChecker | None
) -> str:
    if checker is None:
        return history.signature_problem(record)
    public, problem = history.signer(record)
    parts = envelope.signature_input(record) if not problem else None
    if parts is None:
        return problem or BAD_SIGNATURE
    checker.add(record["seq"], public, *parts)
    return ""


def _check_fact(record: dict[str, Any], report: AuditReport) -> str:
    """A logged attestation CA must be well formed and in its fingerprint's own stream."""
    if record.get("type") != CA_PUBLISHED:
        return ""
    data = record.get("data")
    problem = payload_problem(data)
    if problem:
        return problem
    if record.get("stream") != ca_stream(data["fingerprint"]):
        return "attestation.CaPublished is not in its fingerprint's stream"
    report.attestation_cas.setdefault(data["fingerprint"], record["seq"])
    return ""


def verify_records(
    records: Iterable[dict[str, Any]],
    anchor: Anchor | None,
    checkpoint: str | None = None,
    since_checkpoint: str | None = None,
    progress: Progress | None = None,
    workers: int = 1,
    stored: StoredEvidence | None = None,
) -> AuditReport:
    """Audit `records` against `anchor` (None: trust the log's own first key, weaker).

    Memory stays flat: the Merkle root is accumulated as the records stream by, and
    the roots at the checkpoints' sizes are kept as it passes them. With `workers`
    > 1 event signatures are verified on that many processes; the result is the same.
    With `stored` (the live log), its tiles and every stored checkpoint are checked too.
    """
    if anchor is not None and not isinstance(anchor, Anchor):
        raise TypeError("verify_records takes the trust anchor, not a JWKS")
    report = AuditReport(anchor_from_log=anchor is None)
    history = KeyHistory(anchor)
    tree = MerkleAccumulator()
    sizes = {_size_of(checkpoint), _size_of(since_checkpoint)} - {None}
    roots = {size: EMPTY_ROOT if size == 0 else b"" for size in sizes}  # filled by the walk
    problem = stored.start(history) if stored is not None else ""
    with SignatureChecker(workers) as checker:
        if problem:
            report.fail(None, problem)
        else:
            _walk(records, report, history, tree, roots, checker, progress, stored)
        bad = checker.first_failure()
    if bad is not None and (report.first_bad_seq is None or bad <= report.events + 1):
        report.events, report.problem = bad - 1, ""
        return report.fail(bad, BAD_SIGNATURE)
    if not report.ok:
        return report
    report.root = tree.root()
    report.anchor_kid = history.anchor_kid
    origin = anchor.origin if anchor is not None else None
    if checkpoint is not None:
        _check_checkpoint(report, checkpoint, origin, history, roots)
    if since_checkpoint is not None and report.ok:
        _check_since(report, since_checkpoint, origin, history, roots)
    if stored is not None and report.ok:
        _check_stored(report, stored)
    return report


def _check_stored(report: AuditReport, stored: StoredEvidence) -> None:
    """After the walk: tiles covering more leaves than the log has events mean a cut tail."""
    problem = stored.finish(report.events)
    if problem:
        report.fail(report.events + 1, problem)
    report.stored_checkpoints = stored.checked


def _walk(
    records: Iterable[dict[str, Any]],
    report: AuditReport,
    history: KeyHistory,
    tree: MerkleAccumulator,
    roots: dict[int, bytes],
    checker: SignatureChecker,
    progress: Progress | None,
    stored: StoredEvidence | None = None,
) -> None:
    """The in-order checks; stops at the first failure, recorded in `report`."""
    signed = SignedSeqs()
    prev = crypto.ZERO_HASH
    for record in records:
        expected = report.events + 1
        problem = check_record(record, expected, prev)
        if problem:
            report.fail(expected, problem)
            return
        bad_seq, problem = check_key(record, history, signed, checker)
        if problem:
            report.fail(bad_seq, problem)
            return
        problem = _check_fact(record, report)
        if problem:
            report.fail(expected, problem)
            return
        prev = record["hash"]
        raw = bytes.fromhex(prev)
        tree.append(raw)
        if expected in roots:
            roots[expected] = tree.root()
        problem = stored.leaf(expected, raw, tree, history) if stored is not None else ""
        if problem:
            report.fail(None, problem)
            return
        report.keys_used.add(record["kid"])
        report.events = expected
        if progress and expected % PROGRESS_STEP == 0:
            progress(PROGRESS_STEP)
    if progress and report.events % PROGRESS_STEP:
        progress(report.events % PROGRESS_STEP)


def _size_of(note: str | None) -> int | None:
    """The tree size a note claims (None if it has none or is malformed: checked later)."""
    if note is None:
        return None
    try:
        return parse_checkpoint(note)[0].size
    except CheckpointError:
        return None


def _verified(note: str, origin: str | None, history: KeyHistory) -> Checkpoint:
    """The checkpoint, signed for `origin` by a key the chain accepts at its size."""
    cp, _ = parse_checkpoint(note)
    return verify_checkpoint(note, origin or cp.origin, history.checkpoint_keys(cp.size))


def _check_checkpoint(
    report: AuditReport, note: str, origin: str | None, history: KeyHistory, roots: dict[int, bytes]
) -> None:
    try:
        cp = _verified(note, origin, history)
    except CheckpointError as exc:
        report.fail(None, f"checkpoint: {exc}")
        return
    report.checkpoint_size = cp.size
    if cp.size > report.events:
        report.fail(
            report.events + 1,
            f"checkpoint covers {cp.size} events, the log has {report.events}: "
            "its tail was truncated",
        )
    elif cp.root != roots.get(cp.size):
        report.fail(None, f"checkpoint root for size {cp.size} does not match the events")
    else:
        report.checkpoint_note = note


def _check_since(
    report: AuditReport, note: str, origin: str | None, history: KeyHistory, roots: dict[int, bytes]
) -> None:
    """The log still holds, unchanged, every event a previously saved checkpoint covered."""
    try:
        size = parse_checkpoint(note)[0].size
    except CheckpointError as exc:
        report.fail(None, f"saved checkpoint: {exc}")
        return
    if size > report.events:
        report.fail(
            report.events + 1,
            f"the log has {report.events} events but the saved checkpoint covers {size}: "
            "its tail was truncated",
        )
        return
    try:
        cp = _verified(note, origin, history)
    except CheckpointError as exc:
        report.fail(None, f"saved checkpoint: {exc}")
        return
    if cp.root != roots.get(size):
        report.fail(
            None,
            f"the first {size} events differ from the saved checkpoint: "
            "the history was rewritten or forked",
        )
        return
    report.since_size = size


def read_ndjson(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                yield {"seq": f"unparseable line {number}"}


def verify_bundle(
    directory: Path,
    anchor: Anchor | None,
    since_checkpoint: str | None = None,
    progress: Progress | None = None,
    workers: int = 1,
) -> AuditReport:
    """Verify an export's events.ndjson and (if present) checkpoint.txt against `anchor`.

    The bundle's jwks.json is a convenience for token checks; keys come from the chain.
    Its attestation-ca.pem, if present, must be a CA the log published.
    """
    events = directory / "events.ndjson"
    if not events.is_file():
        return AuditReport().fail(None, f"bundle has no {events.name}")
    checkpoint_path = directory / "checkpoint.txt"
    checkpoint = checkpoint_path.read_text(encoding="utf-8") if checkpoint_path.is_file() else None
    report = verify_records(
        read_ndjson(events), anchor, checkpoint, since_checkpoint, progress, workers
    )
    ca_path = directory / CA_FILE
    if report.ok and ca_path.is_file():
        try:
            fingerprint = crypto.certificate_fingerprint(
                crypto.load_certificate(ca_path.read_bytes())
            )
        except crypto.CryptoError:
            return report.fail(None, f"{CA_FILE} is not a PEM certificate")
        if fingerprint not in report.attestation_cas:
            return report.fail(None, f"{CA_FILE} ({fingerprint[:16]}…) is not published in the log")
    return report
