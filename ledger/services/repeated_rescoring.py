"""What an earlier rescoring answered, read back from the log for an identical repeat.

A repeated rescoring records nothing (the course already holds the result), yet
its caller gets the answer the first call gave: rebuilt from the course's
`CourseScored` events and the certificate event saved with the last one (the
same save gives them consecutive seqs), so it survives a restart and needs no
cache. When the latest scoring is not such a rescoring, there is nothing to
repeat and the caller answers "nothing to do".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ledger.domain.course import Course
from ledger.domain.scoring import ERROR, rules_of
from ledger.envelope import Envelope
from ledger.services.signed_certificate import CANCELLED, RESCORED, certificate_events
from ledger.services.signed_certificate import ISSUED as ISSUED_EVENT
from ledger.store.application import Ledger

COURSE_SCORED = Course.Scored.TYPE
RULES_BASIS, LATE_REPORT_BASIS = "rules", "rescoring"
UNCHANGED = "unchanged"
NEEDS_REVIEW = "needs-review"
ISSUED = "issued"
ACTIONS = {ISSUED_EVENT: ISSUED, RESCORED: "rescored", CANCELLED: "cancelled"}


def scorings(ledger: Ledger, course_id: str) -> list[Envelope]:
    """The course's scoring events, oldest first."""
    return [e for e in ledger.recorder.stream_envelopes(course_id) if e.type == COURSE_SCORED]


def last_rescoring(ledger: Ledger, course_id: str, basis: str) -> tuple[Envelope, Envelope] | None:
    """(previous, latest) scoring events when the latest is a rescoring on `basis`."""
    scored = scorings(ledger, course_id)
    if len(scored) < 2 or scored[-1].data.get("basis") != basis:
        return None
    return scored[-2], scored[-1]


def certificate_action(ledger: Ledger, code: str, scored: Envelope) -> str | None:
    """What the rescoring at `scored` did to the certificate `code` (None: not issued yet)."""
    events = certificate_events(ledger.recorder, code)
    if not events or events[0].seq > scored.seq + 1:
        return None
    follower = next((e for e in events if e.seq == scored.seq + 1), None)
    if follower is not None:
        return ACTIONS.get(follower.type, UNCHANGED)
    if any(e.type == CANCELLED and e.seq < scored.seq for e in events):
        return UNCHANGED
    return NEEDS_REVIEW if scored.data["result"].get("status") == ERROR else UNCHANGED


def rules_answer(
    ledger: Ledger, course_id: str, code_of: Callable[[], str | None]
) -> dict[str, Any] | None:
    """The answer of the rules rescoring that produced the course's latest result, if one did.

    `code_of` gives the course's certificate code, asked only when there is one to rebuild.
    """
    found = last_rescoring(ledger, course_id, RULES_BASIS)
    if found is None:
        return None
    previous, latest = found[0].data["result"], found[1]
    code = code_of()
    action = certificate_action(ledger, code, latest) if code else None
    return {
        "course": course_id,
        "previous_rules": rules_of(previous),
        "previous_status": previous["status"],
        "rescored": True,
        "dry_run": False,
        "certificate": code if action else None,
        "certificate_action": action,
        "result": latest.data["result"],
    }


def late_report_answer(
    ledger: Ledger, code: str, course_id: str, requested: set[str], neutralized: set[str]
) -> dict[str, Any] | None:
    """The answer of the late report that produced the latest result, if it asked the same.

    `neutralized` holds the course's neutralizations now; the repeat is identical when the
    challenges it asks for that are neutralized are exactly those the last report granted.
    """
    found = last_rescoring(ledger, course_id, LATE_REPORT_BASIS)
    if found is None:
        return None
    previous, latest = found
    granted = set(latest.data["neutralized"]) - set(previous.data["neutralized"])
    if not granted or granted != requested & neutralized:
        return None
    action = certificate_action(ledger, code, latest) or UNCHANGED
    return {
        "result": latest.data["result"],
        "neutralized": sorted(granted),
        "kept": sorted(requested - neutralized),
        "certificate_action": action,
        "unchanged": action == UNCHANGED,
    }
