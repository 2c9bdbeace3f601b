"""Issuing verifiable credentials of certificates, the status lists, and the DID document.

Each credential's place in the status lists is the rank, among the log's
`CertificateIssued` and `CertificateRescored` events, of the event it states
(0 for the first certificate ever issued): fixed once logged, never shared, and
recomputable by anyone holding the log. A rescoring issues a new credential at
a new place and revokes the one it supersedes, so a credential with old levels
stops verifying; a cancellation revokes the current one. The lists are folded
from those signed events and the cancellations, each checked under the trusted
keys, incrementally as the log grows.
"""

from __future__ import annotations

import threading
from datetime import UTC
from typing import Any

from ledger.domain import clock
from ledger.domain.certificate import certificate_id
from ledger.services.certification import CENTRE_TZ
from ledger.services.signed_certificate import CANCELLED, ISSUED, RESCORED
from ledger.services.verification import trusted_keys
from ledger.store.application import Ledger
from ledger.vc import credential, did, status_list
from ledger.vc.data_integrity import add_proof

ISSUER_NAME = "Registre des certifications CRCN"
STATUS_PATH = "/api/v1/status"


class StatusUnsound(Exception):
    """An issuing or cancelling event that does not verify: no list can be vouched for."""


class StatusIndex:
    """Certificate stream -> index of its current credential, and the revoked indices."""

    PAGE = 2000

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.issued = 0  # credentials placed so far: the next index
        self.revoked: set[int] = set()
        self.seen = 0  # the last seq folded
        self.changed = 0  # the seq of the last event that changed a list
        self.broken = ""  # why the log cannot be vouched for, once found
        self._lock = threading.Lock()

    def refresh(self, ledger: Ledger) -> None:
        """Fold the issuing and cancelling events appended since the last call.

        Once the log was found unsound, it stays so for this process (an alarm
        is raised): no later list or credential is vouched for.
        """
        with self._lock:
            if self.broken:
                raise StatusUnsound(self.broken)
            try:
                self._fold(ledger)
            except StatusUnsound as exc:
                self.broken = str(exc)
                raise

    def _fold(self, ledger: Ledger) -> None:
        while True:
            batch = ledger.recorder.envelopes(
                after=self.seen, limit=self.PAGE, types=(ISSUED, RESCORED, CANCELLED)
            )
            if not batch:
                return
            keys = trusted_keys(ledger)  # read after the batch: it knows every key that signed it
            for env in batch:
                if not keys.verify_one(env):
                    raise StatusUnsound(f"event {env.seq} does not verify")
                self._apply(env)
            _no_gap(ledger, batch[-1].seq)
            if len(batch) < self.PAGE:
                return

    def _apply(self, env: Any) -> None:
        current = self.index.get(env.stream)
        if env.type == ISSUED and current is not None:
            raise StatusUnsound(f"certificate issued twice (seq {env.seq})")
        if env.type != ISSUED and current is None:
            raise StatusUnsound(f"event {env.seq} revises a certificate never issued")
        if current is not None:  # rescored (superseded) or cancelled
            self.revoked.add(current)
        if env.type in (ISSUED, RESCORED):
            self.index[env.stream] = self.issued
            self.issued += 1
        self.seen = self.changed = env.seq

    def lists(self) -> int:
        """How many lists exist: enough for every credential placed (at least one)."""
        return max(1, -(-self.issued // status_list.SIZE))

    def revoked_in(self, number: int) -> list[int]:
        low = (number - 1) * status_list.SIZE
        return sorted(i - low for i in self.revoked if low <= i < low + status_list.SIZE)


def _no_gap(ledger: Ledger, seq: int) -> None:
    """Every seq up to `seq` is there: a deleted issuing event would shift later indices."""
    with ledger.db.read() as cur:
        cur.execute("SELECT COUNT(*) FROM ledger_events WHERE seq <= ?", (seq,))
        if cur.fetchone()[0] != seq:
            raise StatusUnsound(f"events are missing from the log before seq {seq}")


class CredentialIssuer:
    """Signs credentials and status lists for one API process; lists cached until they change."""

    def __init__(self, ledger: Ledger, public_url: str):
        self.ledger = ledger
        self.public_url = public_url
        self.did = did.did_web(public_url)
        self.status = StatusIndex()
        self._lists: dict[int, tuple[tuple[int, str], dict[str, Any]]] = {}

    def did_document(self) -> dict[str, Any]:
        """The keys the endorsement chain accepts (compromised ones left out), as Multikeys."""
        keys = trusted_keys(self.ledger).keys.values()
        return did.did_document(
            self.did, [k.public_key for k in keys if k.compromised_since is None]
        )

    def list_url(self, number: int) -> str:
        return f"{self.public_url}{STATUS_PATH}/{number}"

    def _sign(self, document: dict[str, Any]) -> dict[str, Any]:
        key = self.ledger.signing_key()
        return add_proof(document, key, did.method_id(self.did, key.kid), _now())

    def credential(self, view: dict[str, Any]) -> dict[str, Any]:
        """The signed credential of a verified view (holder known, not cancelled)."""
        self.status.refresh(self.ledger)
        index = self.status.index.get(str(certificate_id(view["code"])))
        if index is None:
            raise StatusUnsound("the certificate's issuing event is not in the log")
        number, position = status_list.place(index)
        unsigned = credential.build(
            view,
            public_url=self.public_url,
            issuer_name=ISSUER_NAME,
            status=status_list.entry(self.list_url(number), position),
            tz=CENTRE_TZ,
        )
        return self._sign(unsigned)

    def status_list(self, number: int) -> dict[str, Any] | None:
        """The signed status list `number` (from 1), or None past the last list."""
        self.status.refresh(self.ledger)
        if not 1 <= number <= self.status.lists():
            return None
        version = (self.status.changed, self.ledger.signing_key().kid)
        cached = self._lists.get(number)
        if cached is None or cached[0] != version:
            unsigned = status_list.list_credential(
                self.did, self.list_url(number), self.status.revoked_in(number), _now()
            )
            cached = self._lists[number] = (version, self._sign(unsigned))
        return cached[1]


def _now() -> str:
    """xsd:dateTimeStamp of this second, UTC."""
    return clock.now().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
