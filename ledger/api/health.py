"""Liveness and readiness, kept apart.

`/api/v1/health` says the process answers; it never touches the database, so
an orchestrator does not restart healthy workers during a database outage.
`/api/v1/ready` says this process can serve correct answers now: the database
answers, the read models are caught up (or within LEDGER_READY_MAX_LAG_EVENTS
and _SECONDS of the log), the log verifies up to its last
checkpoint, a signed checkpoint covers recent events and is witnessed by the
quorum, and no integrity alarm was raised. Otherwise 503 with Retry-After.
"""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify
from flask_smorest import Blueprint

from ledger.api.problems import PROBLEM_JSON, RETRY_AFTER_S, problem
from ledger.api.state import state
from ledger.domain import clock
from ledger.projections.lag import lag_problems, lags, projection_lag
from ledger.projections.runner import head, stalls
from ledger.services.checkpoints import checkpoint_status
from ledger.store.db import StoreError, StoreUnavailable

blp = Blueprint("health", __name__, url_prefix="/api/v1", description="Liveness and readiness")

NOT_READY = {
    "description": "Not ready: the `checks` member says which check failed",
    "content": {PROBLEM_JSON: {"schema": {"type": "object"}}},
    "headers": {"Retry-After": {"schema": {"type": "integer"}}},
}


JSON_OBJECT = {"application/json": {"schema": {"type": "object"}}}


@blp.route("/health", methods=["GET"])
@blp.doc(responses={"200": {"description": "The process is up", "content": JSON_OBJECT}})
def health() -> Response:
    """Liveness: the process answers (no database access)."""
    return jsonify({"status": "ok"})


@blp.route("/ready", methods=["GET"])
@blp.doc(
    responses={"200": {"description": "Ready to serve", "content": JSON_OBJECT}, "503": NOT_READY}
)
def ready() -> Response:
    """Readiness: database reachable, projections caught up, log verified, no integrity alarm."""
    st = state()
    checks: dict[str, Any] = {}
    lag: dict[str, Any] | None = None
    try:
        latest = head(st.ledger.db)
        checks["database"] = {"ok": True, "kind": st.ledger.db.kind, "head": latest}
        checks["projections"] = _projections()
        lag = projection_lag(st.ledger.db, st.projections)
        verified = st.tail.advance()
        checks["checkpoint"] = {"ok": not st.tail.problem, **verified.to_dict()}
        if st.tail.problem:
            st.raise_alarm({"source": "log", "problems": [st.tail.problem]})
        checks["signed_checkpoint"] = _signed_checkpoint(latest)
    except StoreError as exc:
        checks.setdefault("database", {"ok": False, "kind": st.ledger.db.kind, "error": str(exc)})
    checks["integrity"] = {"ok": not st.integrity_alarms, "alarms": list(st.integrity_alarms)}
    failed = [name for name, check in checks.items() if not check.get("ok")]
    if failed:
        return problem(
            503,
            "not-ready",
            f"not ready: {', '.join(failed)}",
            {"Retry-After": str(RETRY_AFTER_S)},
            checks=checks,
            projection_lag=lag,
        )
    return jsonify({"status": "ready", "checks": checks, "projection_lag": lag})


def _signed_checkpoint(head_seq: int) -> dict[str, Any]:
    """The latest published checkpoint: recent enough for the log's head, and witnessed."""
    st = state()
    if st.checkpoints.store.latest() is None:
        st.checkpoints.tick()  # the first one is signed on demand, as /tlog/checkpoint does
    return checkpoint_status(st.ledger, head_seq, clock.now())


def _projections() -> dict[str, Any]:
    """Catch the read models up as any read would, then check how far behind they still are.

    A read model that cannot apply an event, or lags more than
    LEDGER_READY_MAX_LAG_EVENTS or _SECONDS behind the log, makes us not ready.
    """
    st = state()
    try:
        if st.config.projections == "inline":  # runner mode: the runner applies, never us
            st.fresh()
    except StoreUnavailable:
        raise
    except StoreError as exc:  # a read model that cannot apply an event
        return {"ok": False, "error": str(exc).splitlines()[0]}
    _, found = lags(st.ledger.db, [p.name for p in st.projections], clock.now())
    config = st.config
    problems = lag_problems(found, config.ready_max_lag_events, config.ready_max_lag_seconds)
    check: dict[str, Any] = {
        "ok": not problems,
        "lag": max((lag.events for lag in found.values()), default=0),
        "lag_seconds": round(max((lag.seconds for lag in found.values()), default=0.0), 3),
    }
    stalled = {
        name: {"seq": s["seq"], "error": s["error"]} for name, s in stalls(st.ledger.db).items()
    }
    if stalled:  # a read model stuck before an event it cannot apply serves stale answers
        check.update(ok=False, stalled=stalled)
    if problems:
        check["problems"] = problems
    return check
