"""C2SP tlog-tiles, read-only: checkpoint, tiles and entry bundles (LEDGER_FORMAT 1.3).

Static-style resources any tlog-tiles client can follow and any cache can
keep: a full tile or bundle never changes, a partial one is a prefix of what
the position will hold. Paths are parsed strictly; anything beyond the
integrated tree or malformed is a 404 problem, never a 500.
"""

from __future__ import annotations

import threading
import time

from flask import Response, current_app
from flask_smorest import Blueprint

from ledger.api.log import latest_note_response
from ledger.api.problems import ApiProblem, problem
from ledger.api.state import state
from ledger.audit.tiles import TileError, TilePath, parse_tile_path, tile_path, tile_range
from ledger.store.tiles import PAGE, TileStore

blp = Blueprint("tlog", __name__, url_prefix="/tlog", description="C2SP tlog-tiles (read-only)")

IMMUTABLE = "public, max-age=31536000, immutable"
PARTIAL = "public, max-age=300"  # same bytes for ever, but a log may drop it once full
ON_MISS_BATCH = 16_384  # events one request may integrate on a miss (one transaction)
ON_MISS_COOLDOWN_S = 1.0  # per process: a burst of misses integrates once
COOLDOWN = "ledger.tile_catch_up"
BINARY = {
    "200": {"description": "Tile or entry bundle", "content": {"application/octet-stream": {}}}
}


@blp.route("/checkpoint", methods=["GET"])
@blp.doc(
    responses={
        "200": {
            "description": "The latest checkpoint with its witness cosignatures",
            "content": {"text/plain": {}},
        }
    }
)
def checkpoint() -> Response:
    """tlog-tiles `<prefix>/checkpoint`: the same note as /api/v1/log/checkpoint."""
    return latest_note_response()


@blp.route("/tile/<path:path>", methods=["GET"])
@blp.doc(responses=BINARY)
def tile(path: str) -> Response:
    """`tile/<L>/<N>[.p/<W>]`: Merkle tree hashes; `tile/entries/<N>[.p/<W>]`: entries."""
    try:
        where = parse_tile_path(path)
    except TileError as exc:
        raise ApiProblem(404, "not-a-tile", str(exc)) from None
    store = TileStore(state().ledger.db, page=min(PAGE, ON_MISS_BATCH), batch=ON_MISS_BATCH)
    data = _read(store, where)
    if data is None:
        # Integration may lag the log a little: one bounded batch, if the log
        # holds the tile at all and no other miss just did; a longer backlog is
        # the checkpoint loop's.
        store.catch_up(batches=1, needed=_needed(where), allowed=_cooldown().claim)
        data = _read(store, where)
    if data is None:
        raise ApiProblem(
            404,
            "beyond-tree",
            f"tile/{tile_path(where.level, where.index, where.width)} is not in the tree",
        )
    response = Response(data, mimetype="application/octet-stream")
    response.headers["Cache-Control"] = PARTIAL if where.partial else IMMUTABLE
    return response


class Cooldown:
    """At most one on-miss integration per `seconds` in this process, whatever the burst."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self._next = 0.0
        self._lock = threading.Lock()

    def claim(self) -> bool:
        """True for the first caller of each period; it must do the work, the others skip it."""
        with self._lock:
            now = time.monotonic()
            if now < self._next:
                return False
            self._next = now + self.seconds
            return True


def _cooldown() -> Cooldown:
    """The app's cooldown (one per app, so test apps in one process do not share it)."""
    return current_app.extensions.setdefault(COOLDOWN, Cooldown(ON_MISS_COOLDOWN_S))


def _needed(where: TilePath) -> int:
    """Events the log must hold for the tile or bundle to exist."""
    return tile_range(where.level or 0, where.index, where.width)[1]


def _read(store: TileStore, where: TilePath) -> bytes | None:
    if where.level is None:
        return store.entry_bundle(where.index, where.width)
    return store.tile(where.level, where.index, where.width)


@blp.app_errorhandler(TileError)
def inconsistent(error: TileError) -> Response:
    """Stored tiles that contradict the tree or the log: the operator must look (503, not 500)."""
    return problem(503, "tiles-inconsistent", str(error))
