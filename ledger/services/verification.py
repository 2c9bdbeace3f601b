"""The public view of a certificate, built only from its signed events, checked at serve time.

Used by the public API and the verify site alike. The read model only says
where to look; what the page shows (holder, centre, dates, status, levels,
pix) comes from the certificate's events re-read from the log, each with its
hash recomputed, its signature checked under a trusted key and its chain
link to the previous event checked. Any failed check, or any disagreement
between the read model and those events, gives the distinct status
`integrity-failure` and no certificate content at all.
"""

from __future__ import annotations

import json
import threading
import time
from typing import TYPE_CHECKING, Any

from ledger import crypto, envelope
from ledger.domain import clock
from ledger.domain.candidate import Candidate
from ledger.domain.certificate import certificate_id, public_category
from ledger.domain.course import OPERATOR as OPERATOR_SOURCE
from ledger.domain.course import Course
from ledger.domain.referential import Referential
from ledger.domain.scoring import RULES
from ledger.domain.session import Session
from ledger.envelope import Envelope
from ledger.lru import LRU
from ledger.projections.certificates import by_code, public_status
from ledger.projections.runner import position
from ledger.services.certification import CENTRE_TZ
from ledger.services.signed_certificate import (
    TYPES,
    EventsUnsound,
    certificate_events,
    differences,
    fold,
)
from ledger.store.application import Ledger

if TYPE_CHECKING:
    from ledger.audit.tail import TailVerifier
from ledger.trust import KeyHistory

INTEGRITY_FAILURE = "integrity-failure"


def trusted_keys(ledger: Ledger) -> KeyHistory:
    """The keys whose signatures this server accepts, and for which seqs.

    The one place key trust is decided for the verify page, its JSON and QR
    tokens: only keys endorsed by the chain rooted in the trust anchor (format
    section 3). The database is untrusted, so a key someone wrote into it,
    with its own announcement, is refused.
    """
    return ledger.key_history()


def trusted_jwks(ledger: Ledger) -> dict[str, Any]:
    """The trusted keys as a JWKS (compromised keys left out), to check QR tokens with."""
    return trusted_keys(ledger).jwks()


def check_envelope(ledger: Ledger, env: Envelope, keys: KeyHistory) -> dict[str, Any]:
    """Hash, trusted signature and chain link of one stored event."""
    try:
        record = json.loads(env.to_json_line())
    except ValueError:  # stored data that is not even JSON
        record = {}
    key = keys.keys.get(env.kid)
    previous = ledger.recorder.envelope(env.seq - 1) if env.seq > 1 else None
    return {
        "seq": env.seq,
        "hash": env.hash,
        "kid": env.kid,
        "hash_valid": bool(record) and envelope.check_hash(record),
        "key_trusted": key is not None and key.may_sign(env.seq),
        "signature_valid": bool(record) and not keys.signature_problem(record),
        "chain_link_valid": env.prev == (previous.hash if previous else crypto.ZERO_HASH),
    }


CHECKS = {"hash_valid": "hash", "key_trusted": "key", "signature_valid": "signature",
          "chain_link_valid": "chain"}  # fmt: skip


def failed_checks(check: dict[str, Any]) -> list[str]:
    """The checks of `check_envelope` that failed (`hash_valid`, …), in a fixed order."""
    return [field for field in CHECKS if not check[field]]


def _failed_checks(check: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"check": CHECKS[field], "seq": check["seq"]} for field in failed_checks(check)]


def grouped_levels(ref: Referential, competences: list[dict[str, Any]]) -> list[dict[str, Any]]:
    levels = {c["code"]: c["level"] for c in competences}
    return [
        {
            "code": domain.code,
            "title": domain.title,
            "competences": [
                {"code": c.code, "title": c.title, "level": levels.get(c.code, 0)}
                for c in ref.competences_of(domain.code)
            ],
        }
        for domain in ref.domains
    ]


def holder_of(ledger: Ledger, sealed: dict[str, Any]) -> dict[str, str] | None:
    identity = ledger.vault.open_or_none(sealed)
    if identity is None:
        return None
    return {k: identity[k] for k in ("first_name", "last_name", "birth_date")}


def opened_reason(ledger: Ledger, reason: str | dict[str, str] | None) -> tuple[str | None, bool]:
    """A reason for display and whether it was erased: sealed ones opened, older clear text as is."""
    if isinstance(reason, dict):
        text = ledger.vault.open_or_none(reason)
        return text, text is None
    return reason, False


def opened_history(
    ledger: Ledger, history: list[dict[str, Any]], open_reasons: bool = True
) -> list[dict[str, Any]]:
    """History entries with their reasons opened (null and `reason_erased` once erased);
    left sealed with `open_reasons` false, for a reader the reasons are withheld from.

    A rescoring also gets its scoring rules' description, so a reader learns
    what the rules version means without looking it up.
    """
    entries = []
    for entry in history:
        if open_reasons and "reason" in entry:
            text, erased = opened_reason(ledger, entry["reason"])
            entry = {**entry, "reason": text, **({"reason_erased": True} if erased else {})}
        if "rules" in entry:
            entry = {**entry, "rules_description": RULES.get(entry["rules"])}
        entries.append(entry)
    return entries


PUBLIC, HOLDER, OPERATOR = "public", "holder", "operator"
READERS = (PUBLIC, HOLDER, OPERATOR)
PRIVATE_FIELDS = ("reason", "reason_erased")  # history entry fields only HOLDER and OPERATOR read


def audience_of(scopes: frozenset[str] | None, view: dict[str, Any]) -> str:
    """Who a view is built for: the operator (`admin`), the holder, or anybody else.

    The holder is recognised from the verified events (`view["candidate"]`), never
    from the read model; a failed view has no candidate, so no holder.
    """
    if scopes is None:
        return PUBLIC
    if "admin" in scopes:
        return OPERATOR
    holder = view.get("candidate")
    return HOLDER if holder and f"candidate:{holder}" in scopes else PUBLIC


def cancellation_category(view: dict[str, Any]) -> str | None:
    """The latest cancellation's signed category ("other" for events older than categories)."""
    cancelled = [h for h in view.get("history", []) if h.get("event") == "cancelled"]
    return cancelled[-1].get("category", "other") if cancelled else None


def _entry_category(entry: dict[str, Any], private: bool) -> str | None:
    """An entry's category: a cancellation's (neutral unless `private`), a rescoring's cause."""
    if entry.get("event") == "cancelled":
        category = entry.get("category", "other")
        return category if private else public_category(category)
    return entry.get("cause")


def _categorized(entry: dict[str, Any], private: bool) -> dict[str, Any]:
    """A history entry with its category; its free-text reason only when `private`."""
    category = _entry_category(entry, private)
    kept = entry if private else {k: v for k, v in entry.items() if k not in PRIVATE_FIELDS}
    return {**kept, "category": category} if category else kept


def _status_category(view: dict[str, Any], private: bool) -> str | None:
    signed = cancellation_category(view) if view["status"] == "cancelled" else None
    return signed if private or signed is None else public_category(signed)


def neutralizations_for(
    ledger: Ledger, entries: list[dict[str, Any]], operator: bool
) -> list[dict[str, Any]]:
    """A course's neutralizations as a reader may see them: the operator's reasons for `admin` only.

    Centre staff wrote the examiner report and read it back in full; a reason the
    operator gave for its own neutralization (source `operator`) may concern the
    candidate's conduct, so anybody else reads its source and challenge alone.
    """
    if operator:
        return opened_history(ledger, entries)
    return [
        {k: v for k, v in e.items() if k not in PRIVATE_FIELDS} if e["source"] == OPERATOR_SOURCE
        else e
        for e in entries
    ]  # fmt: skip


def for_audience(view: dict[str, Any], audience: str) -> dict[str, Any]:
    """The view as `audience` may read it: text and signed category for holder and operator only.

    A reason may name the holder or describe misconduct, and the page shows the
    category next to the holder's name: anybody else reads the neutral public
    category (domain.certificate.PUBLIC_CATEGORIES; a rescoring's cause as is).
    """
    private = audience != PUBLIC
    shaped = {
        **view,
        "audience": audience,
        "status_category": _status_category(view, private),
        "history": [_categorized(entry, private) for entry in view["history"]],
    }
    if not private:
        shaped.update(status_reason=None, status_reason_erased=False)
    return shaped


def public_certificate(
    ledger: Ledger,
    ref: Referential,
    code: str,
    keys: KeyHistory | None = None,
    tail: TailVerifier | None = None,
) -> dict[str, Any] | None:
    """The public view of `code` (None if unknown), or its integrity-failure view.

    `tail` is what this process's own audit has verified so far: it catches
    what the certificate's events alone cannot, a later event deleted with the
    read model edited to match, or a log that stopped verifying after the issue.
    """
    found = verified_certificate(ledger, ref, code, keys, tail)
    return found[0] if found else None


def verified_certificate(
    ledger: Ledger,
    ref: Referential,
    code: str,
    keys: KeyHistory | None = None,
    tail: TailVerifier | None = None,
) -> tuple[dict[str, Any], dict[str, Any] | None] | None:
    """The public view and, when it verified, the row its signed events fold to.

    The row holds what the public view leaves out (candidate, centre and session
    ids, sealed identity): attestations and their authorization need it, and
    must take it from the same checked events.
    """
    projected = position(ledger.db, "certificates")  # read first: the row is at least this new
    try:
        with ledger.db.read() as cur:
            stored = by_code(cur, code)
    except ValueError:  # a read-model row that is not even JSON
        return failure_view(code, [], [{"check": "read-model", "seq": None, "fields": []}]), None
    if stored is None:
        return None
    events = certificate_events(ledger.recorder, code)
    keys = trusted_keys(ledger) if keys is None else keys
    checks = [check_envelope(ledger, env, keys) for env in events]
    problems = [p for check in checks for p in _failed_checks(check)]
    seqs = {env.seq for env in events}
    problems += [
        {"check": "missing", "seq": seq}
        for seq in sorted({stored["issued_seq"], stored["latest_seq"]} - seqs)
    ]
    problems += _against_tail(tail, code, events)
    if problems:
        return failure_view(code, checks, problems), None
    try:
        verified = fold(code, events)
        bound = max(projected, stored["latest_seq"])
        mismatch = differences(stored, fold(code, [e for e in events if e.seq <= bound]))
    except EventsUnsound as exc:
        return failure_view(code, checks, [{"check": "history", "seq": exc.seq}]), None
    if mismatch:
        view = failure_view(
            code, checks, [{"check": "read-model", "seq": None, "fields": mismatch}]
        )
        return view, None
    return verified_view(ledger, ref, verified, checks), verified


def _against_tail(
    tail: TailVerifier | None, code: str, events: list[Envelope]
) -> list[dict[str, Any]]:
    """Problems the process's own log audit reveals about this certificate."""
    if tail is None:
        return []
    problems: list[dict[str, Any]] = []
    seen = tail.revised_certificates.get(str(certificate_id(code)), 0)
    if seen > max((env.version for env in events), default=0):
        problems.append({"check": "deleted", "seq": None})
    first = events[0].seq if events else 0
    if tail.problem and (tail.problem_seq or 0) >= first:
        problems.append({"check": "log", "seq": tail.problem_seq})
    return problems


def verified_view(
    ledger: Ledger, ref: Referential, cert: dict[str, Any], checks: list[dict[str, Any]]
) -> dict[str, Any]:
    """What the page shows, every value taken from checked, signed events."""
    status = public_status(cert, clock.now().astimezone(CENTRE_TZ).date())
    reason, reason_erased = opened_reason(ledger, status["reason"])
    return {
        "code": cert["code"],
        "holder": holder_of(ledger, cert["holder"]),
        "centre": cert["centre_name"],
        "centre_id": cert["centre_id"],  # who may download (not in the public JSON)
        "candidate": cert["candidate"],
        "passed_on": cert["passed_on"],
        "issued_on": cert["issued_on"],
        "valid_until": cert["valid_until"],
        "status": status["status"],
        "status_since": status["since"],
        "status_reason": reason,
        "status_reason_erased": reason_erased,
        "max_level": cert["max_level"],
        "pix_score": cert["pix_score"],
        "domains": grouped_levels(ref, cert["competences"]),
        "history": opened_history(ledger, cert["history"]),
        "proof": {**checks[0], "latest_seq": cert["latest_seq"]},
        "events": checks,
        "integrity": {"verified": True, "problems": []},
    }


def failure_view(
    code: str, checks: list[dict[str, Any]], problems: list[dict[str, Any]]
) -> dict[str, Any]:
    """The integrity-failure view: what failed, and nothing of the certificate's content."""
    issuing = checks[0] if checks else {"seq": None, "hash": None, "kid": None}
    return {
        "code": code,
        "holder": None,
        "centre": None,
        "centre_id": None,
        "candidate": None,
        "passed_on": None,
        "issued_on": None,
        "valid_until": None,
        "status": INTEGRITY_FAILURE,
        "status_since": None,
        "status_reason": None,
        "status_reason_erased": False,
        "max_level": None,
        "pix_score": None,
        "domains": [],
        "history": [],
        "proof": {**issuing, "latest_seq": checks[-1]["seq"] if checks else None},
        "events": checks,
        "integrity": {"verified": False, "problems": problems},
    }


class PublicViews:
    """Public certificate views, cached until their certificate's events change, the day
    changes or REVERIFY_S pass.

    Every answer is computed from the log with re-checked signatures; the cache
    only avoids redoing that work for a state that has not changed. The log's
    head is read at most every FRESHNESS_S seconds under load, and at once
    after this process wrote: another node's cancellation shows within 50 ms,
    this node's immediately, and at once to a request whose `X-Min-Seq` names it.
    When the head moved, the events appended since are listed (type and stream):
    a certificate event drops that certificate's view and pages; events no view
    reads (answers, courses, sessions, registrations) drop nothing, so lookups stay
    cached under the national write load; any other event (a key, an erasure, a
    type this list does not know), a head that went back, a long gap or a new
    problem of the process's own audit drops everything. History pages, which
    hold inclusion proofs to the latest checkpoint, go whenever the head moves.
    Tampering that leaves the head alone (an event edited in place) is caught by
    re-verifying every REVERIFY_S seconds. A view that fails its checks raises an
    alarm in the API state. Both caches are bounded LRUs (clients choose codes and
    tokens), and neither keeps an unknown code or an invalid token.
    """

    CACHE_SIZE = 256
    FRESHNESS_S = 0.05
    REVERIFY_S = 10.0
    SCAN_MAX = 1000  # events listed after a head move; past that, everything is dropped
    CERTIFICATE_EVENTS = frozenset(TYPES)
    READ_BY_NO_VIEW = frozenset(
        {Candidate.Registered.TYPE, Candidate.AnswerRecorded.TYPE, Session.CandidateEnrolled.TYPE,
         Session.CourseStarted.TYPE, Course.Started.TYPE, Course.Answered.TYPE,
         Course.Ended.TYPE, Course.Scored.TYPE}
    )  # fmt: skip
    KNOWN_EVENTS = READ_BY_NO_VIEW | CERTIFICATE_EVENTS

    def __init__(self, api_state: Any):
        self._state = api_state
        self._key: tuple[str, int, int | None] | None = None
        self._views: LRU[dict[str, Any]] = LRU(self.CACHE_SIZE)  # known codes only
        self._keys: KeyHistory | None = None
        self.pages: LRU[str] = LRU(self.CACHE_SIZE)  # never keyed by an unverified token
        self._seen_head: int | None = None
        self._checked_at = 0.0
        self._seen_writes = -1
        self._drops = 0  # a view computed across a drop is not kept
        self._lock = threading.Lock()

    def _head(self) -> int:
        recorder = self._state.ledger.recorder
        now = time.monotonic()
        if (
            self._seen_head is None
            or now - self._checked_at > self.FRESHNESS_S
            or recorder.writes != self._seen_writes
            or self._state.asks_beyond(self._seen_head)
        ):
            self._seen_writes = recorder.writes
            self._checked_at = now
            return self._state.fresh_for_log_reads()  # the view checks the log's own events
        return self._seen_head

    def _sync(self) -> None:
        tail = self._state.tail
        key = (
            clock.now().astimezone(CENTRE_TZ).date().isoformat(),
            int(time.monotonic() // self.REVERIFY_S),
            tail.problem_seq if tail is not None else None,
        )
        with self._lock:
            head, seen = self._head(), self._seen_head
            if key != self._key or seen is None or head < seen or head - seen > self.SCAN_MAX:
                self._drop_all()
            elif head > seen:
                self._drop_changed(seen, head)
            self._key, self._seen_head = key, head

    def _drop_changed(self, seen: int, head: int) -> None:
        """Drop what the events after `seen` change; everything when they cannot tell."""
        kinds = self._state.ledger.recorder.kinds_between(seen, head)
        if len(kinds) != head - seen or any(kind not in self.KNOWN_EVENTS for kind, _ in kinds):
            self._drop_all()  # a gap in the seqs, a key, an erasure, a type not listed
            return
        streams = {stream for kind, stream in kinds if kind in self.CERTIFICATE_EVENTS}
        if streams:  # also a view being computed now, not cached yet, is not kept
            self._drops += 1

        def changed(code: str) -> bool:
            return str(certificate_id(code)) in streams

        self.pages.discard_if(lambda key: key[0] == "history" or changed(_page_code(key)))
        self._views.discard_if(changed)

    def _drop_all(self) -> None:
        self._views.clear()
        self.pages.clear()
        self._keys = None
        self._drops += 1

    def get(self, code: str) -> dict[str, Any] | None:
        self._sync()
        view = self._views.get(code)
        if view is not None:
            return view
        drops = self._drops
        keys = self._keys
        if keys is None:
            keys = self._keys = trusted_keys(self._state.ledger)
        st = self._state
        view = public_certificate(st.ledger, st.referential, code, keys, st.tail)
        if view is None:
            return None
        if not view["integrity"]["verified"]:
            self._alarm(view)
        if drops == self._drops:  # nothing was dropped while it was computed
            self._views[code] = view
        return view

    def _alarm(self, view: dict[str, Any]) -> None:
        """Record a failed certificate: readiness fails while any alarm is present."""
        self._state.raise_alarm({"code": view["code"], "problems": view["integrity"]["problems"]})


def _page_code(key: tuple) -> str:
    """The certificate code a cached page is for: (code, lang, token) or (kind, code, …)."""
    return key[1] if key[0] in ("json", "history") else key[0]
