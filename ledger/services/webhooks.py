"""Webhooks: a school is told of each publication, cancellation and rescoring of its pupils.

A delivery is queued once per (webhook, event seq) and POSTed with an RFC 9421
HTTP Message Signature (Ed25519, the ledger's current key, `keyid` = JWKS kid),
retried with growing delays until it is accepted or given up. The school reads
the delivery log. The body names the event; the signed results are then read
from the school's endpoint.

Every serving process dispatches (queue, then send), and so may cron and the
operator: a dispatcher first claims a delivery by moving its `next_attempt`
forward by a lease, in one conditional UPDATE that only one of them can win, so
no two send it at the same time. The outcome is recorded by the lease's holder
only. A dispatcher that dies mid-send leaves the lease to expire and the
delivery is sent again: delivery is at least once, and receivers drop a
`delivery` id they already processed.

The database is not trusted with what a school is told: at send time the
body is rebuilt from the signed event at `seq` and the school from the
candidate's signed registration, each checked (hash, trusted signature,
chain link). A delivery whose events do not verify, or whose stored body or
school disagrees with them, is not sent: it fails with an integrity error and
raises the alarm. One slow receiver cannot hold the others: each send has a
deadline, hosts are served in parallel, and a round picks the due deliveries
per host in SQL (the host is stored with the webhook), the `PER_HOST` oldest of
each first, so one school's backlog never hides another's. A host that answers
each send promptly then takes more of its backlog (up to `BURST_PER_HOST`,
within the round's `ROUND_SECONDS`); a slow or failing one keeps its small
share. A send whose name lookup found every lookup thread taken by other names
is left due, not counted against the receiver.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any, Protocol

from ledger import crypto
from ledger.domain import clock
from ledger.domain.candidate import Candidate
from ledger.domain.certificate import certificate_id
from ledger.envelope import Envelope
from ledger.projections.runner import head, position
from ledger.services import webhook_targets
from ledger.services.signed_certificate import CANCELLED, ISSUED, RESCORED
from ledger.services.verification import check_envelope, failed_checks, trusted_keys
from ledger.services.webhook_targets import (
    LookupBusy,
    Resolver,
    TargetRefused,
    check,
    normalise,
    resolve,
)
from ledger.store.application import Ledger
from ledger.trust import KeyHistory

log = logging.getLogger(__name__)

KINDS = {ISSUED: "publication", CANCELLED: "cancellation", RESCORED: "rescoring"}
READ_MODELS = ("certificates", "profiles")  # what a delivery's body is read from
BACKOFF_SECONDS = (10, 60, 300, 1800, 7200)  # after the 1st, 2nd… failed attempt
MAX_ATTEMPTS = len(BACKOFF_SECONDS) + 1
LEASE_SECONDS = 60  # longer than a host's share of a round, so a live sender keeps its claim
PER_HOST = 3  # deliveries sent to any host per round (3 × 10 s deadline < the lease)
BURST_PER_HOST = 200  # the most sent to a host that answers every send promptly
PROMPT_SECONDS = 1.0  # a 2xx within this is a prompt answer
ROUND_SECONDS = 30.0  # no send past the share starts later (+ one deadline < the lease)
SEND_THREADS = 4  # hosts served at once
PAGE = 1000  # events queued per step; due deliveries read per round
REGISTERED = Candidate.Registered.TYPE
Alarm = Callable[[dict[str, object]], None]


class WebhookExists(ValueError):
    """The school already has a webhook to this URL."""

    def __init__(self, existing: str):
        super().__init__(f"url: this school already has webhook {existing} for this URL")
        self.existing = existing


class WebhookLimit(ValueError):
    """The school has as many webhooks as allowed."""


class DeliveryUnsound(Exception):
    """The signed events do not back what the delivery would say; says why."""


class Poster(Protocol):
    def __call__(self, url: str, body: bytes, headers: dict[str, str]) -> int: ...


def post(
    url: str,
    body: bytes,
    headers: dict[str, str],
    allow_private: bool = False,
    resolver: Resolver = resolve,
    owner: str = "",
) -> int:
    """Check the URL on the addresses it resolves to now, then POST there; 0 when unreachable."""
    target = check(url, allow_private, resolver, owner)
    return webhook_targets.post(target, body, headers)


class Webhooks:
    def __init__(
        self,
        ledger: Ledger,
        poster: Poster | None = None,
        resolver: Resolver = resolve,
        alarm: Alarm | None = None,
    ):
        self.ledger = ledger
        self.allow_private = ledger.config.webhook_allow_private
        self.max_per_school = ledger.config.webhook_max_per_school
        self.resolver = resolver
        self.poster = poster  # None: `post`, with the school's lookup quota
        self.alarm = alarm
        # Kept for the process's life: its few threads (and their database connections) are reused.
        self._senders = ThreadPoolExecutor(SEND_THREADS, thread_name_prefix="webhook-send")

    def _post(self, url: str, body: bytes, headers: dict[str, str], school: str) -> int:
        if self.poster is not None:
            return self.poster(url, body, headers)
        return post(url, body, headers, self.allow_private, self.resolver, school)

    def register(self, school: str, url: str) -> dict[str, Any]:
        """Events after the current head are delivered (not the school's past).

        The URL is kept in normal form (see `normalise`). A URL that is not https or
        reaches a non-public address raises `TargetRefused`; one the school already
        has, `WebhookExists`; one more than allowed, `WebhookLimit`.
        """
        url = normalise(url)
        target = check(url, self.allow_private, self.resolver, school)
        hook = {"id": str(uuid.uuid4()), "school": school, "url": url,
                "created": clock.format_time(clock.now()), "after_seq": head(self.ledger.db)}  # fmt: skip
        with self.ledger.db.write() as cur:  # the append lock: one registration at a time
            cur.execute("SELECT id, url FROM webhooks WHERE school = ?", (school,))
            existing = cur.fetchall()
            if same := [hook_id for hook_id, known in existing if known == url]:
                raise WebhookExists(same[0])
            if len(existing) >= self.max_per_school:
                raise WebhookLimit(
                    f"url: this school already has {len(existing)} webhooks, the most allowed;"
                    " delete one first"
                )
            cur.execute(
                "INSERT INTO webhooks (id, school, url, created, after_seq, host)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (*hook.values(), target.host),
            )
        return hook

    def hooks(self, school: str) -> list[dict[str, Any]]:
        """The school's webhooks, oldest first."""
        with self.ledger.db.read() as cur:
            cur.execute(
                "SELECT id, school, url, created, after_seq FROM webhooks WHERE school = ?"
                " ORDER BY created, id",
                (school,),
            )
            names = ("id", "school", "url", "created", "after_seq")
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def delete(self, school: str, hook_id: str) -> int | None:
        """Remove the school's webhook and its log: the pending deliveries dropped, or None."""
        with self.ledger.db.write(lock=None) as cur:
            cur.execute("DELETE FROM webhooks WHERE id = ? AND school = ?", (hook_id, school))
            if cur.rowcount != 1:
                return None
            cur.execute(
                "SELECT COUNT(*) FROM webhook_deliveries WHERE webhook = ? AND status = 'pending'",
                (hook_id,),
            )
            dropped = int(cur.fetchone()[0])
            cur.execute("DELETE FROM webhook_deliveries WHERE webhook = ?", (hook_id,))
        log.info("webhooks: %s of %s deleted, %d pending deliveries dropped",
                 hook_id, school, dropped)  # fmt: skip
        return dropped

    def deliveries(self, school: str) -> list[dict[str, Any]]:
        with self.ledger.db.read() as cur:
            cur.execute(
                "SELECT d.webhook, d.seq, d.body, d.attempts, d.next_attempt, d.status,"
                " d.last_error, d.delivered FROM webhook_deliveries d JOIN webhooks w"
                " ON w.id = d.webhook WHERE w.school = ? ORDER BY d.seq",
                (school,),
            )
            names = ("webhook", "seq", "body", "attempts", "next_attempt", "status",
                     "last_error", "delivered")  # fmt: skip
            rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
        return [{**r, "body": json.loads(r["body"])} for r in rows]

    def dispatch(self) -> dict[str, int]:
        """Queue new events, then send the due deliveries; read models must be fresh."""
        queued = self.enqueue()
        return {"queued": queued, **self.deliver()}

    # --- queueing ------------------------------------------------------------------

    def _upto(self) -> int:
        """The last seq every read model a body comes from has applied."""
        return min(position(self.ledger.db, name) for name in READ_MODELS)

    def enqueue(self) -> int:
        """Queue the certificate events of each webhook's school, up to the read models."""
        upto = self._upto()
        with self.ledger.db.read() as cur:
            cur.execute("SELECT id, school, after_seq FROM webhooks WHERE after_seq < ?", (upto,))
            hooks = cur.fetchall()
        return sum(
            self._enqueue_hook(hook_id, school, after, upto) for hook_id, school, after in hooks
        )

    def _enqueue_hook(self, hook_id: str, school: str, after: int, upto: int) -> int:
        """Queue one page at a time; a page another dispatcher queued first is left to it."""
        queued = 0
        while after < upto:
            found = self.ledger.recorder.envelopes(after, PAGE, stop=upto, types=tuple(KINDS))
            reached = found[-1].seq if len(found) == PAGE else upto
            bodies = [b for env in found if (b := self._body(env, hook_id, school))]
            now = clock.format_time(clock.now())
            with self.ledger.db.write(lock=None) as cur:
                cur.execute(
                    "UPDATE webhooks SET after_seq = ? WHERE id = ? AND after_seq = ?",
                    (reached, hook_id, after),
                )
                if cur.rowcount != 1:
                    return queued
                cur.executemany(
                    "INSERT INTO webhook_deliveries (webhook, seq, body, attempts,"
                    " next_attempt, status) VALUES (?, ?, ?, 0, ?, 'pending')",
                    [(hook_id, b["seq"], json.dumps(b), now) for b in bodies],
                )
            queued += len(bodies)
            after = reached
        return queued

    def _body(self, env: Any, hook_id: str, school: str) -> dict[str, Any] | None:
        """What the receiver is told, or None when the event is not about this school."""
        with self.ledger.db.read() as cur:
            cur.execute(
                "SELECT c.code, c.candidate, p.school FROM proj_certificates c JOIN"
                " proj_candidates p ON p.candidate = c.candidate WHERE c.certificate = ?",
                (env.stream,),
            )
            row = cur.fetchone()
        if row is None or row[2] != school:
            return None
        return _body(hook_id, env, row[0], row[1], school)

    # --- delivering ----------------------------------------------------------------

    def deliver(self) -> dict[str, int]:
        """Send the due deliveries this dispatcher claims, hosts in parallel.

        Each host's share first, then more to the hosts that answered all of it promptly.
        """
        until = time.monotonic() + ROUND_SECONDS
        shares = list(self._due().values())
        first = list(self._senders.map(self._deliver_all, [s[:PER_HOST] for s in shares]))
        more = [s[PER_HOST:] for s, (_, prompt) in zip(shares, first, strict=True) if prompt]
        rest = list(self._senders.map(lambda rows: self._deliver_all(rows, until), more))
        counts = {"delivered": 0, "failed": 0}
        for outcomes, _ in first + rest:
            for ok in outcomes:
                counts["delivered" if ok else "failed"] += 1
        return counts

    def _due(self) -> dict[str, list[tuple[Any, ...]]]:
        """The oldest due deliveries of each host (at most `BURST_PER_HOST`), by host.

        Rows come each host's oldest first, then each host's second…, so a round cut at
        `PAGE` rows still holds the first deliveries of `PAGE` hosts.
        """
        host = "COALESCE(NULLIF(w.host, ''), w.url)"  # a webhook from before migration 3: its URL
        with self.ledger.db.read() as cur:
            cur.execute(
                "SELECT webhook, seq, body, url, school, host FROM (SELECT d.webhook, d.seq,"
                f" d.body, w.url, w.school, {host} AS host, ROW_NUMBER() OVER (PARTITION BY"
                f" {host} ORDER BY d.seq) AS place FROM webhook_deliveries d JOIN webhooks w"
                " ON w.id = d.webhook WHERE d.status = 'pending' AND d.next_attempt <= ?) due"
                " WHERE place <= ? ORDER BY place, seq LIMIT ?",
                (clock.format_time(clock.now()), BURST_PER_HOST, PAGE),
            )
            due = cur.fetchall()
        by_host: dict[str, list[tuple[Any, ...]]] = {}
        for *row, target in due:
            by_host.setdefault(target, []).append(tuple(row))
        return by_host

    def _deliver_all(
        self, rows: list[tuple[Any, ...]], until: float | None = None
    ) -> tuple[list[bool], bool]:
        """One host's deliveries in order: the outcome of each sent, and whether all were prompt.

        With `until`, stop at the first answer that was not prompt, or at `until`.
        """
        outcomes: list[bool] = []
        prompt = True
        for hook_id, seq, stored, url, school in rows:
            if until is not None and (not prompt or time.monotonic() >= until):
                break
            moment, started = clock.now(), time.monotonic()  # the lease starts now
            if (claim := self.claim(hook_id, seq, moment)) is None:
                continue  # another dispatcher holds it
            ok = self._send(hook_id, seq, stored, url, school, moment, claim)
            if ok is not None:
                outcomes.append(ok)
            prompt = prompt and bool(ok) and time.monotonic() - started <= PROMPT_SECONDS
        return outcomes, prompt

    def claim(self, hook_id: str, seq: int, now: datetime) -> tuple[str, int] | None:
        """Take the delivery for a lease if it is due: (lease end, attempts so far), or None."""
        lease = clock.format_time(now + timedelta(seconds=LEASE_SECONDS))
        with self.ledger.db.write(lock=None) as cur:
            cur.execute(
                "UPDATE webhook_deliveries SET next_attempt = ? WHERE webhook = ? AND seq = ?"
                " AND status = 'pending' AND next_attempt <= ?",
                (lease, hook_id, seq, clock.format_time(now)),
            )
            if cur.rowcount != 1:
                return None
            cur.execute(
                "SELECT attempts FROM webhook_deliveries WHERE webhook = ? AND seq = ?",
                (hook_id, seq),
            )
            return lease, cur.fetchone()[0]

    def _send(
        self,
        hook_id: str,
        seq: int,
        stored: str,
        url: str,
        school: str,
        now: datetime,
        claim: tuple[str, int],
    ) -> bool | None:
        """POST the body the signed events give, signed for the exact URI it goes to.

        Whether it was accepted; None when it was not tried (every lookup thread busy).
        """
        try:
            body = self.signed_body(hook_id, seq, school)
            _same_as_stored(body, stored)
        except DeliveryUnsound as exc:
            self._unsound(hook_id, seq, claim, str(exc), now)
            return False
        raw = json.dumps(body).encode("utf-8")
        try:
            uri = normalise(url)
            headers = crypto.http_signature_headers(
                self.ledger.signing_key(), uri, raw, int(now.timestamp())
            )
            status, error = self._post(uri, raw, headers, school), ""
        except LookupBusy:
            self._release(hook_id, seq, claim, now)
            return None
        except TargetRefused as exc:
            status, error = 0, f"refused: {exc}"
        self._record(hook_id, seq, claim, status, error, now)
        return 200 <= status < 300

    # --- what the signed log says -----------------------------------------------------

    def signed_body(self, hook_id: str, seq: int, school: str) -> dict[str, Any]:
        """The body from the verified event at `seq`, its certificate and the pupil's school."""
        recorder, keys = self.ledger.recorder, trusted_keys(self.ledger)
        env = self._verified(recorder.envelope(seq), KINDS, seq, keys)
        issued = self._verified(
            env if env.type == ISSUED else recorder.first_envelope(env.stream), {ISSUED}, seq, keys
        )
        code, candidate = issued.data.get("code"), issued.data.get("candidate")
        if issued.stream != env.stream or str(certificate_id(str(code))) != env.stream:
            raise DeliveryUnsound(f"the certificate of the event at seq {seq} is not its own")
        first = recorder.first_envelope(str(candidate))
        registration = self._verified(first, {REGISTERED}, seq, keys)
        if registration.data.get("school") != school:
            raise DeliveryUnsound(f"the event at seq {seq} is not about a pupil of {school}")
        return _body(hook_id, env, str(code), str(candidate), school)

    def _verified(self, env: Envelope | None, types: Any, seq: int, keys: KeyHistory) -> Envelope:
        """`env` if it is of one of `types` and its hash, signature and chain link check."""
        if env is None or env.type not in types:
            raise DeliveryUnsound(f"the log holds no expected event for the delivery of seq {seq}")
        checked = check_envelope(self.ledger, env, keys)
        failed = failed_checks(checked)
        if failed:
            raise DeliveryUnsound(
                f"the event at seq {env.seq} does not verify ({', '.join(failed)})"
            )
        return env

    def _unsound(
        self, hook_id: str, seq: int, claim: tuple[str, int], problem: str, now: datetime
    ) -> None:
        """Not sent, never retried: the delivery fails with the reason, and the alarm rings."""
        log.error("webhooks: delivery %s/%s not sent: %s", hook_id, seq, problem)
        lease, attempts = claim
        with self.ledger.db.write(lock=None) as cur:
            cur.execute(
                "UPDATE webhook_deliveries SET status = 'failed', last_error = ?,"
                " next_attempt = ?, attempts = ? WHERE webhook = ? AND seq = ?"
                " AND next_attempt = ?",
                (f"integrity: {problem}", clock.format_time(now), attempts + 1, hook_id, seq,
                 lease),
            )  # fmt: skip
        if self.alarm:
            self.alarm({"source": "webhook", "problems": [f"delivery {hook_id}/{seq}: {problem}"]})

    def _release(self, hook_id: str, seq: int, claim: tuple[str, int], now: datetime) -> None:
        """Give the delivery back, due now and its attempts unchanged: the next round tries it."""
        with self.ledger.db.write(lock=None) as cur:
            cur.execute(
                "UPDATE webhook_deliveries SET next_attempt = ? WHERE webhook = ? AND seq = ?"
                " AND next_attempt = ?",
                (clock.format_time(now), hook_id, seq, claim[0]),
            )

    def _record(
        self, hook_id: str, seq: int, claim: tuple[str, int], status: int, error: str, now: datetime
    ) -> None:
        """The attempt's outcome, written only while this dispatcher still holds the lease."""
        lease, attempts = claim
        attempts += 1
        if 200 <= status < 300:
            values = ("delivered", None, clock.format_time(now), clock.format_time(now))
        else:
            gave_up = attempts >= MAX_ATTEMPTS
            wait = timedelta(seconds=BACKOFF_SECONDS[min(attempts, MAX_ATTEMPTS - 1) - 1])
            reason = error or (f"HTTP {status}" if status else "unreachable")
            values = ("failed" if gave_up else "pending", reason, None,
                      clock.format_time(now + wait))  # fmt: skip
        with self.ledger.db.write(lock=None) as cur:
            cur.execute(
                "UPDATE webhook_deliveries SET status = ?, last_error = ?, delivered = ?,"
                " next_attempt = ?, attempts = ? WHERE webhook = ? AND seq = ?"
                " AND next_attempt = ?",
                (*values, attempts, hook_id, seq, lease),
            )


def _body(hook_id: str, env: Envelope, code: str, candidate: str, school: str) -> dict[str, Any]:
    """What the receiver is told: the event, its hash in the log, and whose it is."""
    return {"delivery": f"{hook_id}/{env.seq}", "event": KINDS[env.type], "seq": env.seq,
            "hash": env.hash, "code": code, "candidate": candidate, "school": school}  # fmt: skip


def _same_as_stored(body: dict[str, Any], stored: str) -> None:
    """The queued body must say what the signed events say (it is shown in the log)."""
    try:
        queued = json.loads(stored)
    except ValueError:
        queued = None
    if not isinstance(queued, dict) or any(body.get(k) != v for k, v in queued.items()):
        raise DeliveryUnsound(
            f"the queued body of seq {body['seq']} differs from the signed events"
        )
