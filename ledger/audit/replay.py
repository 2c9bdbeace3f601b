"""Point in time: the verified prefix of the log up to a seq or an instant.

`ledger audit replay` rebuilds the read models as they stood at some moment.
What it replays must be the log an auditor accepts, so every record is checked
as `verify.py` checks it (position, chain link, hash, signature under the key
chain rooted in the anchor) and the walk stops at the first bad one: a read
model built from a forged event would be a forged past. The cut is a prefix of
the log (the first event after `until` ends it), so the replayed state is one
the log really went through, even if clocks of several writers disagreed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ledger import crypto
from ledger.audit.verify import AuditReport, _check_fact, check_key, check_record
from ledger.domain import clock
from ledger.envelope import Envelope
from ledger.trust import Anchor, KeyHistory, SignedSeqs

_SEQ = re.compile(r"[1-9][0-9]{0,17}")


class ReplayError(ValueError):
    """A bad `--until`, or a replay that met an event that does not verify."""


@dataclass(frozen=True)
class Until:
    """Where the replay stops: after event `seq`, or after the last event at or before `time`."""

    seq: int | None = None
    time: datetime | None = None

    @classmethod
    def parse(cls, text: str) -> Until:
        """A positive seq, or a time exactly as the wire writes it (format section 1)."""
        text = text.strip()
        if _SEQ.fullmatch(text):
            return cls(seq=int(text))
        try:
            return cls(time=clock.parse_time(text))
        except ValueError:
            raise ReplayError(
                "--until is a seq (a positive integer) or a time YYYY-MM-DDTHH:MM:SS.ffffffZ"
            ) from None

    def passed(self, record: dict[str, Any]) -> bool:
        """True once `record` lies after the cut."""
        if self.seq is not None:
            return record["seq"] > self.seq
        return clock.parse_time(record["time"]) > self.time  # type: ignore[operator]


def verified_envelopes(
    records: Iterable[dict[str, Any]], anchor: Anchor | None, until: Until, report: AuditReport
) -> Iterator[Envelope]:
    """Envelopes of the verified prefix up to `until`; `report` says how far and why it stopped.

    A bad record ends the walk with `report.ok` false: nothing after it is yielded.
    """
    history, signed = KeyHistory(anchor), SignedSeqs()
    prev = crypto.ZERO_HASH
    for record in records:
        expected = report.events + 1
        problem = check_record(record, expected, prev)
        if problem:
            report.fail(expected, problem)
            return
        try:
            if until.passed(record):
                return
        except (ValueError, TypeError):
            report.fail(expected, f"time {str(record.get('time'))[:40]!r} is not a wire time")
            return
        bad_seq, problem = check_key(record, history, signed)
        problem = problem or _check_fact(record, report)
        if problem:
            report.fail(bad_seq or expected, problem)
            return
        prev = record["hash"]
        report.events = expected
        report.keys_used.add(record["kid"])
        yield to_envelope(record)


def to_envelope(record: dict[str, Any]) -> Envelope:
    """A verified record as the projections read it (its data in the JCS form the hash covers)."""
    return Envelope(
        seq=record["seq"], id=record["id"], stream=record["stream"], version=record["version"],
        type=record["type"], time=record["time"],
        data_json=crypto.canonical_json(record["data"]).decode("utf-8"),
        prev=record["prev"], hash=record["hash"], kid=record["kid"], sig=record["sig"],
    )  # fmt: skip
