"""Checkpoint decisions, kept free of storage and HTTP: when to sign, whether it may be signed,
which witnesses count, and the exact C2SP tlog-witness wire forms (format section 5.3).

A log that signs two checkpoints which are not consistent has forked: no later
cosignature can repair that. So the decision to sign is a proof check, and every
byte a witness sends back is parsed strictly before it is stored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from ledger.audit.checkpoint import SIG_PREFIX, CheckpointError
from ledger.audit.cosignature import COSIGNATURE_ALG, VerifierKey, parse_vkey
from ledger.audit.merkle import verify_consistency
from ledger.config import Config, ConfigError
from ledger.crypto import b64

MAX_PROOF_LINES = 63  # tlog-witness: a client never sends more
MAX_RESPONSE_BYTES = 64 * 1024  # a witness answer is a few signature lines
MAX_COSIGNATURE_LINES = 16
_SIZE_LINE = re.compile(rb"(0|[1-9][0-9]{0,19})\n")


class InconsistentLog(Exception):
    """The log's current tree does not extend the latest signed checkpoint: never sign it."""


class WitnessProtocolError(ValueError):
    """A witness answer that is not what tlog-witness allows."""


@dataclass(frozen=True)
class Witness:
    """A witness we push checkpoints to: its cosigner key and its submission prefix."""

    vkey: VerifierKey
    url: str

    @property
    def name(self) -> str:
        return self.vkey.name


@dataclass(frozen=True)
class Witnessed:
    """The latest checkpoint cosigned by at least the quorum of trusted witnesses."""

    note: str  # with the valid cosignature lines
    size: int
    root: bytes
    cosigners: dict[str, int]  # witness name -> cosignature timestamp


# --- configuration -----------------------------------------------------------


def parse_witnesses(text: str) -> list[Witness]:
    """LEDGER_WITNESSES: `<vkey> <base URL>` entries separated by newlines or ';'."""
    found: list[Witness] = []
    for entry in re.split(r"[;\n]", text):
        if not entry.strip():
            continue
        parts = entry.split()
        if len(parts) != 2:
            raise ConfigError("LEDGER_WITNESSES entries are '<witness vkey> <base URL>'")
        try:
            vkey = parse_vkey(parts[0])
        except CheckpointError as exc:
            raise ConfigError(f"LEDGER_WITNESSES: {exc}") from exc
        if vkey.alg != COSIGNATURE_ALG:
            raise ConfigError(f"LEDGER_WITNESSES: {vkey.name} is not a cosigner key (type 0x04)")
        if not parts[1].startswith(("https://", "http://")):
            raise ConfigError(f"LEDGER_WITNESSES: the URL of {vkey.name} is not http(s)")
        if any(w.name == vkey.name for w in found):
            raise ConfigError(f"LEDGER_WITNESSES: witness {vkey.name} is listed twice")
        found.append(Witness(vkey, parts[1].rstrip("/")))
    return found


def witnesses(config: Config) -> list[Witness]:
    return parse_witnesses(config.witnesses)


def witness_keys(config: Config) -> list[VerifierKey]:
    return [w.vkey for w in witnesses(config)]


def quorum(config: Config) -> int:
    """Cosignatures a checkpoint needs: LEDGER_WITNESS_QUORUM, default every witness."""
    count = len(witnesses(config))
    wanted = count if config.witness_quorum is None else config.witness_quorum
    if wanted > count:
        raise ConfigError(f"LEDGER_WITNESS_QUORUM is {wanted} but only {count} witnesses are set")
    return wanted


# --- when and whether to sign ------------------------------------------------


@dataclass(frozen=True)
class Schedule:
    """Sign every `every_events` events or `every_seconds` seconds, whichever comes first."""

    every_events: int
    every_seconds: int

    @classmethod
    def of(cls, config: Config) -> Schedule:
        return cls(config.checkpoint_events, config.checkpoint_seconds)

    def due(self, last: tuple[int, datetime] | None, size: int, now: datetime) -> bool:
        """Whether a tree of `size` leaves gets a new checkpoint, given the last (size, time).

        The first checkpoint is always due (even of the empty tree: clients need
        one); later ones only for a larger tree, so a size is never signed twice.
        """
        if last is None:
            return True
        last_size, last_time = last
        if size <= last_size:
            return False
        return (
            size - last_size >= self.every_events
            or (now - last_time).total_seconds() >= self.every_seconds
        )


def check_extends(old: tuple[int, bytes], new: tuple[int, bytes], proof: list[bytes]) -> None:
    """InconsistentLog unless `proof` shows tree (size, root) `new` extends `old`."""
    (old_size, old_root), (new_size, new_root) = old, new
    if new_size < old_size:
        raise InconsistentLog(
            f"the log has {new_size} events, fewer than the {old_size} already checkpointed"
        )
    if old_size == 0:
        return  # every tree extends the empty one
    if not verify_consistency(old_size, new_size, old_root, new_root, proof):
        raise InconsistentLog(
            f"the tree of {new_size} events is not consistent with the checkpoint of"
            f" size {old_size}: the log was rewritten"
        )


# --- tlog-witness wire forms -------------------------------------------------


def add_checkpoint_body(old_size: int, proof: list[bytes], note: str) -> bytes:
    """The add-checkpoint request: `old N`, proof lines, a blank line, the signed note."""
    if len(proof) > MAX_PROOF_LINES:
        raise WitnessProtocolError(f"a consistency proof has at most {MAX_PROOF_LINES} hashes")
    if old_size == 0 and proof:
        raise WitnessProtocolError("the proof from size 0 is empty")
    lines = [f"old {old_size}\n", *(b64(h) + "\n" for h in proof), "\n", note]
    return "".join(lines).encode()


def parse_tlog_size(body: bytes) -> int:
    """A 409 answer's body (text/x.tlog.size): the witness's latest size and a newline."""
    match = _SIZE_LINE.fullmatch(body)
    if match is None:
        raise WitnessProtocolError("a 409 body is a decimal tree size and a newline")
    return int(match.group(1))


def parse_cosignature_lines(body: bytes) -> list[str]:
    """A 200 answer's body: one or more note signature lines, each ending with a newline."""
    if len(body) > MAX_RESPONSE_BYTES:
        raise WitnessProtocolError("the witness answer is too large")
    try:
        text = body.decode()
    except UnicodeDecodeError as exc:
        raise WitnessProtocolError("the witness answer is not UTF-8") from exc
    if not text.endswith("\n"):
        raise WitnessProtocolError("the witness answer does not end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) > MAX_COSIGNATURE_LINES:
        raise WitnessProtocolError("the witness answer holds too many signature lines")
    if any(not line.startswith(SIG_PREFIX) or line.startswith(SIG_PREFIX + " ") for line in lines):
        raise WitnessProtocolError("the witness answer holds a line that is not a signature")
    return [line + "\n" for line in lines]
