"""A certificate's events, each with an inclusion proof to a checkpoint outsiders hold.

The verify page shows a certificate from its signed events; this is what lets
someone who trusts neither the page nor the server check that those events are
the ones the log committed to: each event's hash with its RFC 9162 audit path
to the root of a signed (and, when witnesses are configured, cosigned)
checkpoint, the note itself, and the keys that verify the note. Payloads stay
out (the public view shows what may be shown), so the leaf, the event `hash`,
is taken as given: the proof shows the log holds it, not what it says.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ledger import crypto
from ledger.audit.checkpoint import ED25519_ALG, CheckpointError, parse_checkpoint
from ledger.audit.checkpoints import quorum, witness_keys
from ledger.audit.cosignature import VerifierKey, verified_cosigners
from ledger.audit.log_tree import LogTree
from ledger.envelope import Envelope
from ledger.services.checkpoints import latest_note, witnessed
from ledger.services.signed_certificate import certificate_events
from ledger.store.application import Ledger


class HistoryUnavailable(Exception):
    """The stored checkpoint cannot back proofs: unreadable, or beyond the log (truncated)."""


NOT_YET = "not-yet-in-checkpoint"
"""Reason of an event appended after the checkpoint the proofs go to."""


@dataclass(frozen=True)
class ProofTarget:
    """The checkpoint inclusion proofs lead to, as served."""

    note: str
    size: int
    root: bytes
    witnessed: bool
    cosigners: dict[str, int] = field(default_factory=dict)
    witness_keys: list[str] = field(default_factory=list)
    quorum: int = 0


def proof_target(ledger: Ledger) -> ProofTarget:
    """The latest witnessed checkpoint; else the latest signed one, marked not witnessed.

    With no witness configured every checkpoint is only the log's word (`witnessed`
    false); with witnesses, a log none of them has cosigned yet says so the same way.
    """
    keys, needed = witness_keys(ledger.config), quorum(ledger.config)
    vkeys = [str(k) for k in keys]
    found = witnessed(ledger)  # None without witnesses; never with zero cosigners
    if found is not None:
        return ProofTarget(found.note, found.size, found.root, True, found.cosigners, vkeys, needed)
    note = latest_note(ledger)
    try:
        cp, _ = parse_checkpoint(note)
        cosigners = verified_cosigners(note, keys)
    except CheckpointError as exc:
        raise HistoryUnavailable(f"the latest stored checkpoint is unreadable: {exc}") from exc
    return ProofTarget(note, cp.size, cp.root, False, cosigners, vkeys, needed)


def log_keys(ledger: Ledger, size: int) -> list[str]:
    """C2SP verifier keys (type 0x01) of the log keys that may sign a checkpoint of `size`."""
    origin = ledger.config.log_origin
    keys = ledger.key_history().checkpoint_keys(size)
    return [str(VerifierKey(origin, ED25519_ALG[0], raw)) for raw in keys]


def page_trust(ledger: Ledger) -> dict[str, Any]:
    """What the certificate page's script trusts, from configuration rather than /history.

    The history JSON could name any key; the page carries the trust anchor and the
    keys endorsed from it, the configured witness keys and quorum, and the age past
    which an unconfirmed event or an old cosignature is a warning (twice
    LEDGER_CHECKPOINT_MAX_AGE_SECONDS). The page is still served by the operator: this
    binds the check to the published configuration, it does not make it independent.
    """
    origin, anchor = ledger.config.log_origin, ledger.trust_anchor()
    endorsed = ledger.key_history().keys.values()
    raws = [k.public_key for k in endorsed if k.compromised_since is None]
    if anchor is not None:
        raws.insert(0, anchor.public_key)
    log = [str(VerifierKey(origin, ED25519_ALG[0], raw)) for raw in dict.fromkeys(raws)]
    return {
        "log_keys": log,
        "witness_keys": [str(k) for k in witness_keys(ledger.config)],
        "quorum": quorum(ledger.config),
        "max_age": 2 * ledger.config.checkpoint_max_age_s,
    }


def _event(env: Envelope, tree: LogTree, target: ProofTarget) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "seq": env.seq, "version": env.version, "type": env.type, "time": env.time,
        "hash": env.hash, "prev": env.prev, "kid": env.kid, "sig": env.sig,
    }  # fmt: skip
    if env.seq > target.size:
        return {**entry, "inclusion": None, "reason": NOT_YET}
    hashes = tree.inclusion(env.seq, target.size)
    proof = {
        "leaf_index": env.seq - 1,
        "tree_size": target.size,
        "hashes": list(map(crypto.b64, hashes)),
    }
    return {**entry, "inclusion": proof}


def certificate_history(
    ledger: Ledger, tree: LogTree, code: str, status: str, target: ProofTarget
) -> dict[str, Any]:
    """The JSON of GET /api/v1/certificates/<code>/history (format section "Certificate history")."""
    events = certificate_events(ledger.recorder, code)
    held = tree.refresh()
    if target.size > held:
        raise HistoryUnavailable(
            f"the checkpoint covers {target.size} events, the log holds {held}"
        )
    return {
        "code": code,
        "status": status,
        "checkpoint": {
            "note": target.note,
            "size": target.size,
            "root": crypto.b64(target.root),
            "witnessed": target.witnessed,
            "cosigners": target.cosigners,
            "quorum": target.quorum,
        },
        "log_keys": log_keys(ledger, target.size),
        "witness_keys": target.witness_keys,
        "events": [_event(env, tree, target) for env in events],
    }
