"""C2SP tlog-tiles, read-only: checkpoint, tiles and entry bundles (LEDGER_FORMAT 1.3).

Static-style resources any tlog-tiles client can follow and any cache can
keep: a full tile or bundle never changes, a partial one is a prefix of what
the position will hold. Paths are parsed strictly; anything beyond the
integrated tree or malformed is a 404 problem, never a 500.
"""

from __future__ import annotations

from flask import Response
from flask_smorest import Blueprint

from ledger.api.log import latest_note_response
from ledger.api.problems import ApiProblem, problem
from ledger.api.state import state
from ledger.audit.tiles import TileError, TilePath, parse_tile_path, tile_path
from ledger.store.tiles import TileStore

blp = Blueprint("tlog", __name__, url_prefix="/tlog", description="C2SP tlog-tiles (read-only)")

IMMUTABLE = "public, max-age=31536000, immutable"
PARTIAL = "public, max-age=300"  # same bytes for ever, but a log may drop it once full
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
    store = TileStore(state().ledger.db)
    data = _read(store, where)
    if data is None:
        store.catch_up()  # integration may lag the log a little
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


def _read(store: TileStore, where: TilePath) -> bytes | None:
    if where.level is None:
        return store.entry_bundle(where.index, where.width)
    return store.tile(where.level, where.index, where.width)


@blp.app_errorhandler(TileError)
def inconsistent(error: TileError) -> Response:
    """Stored tiles that contradict the tree or the log: the operator must look (503, not 500)."""
    return problem(503, "tiles-inconsistent", str(error))
