"""Webhooks: a school is told of each publication, cancellation and rescoring of its pupils.

A delivery is queued once per (webhook, event seq), so a receiver gets each event
once even if the queue is scanned again; it is POSTed with an RFC 9421 HTTP
Message Signature (Ed25519, the ledger's current key, `keyid` = JWKS kid) and
retried with growing delays until it is accepted or given up. The school reads
the delivery log. The body names the event; the signed results are then read
from the school's endpoint.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from ledger import crypto
from ledger.domain import clock
from ledger.projections.runner import head
from ledger.store.application import Ledger

KINDS = {
    "certification.CertificateIssued": "publication",
    "certification.CertificateCancelled": "cancellation",
    "certification.CertificateRescored": "rescoring",
}
BACKOFF_SECONDS = (10, 60, 300, 1800, 7200)  # after the 1st, 2nd… failed attempt
MAX_ATTEMPTS = len(BACKOFF_SECONDS) + 1
TIMEOUT_SECONDS = 5
PAGE = 1000
Poster = Callable[[str, bytes, dict[str, str]], int]


def post(url: str, body: bytes, headers: dict[str, str]) -> int:
    """POST and return the status; a network error counts as status 0 (retried)."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, ValueError):
        return 0


class Webhooks:
    def __init__(self, ledger: Ledger, poster: Poster = post):
        self.ledger = ledger
        self.poster = poster

    def register(self, school: str, url: str) -> dict[str, Any]:
        """Events after the current head are delivered (not the school's past)."""
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

    # --- queueing ------------------------------------------------------------------

    def enqueue(self) -> int:
        """Queue the certificate events of each webhook's school; read models must be fresh."""
        queued = 0
        with self.ledger.db.read() as cur:
            cur.execute("SELECT id, school, after_seq FROM webhooks")
            hooks = cur.fetchall()
        for hook_id, school, after in hooks:
            queued += self._enqueue_hook(hook_id, school, after)
        return queued

    def _enqueue_hook(self, hook_id: str, school: str, after: int) -> int:
        queued = 0
        while found := self.ledger.recorder.envelopes(after=after, limit=PAGE):
            bodies = [b for env in found if (b := self._body(env, school))]
            now = clock.format_time(clock.now())
            with self.ledger.db.write(lock=None) as cur:
                for body in bodies:
                    cur.execute(
                        "INSERT INTO webhook_deliveries (webhook, seq, body, attempts,"
                        " next_attempt, status) VALUES (?, ?, ?, 0, ?, 'pending')",
                        (hook_id, body["seq"], json.dumps(body), now),
                    )
                after = found[-1].seq
                cur.execute("UPDATE webhooks SET after_seq = ? WHERE id = ?", (after, hook_id))
            queued += len(bodies)
        return queued

    def _body(self, env: Any, school: str) -> dict[str, Any] | None:
        """What the receiver is told, or None when the event is not about this school."""
        if env.type not in KINDS:
            return None
        with self.ledger.db.read() as cur:
            cur.execute(
                "SELECT c.code, c.candidate, p.school FROM proj_certificates c JOIN"
                " proj_candidates p ON p.candidate = c.candidate WHERE c.certificate = ?",
                (env.stream,),
            )
            row = cur.fetchone()
        if row is None or row[2] != school:
            return None
        return {"event": KINDS[env.type], "seq": env.seq, "code": row[0], "candidate": row[1],
                "school": school}  # fmt: skip

    # --- delivering ----------------------------------------------------------------

    def deliver(self) -> dict[str, int]:
        """Send every due delivery once; failures wait longer each time."""
        now = clock.now()
        with self.ledger.db.read() as cur:
            cur.execute(
                "SELECT d.webhook, d.seq, d.body, d.attempts, w.url FROM webhook_deliveries d"
                " JOIN webhooks w ON w.id = d.webhook WHERE d.status = 'pending'"
                " AND d.next_attempt <= ? ORDER BY d.seq",
                (clock.format_time(now),),
            )
            due = cur.fetchall()
        counts = {"delivered": 0, "failed": 0}
        for hook_id, seq, body, attempts, url in due:
            ok = self._send(hook_id, seq, body.encode("utf-8"), attempts, url, now)
            counts["delivered" if ok else "failed"] += 1
        return counts

    def _send(
        self, hook_id: str, seq: int, body: bytes, attempts: int, url: str, now: datetime
    ) -> bool:
        key = self.ledger.signing_key()
        headers = crypto.http_signature_headers(key, url, body, int(now.timestamp()))
        status = self.poster(url, body, headers)
        ok = 200 <= status < 300
        attempts += 1
        if ok:
            values = ("delivered", None, clock.format_time(now), clock.format_time(now))
        else:
            gave_up = attempts >= MAX_ATTEMPTS
            wait = timedelta(seconds=BACKOFF_SECONDS[min(attempts, MAX_ATTEMPTS - 1) - 1])
            values = ("failed" if gave_up else "pending", f"HTTP {status}" if status else
                      "unreachable", None, clock.format_time(now + wait))  # fmt: skip
        with self.ledger.db.write(lock=None) as cur:
            cur.execute(
                "UPDATE webhook_deliveries SET status = ?, last_error = ?, delivered = ?,"
                " next_attempt = ?, attempts = ? WHERE webhook = ? AND seq = ?",
                (*values, attempts, hook_id, seq),
            )
        return ok
