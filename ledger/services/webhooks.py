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
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Any, Protocol

from ledger import crypto
from ledger.domain import clock
from ledger.projections.runner import head, position
from ledger.services import webhook_targets
from ledger.services.webhook_targets import Resolver, TargetRefused, check, resolve
from ledger.store.application import Ledger

KINDS = {
    "certification.CertificateIssued": "publication",
    "certification.CertificateCancelled": "cancellation",
    "certification.CertificateRescored": "rescoring",
}
READ_MODELS = ("certificates", "profiles")  # what a delivery's body is read from
BACKOFF_SECONDS = (10, 60, 300, 1800, 7200)  # after the 1st, 2nd… failed attempt
MAX_ATTEMPTS = len(BACKOFF_SECONDS) + 1
LEASE_SECONDS = 60  # longer than any send (5 s timeouts), so a live sender keeps its claim
PAGE = 1000


class Poster(Protocol):
    def __call__(self, url: str, body: bytes, headers: dict[str, str]) -> int: ...


def post(
    url: str,
    body: bytes,
    headers: dict[str, str],
    allow_private: bool = False,
    resolver: Resolver = resolve,
) -> int:
    """Check the URL on the addresses it resolves to now, then POST there; 0 when unreachable."""
    target = check(url, allow_private, resolver)
    return webhook_targets.post(target, body, headers)


class Webhooks:
    def __init__(self, ledger: Ledger, poster: Poster | None = None, resolver: Resolver = resolve):
        self.ledger = ledger
        self.allow_private = ledger.config.webhook_allow_private
        self.resolver = resolver
        self.poster: Poster = poster or self._post

    def _post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        return post(url, body, headers, self.allow_private, self.resolver)

    def register(self, school: str, url: str) -> dict[str, Any]:
        """Events after the current head are delivered (not the school's past).

        A URL that is not https or reaches a non-public address raises `TargetRefused`.
        """
        check(url, self.allow_private, self.resolver)
        hook = {"id": str(uuid.uuid4()), "school": school, "url": url,
                "created": clock.format_time(clock.now()), "after_seq": head(self.ledger.db)}  # fmt: skip
        with self.ledger.db.write(lock=None) as cur:
            cur.execute(
                "INSERT INTO webhooks (id, school, url, created, after_seq) VALUES (?, ?, ?, ?, ?)",
                tuple(hook.values()),
            )
        return hook

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
        return {"delivery": f"{hook_id}/{env.seq}", "event": KINDS[env.type], "seq": env.seq,
                "code": row[0], "candidate": row[1], "school": school}  # fmt: skip

    # --- delivering ----------------------------------------------------------------

    def deliver(self) -> dict[str, int]:
        """Send each due delivery this dispatcher claims; failures wait longer each time."""
        now = clock.now()
        with self.ledger.db.read() as cur:
            cur.execute(
                "SELECT d.webhook, d.seq, d.body, w.url FROM webhook_deliveries d"
                " JOIN webhooks w ON w.id = d.webhook WHERE d.status = 'pending'"
                " AND d.next_attempt <= ? ORDER BY d.seq LIMIT ?",
                (clock.format_time(now), PAGE),
            )
            due = cur.fetchall()
        counts = {"delivered": 0, "failed": 0}
        for hook_id, seq, body, url in due:
            moment = clock.now()  # the lease starts now, however long earlier sends took
            if (claim := self.claim(hook_id, seq, moment)) is None:
                continue  # another dispatcher holds it
            ok = self._send(hook_id, seq, body.encode("utf-8"), url, moment, claim)
            counts["delivered" if ok else "failed"] += 1
        return counts

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
        self, hook_id: str, seq: int, body: bytes, url: str, now: datetime, claim: tuple[str, int]
    ) -> bool:
        key = self.ledger.signing_key()
        headers = crypto.http_signature_headers(key, url, body, int(now.timestamp()))
        try:
            status, error = self.poster(url, body, headers), ""
        except TargetRefused as exc:
            status, error = 0, f"refused: {exc}"
        self._record(hook_id, seq, claim, status, error, now)
        return 200 <= status < 300

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
