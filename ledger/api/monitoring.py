"""`/metrics`: Prometheus text for the monitoring system, not for the public.

Open to clients on this host (LEDGER_METRICS_ACCESS=loopback, the default)
only when no reverse proxy could be relaying them: LEDGER_PROXY_HOPS is 0 and
the request carries no forwarding header. Anyone else needs a token of scope
`metrics` (or admin), unless the setting says `open`.
"""

from __future__ import annotations

import ipaddress

from flask import Blueprint, Response, request

from ledger import metrics
from ledger.api.auth import authorize
from ledger.api.state import state
from ledger.domain import clock
from ledger.services.log_health import LogHealth, log_health

bp = Blueprint("monitoring", __name__)
FORWARDING = ("X-Forwarded-For", "Forwarded", "X-Real-Ip")


@bp.route("/metrics", methods=["GET"])
def scrape() -> Response:
    """Every worker's request and append metrics, and the log's lag, audit and checkpoint."""
    _check_access()
    body, content_type = metrics.exposition(_health)
    return Response(body, content_type=content_type)


def _health() -> LogHealth:
    st = state()
    return log_health(st.ledger, [p.name for p in st.projections], clock.now())


def _check_access() -> None:
    access = state().config.metrics_access
    if access == "open" or (access == "loopback" and _from_this_host()):
        return
    authorize("metrics")


def _from_this_host() -> bool:
    if state().config.proxy_hops or any(h in request.headers for h in FORWARDING):
        return False
    try:
        return ipaddress.ip_address(request.remote_addr or "").is_loopback
    except ValueError:  # a Unix socket peer has no address: not trusted
        return False
