"""Read the live store as an auditor would, and write offline bundles.

A bundle is `events.ndjson` (one envelope per line, seq order), `jwks.json`,
`checkpoint.txt` (the latest published checkpoint, cosigned) and, once the log published it, `attestation-ca.pem` (the CA
attestation PDFs chain to): everything `ledger audit verify BUNDLE`, or a few dozen
lines in any language, needs to check the whole history without the server.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ledger import crypto
from ledger.attestation import ca
from ledger.audit.checkpoint import Checkpoint, sign_checkpoint
from ledger.audit.merkle import MerkleAccumulator
from ledger.store.application import Ledger


class ExportError(Exception):
    """The bundle could not be written where asked."""


def jwks(ledger: Ledger) -> dict[str, Any]:
    """The keys the endorsement chain accepts (format 3): a convenience, never a trust root."""
    return ledger.key_history().jwks()


def live_records(ledger: Ledger, upto: int | None = None) -> Iterator[dict[str, Any]]:
    """Envelope records from the database, each row's `data` also checked byte for byte.

    A row whose stored data text is not exactly its canonical form is yielded with
    a marker that fails the hash check, so even a whitespace edit is reported.
    """
    for env in ledger.recorder.iter_envelopes():
        if upto is not None and env.seq > upto:
            return
        record = json.loads(env.to_json_line())
        if crypto.canonical_json(record["data"]).decode("utf-8") != env.data_json:
            record["data"] = {"__stored_bytes_not_canonical__": env.data_json}
        yield record


def checkpoint_note(ledger: Ledger, size: int | None = None) -> str:
    """A freshly signed checkpoint over the first `size` events (default: all)."""
    tree = MerkleAccumulator()
    for env in ledger.recorder.iter_envelopes():
        if size is not None and env.seq > size:
            break
        tree.append(bytes.fromhex(env.hash))
    cp = Checkpoint(origin=ledger.config.log_origin, size=tree.size, root=tree.root())
    return sign_checkpoint(cp, ledger.signing_key())


def _export_ca(ledger: Ledger, out: Path) -> None:
    """The attestation CA, when this node has one the log published: PDFs chain to it."""
    try:
        identity = ca.load(ledger.config)
    except ca.AttestationKeyError:
        return
    if identity.fingerprint in ca.published_fingerprints(ledger.recorder):
        (out / ca.CA_FILE).write_bytes(identity.ca_pem)


def export_bundle(ledger: Ledger, out: Path) -> int:
    """Write the bundle into `out` (created if needed); return the number of events.

    checkpoint.txt is the latest checkpoint the log published, with its witness
    cosignatures, signed now if the log grew since: read before the events, so the
    bundle always holds what it covers.
    """
    from ledger.services.checkpoints import latest_note, sign_now  # built on this package

    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot create {out}: {exc.strerror}") from exc
    if any((out / name).exists() for name in ("events.ndjson", "jwks.json", "checkpoint.txt")):
        raise ExportError(f"{out} already holds a bundle; choose an empty directory")
    sign_now(ledger)
    note = latest_note(ledger)
    count = 0
    tmp = out / "events.ndjson.tmp"
    with tmp.open("w", encoding="utf-8") as handle:
        for env in ledger.recorder.iter_envelopes():
            handle.write(env.to_json_line() + "\n")
            count += 1
    os.replace(tmp, out / "events.ndjson")
    (out / "jwks.json").write_text(json.dumps(jwks(ledger), indent=2) + "\n", encoding="utf-8")
    _export_ca(ledger, out)
    (out / "checkpoint.txt").write_text(note, encoding="utf-8")
    return count
