"""An event's way into the chain: prepared before the append lock, linked and signed under it.

Only the link depends on the chain (`seq`, `prev`), and with it the hash and the
signature over the hash. Everything else of a row, and the envelope's JCS bytes
around the link, is built by the writer's own thread before it queues for the lock.
Signatures are made in chunks, as the rows are consumed, so the database can
store one chunk while the next is signed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from eventsourcing.persistence import StoredEvent

from ledger import crypto, envelope
from ledger.store.mapper import LedgerStoredEvent

SIGNING_CHUNK = 128  # rows signed at a time: large enough to sign on several threads


@dataclass(frozen=True)
class Prepared:
    """A stored event with all its row and hash input but the chain link."""

    row: tuple  # id, stream, version, type, time, data
    template: envelope.HashedTemplate


def prepare(stored: StoredEvent) -> Prepared:
    assert isinstance(stored, LedgerStoredEvent), "events must go through LedgerMapper"
    row = (
        stored.event_id, str(stored.originator_id), stored.originator_version, stored.topic,
        stored.time, stored.state.decode("utf-8"),
    )  # fmt: skip
    return Prepared(row, envelope.hashed_template(*row))


@dataclass(frozen=True)
class Link:
    seq: int
    prev: str
    digest: bytes
    event: Prepared


class Linked:
    """Events given their place in the chain after (seq, prev): seqs and hashes known, unsigned."""

    def __init__(self, key: crypto.SigningKey, seq: int, prev: str, events: list[Prepared]):
        self.key = key
        self.links: list[Link] = []
        for event in events:
            seq += 1
            digest = crypto.sha256(envelope.linked_bytes(event.template, seq, prev))
            self.links.append(Link(seq, prev, digest, event))
            prev = digest.hex()
        self.head = (seq, prev)

    @property
    def seqs(self) -> list[int]:
        return [link.seq for link in self.links]

    def rows(self, threads: int = 1, start: int = 0, stop: int | None = None) -> Iterator[tuple]:
        """The signed rows (ledger_events columns), signing a chunk at a time."""
        links = self.links[start:stop]
        for first in range(0, len(links), SIGNING_CHUNK):
            chunk = links[first : first + SIGNING_CHUNK]
            signatures = self.key.sign_many([link.digest for link in chunk], threads)
            for link, signature in zip(chunk, signatures, strict=True):
                yield (
                    link.seq, *link.event.row, link.prev, link.digest.hex(), self.key.kid,
                    crypto.b64url(signature),
                )  # fmt: skip
