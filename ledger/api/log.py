"""Reading the log: the ndjson feed, the JWKS, checkpoints and Merkle proofs (format 3, 5, 6)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint as FlaskBlueprint
from flask import Response, jsonify
from flask_smorest import Blueprint

from ledger import crypto
from ledger.api import schemas
from ledger.api.auth import require
from ledger.api.limits import lookups
from ledger.api.openapi import json_doc
from ledger.api.problems import ApiProblem
from ledger.api.state import state
from ledger.audit.export import jwks
from ledger.audit.log_tree import LogTree
from ledger.lru import LRU
from ledger.services.checkpoints import cosigned_note, latest_note
from ledger.store.checkpoints import StoredCheckpoint

blp = Blueprint(
    "log", __name__, url_prefix="/api/v1", description="Audit: events, checkpoints, proofs"
)
well_known = FlaskBlueprint("well_known", __name__)
NOTE_TYPE = "text/plain; charset=utf-8"
CHECKPOINT_CACHE = "public, max-age=5"  # tlog-tiles: a short lifetime, clients poll it
# Listed checkpoints with their verified cosignatures. Keyed by the note, the
# stored lines and the witness setting: a stored note never changes, so only a
# new cosignature or another witness list verifies again.
LISTED: LRU[dict[str, Any]] = LRU(1024)


def shared_tree() -> LogTree:
    """The process's one tree, shared with the checkpoint signer."""
    return state().checkpoints.tree


@blp.route("/events", methods=["GET"])
@require("audit:read")
@blp.arguments(schemas.EventsQuery, location="query")
@blp.doc(
    security=[{"bearer": []}],
    responses={
        "200": {
            "description": "Envelopes, one JSON object per line",
            "content": {"application/x-ndjson": {}},
        }
    },
)
def events(query: dict[str, int]) -> Response:
    """Envelopes with seq > after, ascending, at most `limit`, as ndjson."""
    found = state().ledger.recorder.envelopes(after=query["after"], limit=query["limit"])
    body = "".join(e.to_json_line() + "\n" for e in found)
    response = Response(body, mimetype="application/x-ndjson")
    if found:
        response.headers["Ledger-Last-Seq"] = str(found[-1].seq)
    return response


@well_known.route("/.well-known/jwks.json")
def jwks_json() -> Response:
    response = jsonify(jwks(state().ledger))
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


def latest_note_response() -> Response:
    """The latest stored checkpoint with its witness cosignatures; the first is signed now."""
    st = state()
    if st.checkpoints.store.latest() is None:
        st.checkpoints.tick()
    response = Response(latest_note(st.ledger), content_type=NOTE_TYPE)
    response.headers["Cache-Control"] = CHECKPOINT_CACHE
    return response


@blp.route("/log/checkpoint", methods=["GET"])
@blp.doc(
    responses={
        "200": {
            "description": "C2SP signed checkpoint with the witnesses' cosignature lines",
            "content": {"text/plain": {}},
        }
    }
)
def checkpoint() -> Response:
    """The latest stored checkpoint (C2SP tlog-checkpoint in a signed note), cosigned."""
    return latest_note_response()


@blp.route("/log/checkpoints", methods=["GET"])
@lookups
@blp.arguments(schemas.CheckpointsQuery, location="query")
@blp.doc(**json_doc(200, "Stored checkpoints: size, root, created_at, note, cosigners"))
def checkpoints(query: dict[str, int]) -> dict[str, Any]:
    """Every checkpoint the log signed, kept for ever: size > `after`, ascending, at most `limit`."""
    st = state()
    found = st.checkpoints.store.after(query.get("after", -1), query["limit"])
    return {"checkpoints": [_listed(cp) for cp in found]}


def _listed(cp: StoredCheckpoint) -> dict[str, Any]:
    """One listed checkpoint; its cosignatures are verified once per process (LISTED)."""
    st = state()
    lines = tuple(c.line for c in st.checkpoints.store.cosignatures(cp.size))
    key = (cp.note, lines, st.ledger.config.witnesses)
    found = LISTED.get(key)
    if found is None:
        note, cosigners = cosigned_note(st.ledger, cp)
        found = LISTED[key] = {
            "size": cp.size,
            "root": crypto.b64(cp.root),
            "created_at": cp.created_at,
            "note": note,
            "cosigners": cosigners,
        }
    return found


def _check_size(size: int) -> None:
    current = shared_tree().refresh()
    if size > current:
        raise ApiProblem(422, "beyond-tree", f"the log has {current} events, not {size}")


@blp.route("/log/proof/inclusion", methods=["GET"])
@blp.arguments(schemas.InclusionQuery, location="query")
@blp.doc(**json_doc(200, "Inclusion proof: leaf_index, tree_size, base64 hashes"))
def inclusion(query: dict[str, int]) -> dict[str, Any]:
    """RFC 9162 inclusion proof of event `seq` in the tree of `size` events."""
    seq, size = query["seq"], query["size"]
    _check_size(size)
    if seq > size:
        raise ApiProblem(422, "beyond-tree", f"seq {seq} is not in a tree of {size} events")
    hashes = shared_tree().inclusion(seq, size)
    return {"leaf_index": seq - 1, "tree_size": size, "hashes": [crypto.b64(h) for h in hashes]}


@blp.route("/log/proof/consistency", methods=["GET"])
@blp.arguments(schemas.ConsistencyQuery, location="query")
@blp.doc(**json_doc(200, "Consistency proof: from, to, base64 hashes"))
def consistency(query: dict[str, int]) -> dict[str, Any]:
    """RFC 9162 consistency proof between the trees of `from` and `to` events."""
    old, new = query["from_"], query["to"]
    _check_size(new)
    if old > new:
        raise ApiProblem(422, "bad-range", "`from` must not be larger than `to`")
    hashes = shared_tree().consistency(old, new)
    return {"from": old, "to": new, "hashes": [crypto.b64(h) for h in hashes]}
