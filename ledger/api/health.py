"""Liveness and readiness, kept apart.

`/api/v1/health` says the process answers; it never touches the database, so
an orchestrator does not restart healthy workers during a database outage.
`/api/v1/ready` says this process can serve correct answers now: the database
answers, the read models are caught up, the log verifies up to its last
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
from ledger.projections.lag import projection_lag
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
        checks["projections"] = _projections(latest)
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


def _projections(latest: int) -> dict[str, Any]:
    """Read models fresh enough to serve: caught up inline, or the runner within the bound."""
    st = state()
    if st.config.projections == "runner":
        return _runner_projections(projection_lag(st.ledger.db, st.projections))
    try:
        st.fresh()
    except StoreUnavailable:
        raise
    except StoreError as exc:  # a read model that cannot apply an event
        return {"ok": False, "error": str(exc).splitlines()[0]}
    with st.ledger.db.read() as cur:
        cur.execute("SELECT name, position FROM projection_positions")
        positions = dict(cur.fetchall())
    lag = max((latest - positions.get(p.name, 0) for p in st.projections), default=0)
    stalled = {
        name: {"seq": s["seq"], "error": s["error"]} for name, s in stalls(st.ledger.db).items()
    }
    if stalled:  # a read model stuck before an event it cannot apply serves stale answers
        return {"ok": False, "lag": max(lag, 0), "stalled": stalled}
    return {"ok": True, "lag": max(lag, 0)}


def _runner_projections(lag: dict[str, Any]) -> dict[str, Any]:
    """Not ready when a read model is stalled or older than reads may wait for."""
    bound_s = state().config.read_max_wait_ms / 1000
    ok = not lag["stalled"] and (lag["events"] == 0 or lag["seconds"] <= bound_s)
    return {"ok": ok, "lag": lag["events"], "lag_seconds": lag["seconds"], "mode": "runner"}
