"""What one API process holds: the ledger, services, projections and token store."""

from __future__ import annotations

from dataclasses import dataclass, field

from flask import current_app, has_request_context, request

from ledger.api.problems import ApiProblem
from ledger.attestation.service import Attestations
from ledger.audit.tail import TailVerifier
from ledger.config import Config
from ledger.domain import clock
from ledger.domain.referential import Referential, load_referential
from ledger.projections import all_projections
from ledger.projections.lag import wait_for
from ledger.projections.runner import Projection, catch_up, head
from ledger.services.candidates import CandidateService
from ledger.services.certification import CertificationService
from ledger.services.checkpoints import Checkpointer
from ledger.services.credentials import CredentialIssuer
from ledger.services.institutions import InstitutionService
from ledger.services.verification import PublicViews
from ledger.services.webhooks import Webhooks
from ledger.store.application import Ledger
from ledger.store.tokens import TokenStore

MAX_ALARMS = 100
MIN_SEQ_HEADER = "X-Min-Seq"
MAX_SEQ_DIGITS = 18
HEAD = 2**63 - 1  # "the head": fresh() takes the smaller of this and the log's head


@dataclass
class ApiState:
    config: Config
    ledger: Ledger
    referential: Referential
    projections: list[Projection]
    tokens: TokenStore
    candidates: CandidateService
    certification: CertificationService
    views: PublicViews = field(init=False)
    tail: TailVerifier = field(init=False)
    attestations: Attestations = field(init=False)
    credentials: CredentialIssuer = field(init=False)
    checkpoints: Checkpointer = field(init=False)
    institutions: InstitutionService = field(init=False)
    webhooks: Webhooks = field(init=False)
    # Integrity failures seen while serving (e.g. a read model that disagrees with
    # its verified events): any entry makes /api/v1/ready answer 503.
    integrity_alarms: list[dict[str, object]] = field(default_factory=list, init=False)
    _caught_up_to: int = field(default=-1, init=False)

    def __post_init__(self) -> None:
        self.views = PublicViews(self)
        self.tail = TailVerifier(self.ledger)
        self.attestations = Attestations(self.ledger, self.referential, self.tail)
        self.credentials = CredentialIssuer(self.ledger, self.config.public_url)
        self.checkpoints = Checkpointer(self.ledger, alarm=self.raise_alarm)
        self.institutions = InstitutionService(
            self.ledger, self.referential, self.tail, alarm=self.raise_alarm, fresh=self.fresh
        )
        self.webhooks = Webhooks(self.ledger, alarm=self.raise_alarm)

    def raise_alarm(self, alarm: dict[str, object]) -> None:
        """Record an integrity failure once (bounded); /api/v1/ready reports it until restart."""
        known = [{k: v for k, v in a.items() if k != "detected_at"} for a in self.integrity_alarms]
        if len(self.integrity_alarms) < MAX_ALARMS and alarm not in known:
            self.integrity_alarms.append({**alarm, "detected_at": clock.format_time(clock.now())})

    @classmethod
    def open(cls, config: Config) -> ApiState:
        ledger = Ledger.open_existing(config)
        try:
            ledger.check_trust()
        except BaseException:
            ledger.close()
            raise
        referential = load_referential()
        return cls(
            config=config,
            ledger=ledger,
            referential=referential,
            projections=all_projections(config, referential),
            tokens=TokenStore(ledger.db, config.token_cache_s),
            candidates=CandidateService(ledger, referential),
            certification=CertificationService(ledger, referential, config),
        )

    def fresh(self, min_seq: int | None = None) -> int:
        """Have read models up to the log before answering a read; return the log's head.

        One cheap query (the head) per read; the projections are only touched when
        the log moved since this process last caught up. Inline mode applies the
        new events here; runner mode waits (bounded) for the runner to reach the
        head, or only `min_seq` (default: the request's `X-Min-Seq`) when given.
        """
        requested = _requested_seq() if min_seq is None else min_seq  # checked in either mode
        latest = head(self.ledger.db)
        if self.config.projections == "runner":
            self._await(min(latest, requested))
        elif latest != self._caught_up_to and not catch_up(
            self.ledger.db, self.projections, latest=latest
        ):
            self._caught_up_to = latest  # a stalled projection is retried on later reads
        return latest

    def fresh_for_log_reads(self) -> int:
        """`fresh()` for a read that takes its facts from the log's events, not the read models.

        Runner mode waits only for a seq the client asked for (`X-Min-Seq`): waiting for
        the head would make every such read wait for the runner's next page under writes.
        """
        requested = _requested_seq()
        return self.fresh(min_seq=0 if requested == HEAD else requested)

    def asks_beyond(self, seq: int) -> bool:
        """True when the request's `X-Min-Seq` names an event after `seq` (a cached head)."""
        requested = _requested_seq()
        return requested != HEAD and requested > seq

    def _await(self, seq: int) -> None:
        """Wait for the runner to apply `seq`; ProjectionsBehind (503) past the bound."""
        if seq > self._caught_up_to:
            wait_s = self.config.read_max_wait_ms / 1000
            reached = wait_for(self.ledger.db, self.projections, seq, wait_s)
            self._caught_up_to = max(self._caught_up_to, reached)

    def dispatch_webhooks(self) -> dict[str, int]:
        """Queue new certificate events for each webhook and send the due deliveries."""
        self.fresh()
        return self.webhooks.dispatch()


def _requested_seq() -> int:
    """The seq a client asked its read to reflect (`X-Min-Seq` or `?min_seq=`); else any.

    Absent means the head when the request began (the caller's bound).
    """
    raw = None
    if has_request_context():
        raw = request.headers.get(MIN_SEQ_HEADER)
        if raw is None:
            raw = request.args.get("min_seq")
    if raw is None:
        return HEAD
    if not raw.isascii() or not raw.isdigit() or len(raw) > MAX_SEQ_DIGITS:
        raise ApiProblem(400, "malformed-request", f"{MIN_SEQ_HEADER} must be a seq (digits)")
    return int(raw)


def state() -> ApiState:
    return current_app.extensions["ledger"]


def appended(seq: int) -> dict[str, object]:
    """What a write returns: the event's seq and hash, to check against the log later."""
    return {"seq": seq, "hash": state().ledger.recorder.hash_of(seq)}
