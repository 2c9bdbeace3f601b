"""A witness: its key, the log keys it trusts per origin, and its state, behind one call."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from ledger.audit.cosignature import VerifierKey, cosign
from ledger.crypto import SigningKey
from ledger.trust import Anchor
from ledger.witness import rules
from ledger.witness.request import parse_request
from ledger.witness.state import Clock, WitnessState


def log_keys(vkeys: Iterable[str]) -> dict[str, list[bytes]]:
    """Origin -> trusted Ed25519 keys, from log vkeys (`ledger keys anchor` lines or files).

    Several keys per origin are allowed, so a log's rotated key can be added
    before the log switches to it.
    """
    found: dict[str, list[bytes]] = {}
    for text in vkeys:
        anchor = Anchor.load(text)
        found.setdefault(anchor.origin, []).append(anchor.public_key)
    return found


@dataclass
class Witness:
    vkey: VerifierKey
    key: SigningKey = field(repr=False)
    logs: dict[str, list[bytes]]
    state: WitnessState

    def add_checkpoint(self, raw: bytes, clock: Clock = lambda: int(time.time())) -> str:
        """The cosignature line for the request in `raw`; Refusal otherwise.

        The signature is checked before taking the state's write lock (it is the
        costly part and needs no state); the rules run under the lock.
        """
        request = parse_request(raw)
        rules.check_signed(request, self.logs)
        timestamp = self.state.add(request, lambda latest: rules.judge(request, latest), clock)
        return cosign(request.body, self.vkey.name, self.key, timestamp)
