"""The log's health as monitoring sees it: head, read-model lag, last audit, last checkpoint.

Read at scrape time from the database, so every worker (and node) reports the
same figures whichever one answers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from ledger.domain import clock
from ledger.projections.lag import Lag, lags
from ledger.store import audit_runs
from ledger.store.application import Ledger
from ledger.store.audit_runs import AuditRun
from ledger.store.checkpoints import CheckpointStore


@dataclass(frozen=True)
class LogHealth:
    head: int
    lags: dict[str, Lag]
    last_audit: AuditRun | None
    checkpoint_size: int | None
    checkpoint_age_s: float | None


def log_health(ledger: Ledger, projections: Iterable[str], now: datetime) -> LogHealth:
    latest, found = lags(ledger.db, projections, now)
    checkpoint = CheckpointStore(ledger.db).latest()
    age = (now - clock.parse_time(checkpoint.created_at)).total_seconds() if checkpoint else None
    return LogHealth(
        head=latest,
        lags=found,
        last_audit=audit_runs.latest(ledger.db),
        checkpoint_size=checkpoint.size if checkpoint else None,
        checkpoint_age_s=max(age, 0.0) if age is not None else None,
    )
