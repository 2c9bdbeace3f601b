"""The log's side of C2SP tlog-witness: push a checkpoint, get a cosignature back.

One `push` is at most two bounded requests: the old size we last saw the witness
cosign, and on a 409 one retry from the size the witness says it holds. Each
request has an overall deadline (connect, send, headers and body together): a
socket timeout alone bounds one read, so a witness dripping a byte at a time
could otherwise hold a push for hours. A witness that rejects our own
consistency proof, or holds another tree of the size we sent, has been shown
another tree: that is an alarm, not a network hiccup. A witness that holds a
larger tree than the one pushed is `ahead`: the caller decides whether that is a
checkpoint we signed (another process pushed it first) or one we never did.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field

from ledger.audit.checkpoint import CheckpointError
from ledger.audit.checkpoints import (
    MAX_RESPONSE_BYTES,
    Witness,
    WitnessProtocolError,
    add_checkpoint_body,
    parse_cosignature_lines,
    parse_tlog_size,
)
from ledger.audit.cosignature import verified_cosigners, with_cosignatures
from ledger.store.checkpoints import Cosignature

log = logging.getLogger(__name__)
TIMEOUT_S = 2.0  # connect, and each single read
DEADLINE_S = 5.0  # one whole request, however the witness paces its answer
CHUNK_BYTES = 4096
SIZE_TYPE = "text/x.tlog.size"

ProofFrom = Callable[[int], list[bytes]]
"""The consistency proof from an old size to the pushed checkpoint's size."""


@dataclass
class PushOutcome:
    """`cosignature` when the witness cosigned; `alarm` when it saw another tree;
    `ahead` when it holds a larger tree than the one pushed (`witness_size`)."""

    witness: str
    cosignature: Cosignature | None = None
    error: str = ""
    alarm: bool = False
    ahead: bool = False
    witness_size: int | None = field(default=None)


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: bytes


def post(url: str, body: bytes, deadline_s: float | None = None) -> Answer:
    """POST and read a bounded answer within `deadline_s` (DEADLINE_S) in all.

    OSError (TimeoutError past the deadline) when the witness cannot be reached or
    does not answer in time. A timer shuts the socket down at the deadline, so no
    wait inside http.client (headers read line by line) can outlive it.
    """
    deadline_s = DEADLINE_S if deadline_s is None else deadline_s
    deadline = time.monotonic() + deadline_s
    conn, path = _connection(url, min(TIMEOUT_S, deadline_s))
    watchdog = threading.Timer(deadline_s, _abort, (conn,))
    watchdog.daemon = True
    watchdog.start()
    try:
        conn.request("POST", path, body, {"Content-Type": "text/plain; charset=utf-8"})
        response = conn.getresponse()
        data = _read(response, deadline)
        return Answer(response.status, response.headers.get_content_type(), data)
    except (OSError, http.client.HTTPException) as exc:
        if time.monotonic() >= deadline:
            raise TimeoutError(f"no complete answer within {deadline_s:g} s") from exc
        if isinstance(exc, OSError):
            raise
        raise WitnessProtocolError(f"bad HTTP answer: {type(exc).__name__}") from exc
    finally:
        watchdog.cancel()
        conn.close()


def _connection(url: str, timeout: float) -> tuple[http.client.HTTPConnection, str]:
    parts = urllib.parse.urlsplit(url)
    kinds = {"http": http.client.HTTPConnection, "https": http.client.HTTPSConnection}
    if parts.scheme not in kinds or not parts.hostname:
        raise WitnessProtocolError(f"not an http(s) witness URL: {url}")
    path = parts.path or "/"
    return kinds[parts.scheme](parts.hostname, parts.port, timeout=timeout), path


def _abort(conn: http.client.HTTPConnection) -> None:
    """Wake any read blocked on `conn` (the deadline passed)."""
    sock = conn.sock
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _read(response: http.client.HTTPResponse, deadline: float) -> bytes:
    """The body in chunks, at most MAX_RESPONSE_BYTES, given up past `deadline`."""
    data = bytearray()
    while chunk := response.read1(CHUNK_BYTES):
        data += chunk
        if len(data) > MAX_RESPONSE_BYTES:
            raise WitnessProtocolError("the witness answer is too large")
        if time.monotonic() >= deadline:
            raise TimeoutError("the answer did not arrive by the deadline")
    if time.monotonic() >= deadline:  # the watchdog shut the socket: not a real end
        raise TimeoutError("the answer did not arrive by the deadline")
    if response.length:  # bytes still due by Content-Length
        raise WitnessProtocolError("the witness answer was cut short")
    return bytes(data)


def push(witness: Witness, note: str, size: int, old: int, proof_from: ProofFrom) -> PushOutcome:
    """Ask `witness` to cosign `note` (tree `size`), from the `old` size it last cosigned."""
    outcome = PushOutcome(witness.name)
    try:
        answer = _add(witness, note, old, proof_from)
        if answer.status == 409:
            held = _conflict_size(answer)
            outcome.witness_size = held
            if held > size:
                return _ahead(outcome, held, size)
            if held < old:
                _lost_state(witness.name, held, old)
            if held == old:  # same size as we sent, so a different root: a fork
                return _alarm(outcome, f"holds another tree of {held} events than ours")
            answer = _add(witness, note, held, proof_from)
            if answer.status == 409:
                again = _conflict_size(answer)
                if again > size:  # it moved on while we retried
                    outcome.witness_size = again
                    return _ahead(outcome, again, size)
                if again == held:
                    return _alarm(outcome, "holds another tree than ours")
        return _finish(outcome, witness, note, answer)
    except (OSError, WitnessProtocolError, CheckpointError) as exc:
        outcome.error = str(exc) or type(exc).__name__
        return outcome


def _add(witness: Witness, note: str, old: int, proof_from: ProofFrom) -> Answer:
    proof = proof_from(old) if old else []
    return post(f"{witness.url}/add-checkpoint", add_checkpoint_body(old, proof, note))


def _ahead(outcome: PushOutcome, held: int, size: int) -> PushOutcome:
    """Not judged here: only the store knows whether we signed a tree of `held` events."""
    outcome.ahead = True
    outcome.error = f"witness {outcome.witness} holds a tree of {held} events, larger than {size}"
    return outcome


def _lost_state(witness: str, held: int, cosigned: int) -> None:
    """A witness never forgets a tree it cosigned: it lost or rolled back its state."""
    log.warning(
        "witness %s holds a tree of %d events, less than the %d it cosigned for us:"
        " it lost or rolled back its state; pushing from its size again",
        witness,
        held,
        cosigned,
    )


def _conflict_size(answer: Answer) -> int:
    if answer.content_type != SIZE_TYPE:
        raise WitnessProtocolError(f"a 409 answer is {SIZE_TYPE}, not {answer.content_type}")
    return parse_tlog_size(answer.body)


def _finish(outcome: PushOutcome, witness: Witness, note: str, answer: Answer) -> PushOutcome:
    if answer.status == 422:
        return _alarm(outcome, "rejected our consistency proof: it holds another tree")
    if answer.status != 200:
        outcome.error = f"answered HTTP {answer.status}"
        return outcome
    for line in parse_cosignature_lines(answer.body):
        found = verified_cosigners(with_cosignatures(note, [line]), [witness.vkey])
        if witness.name in found:
            outcome.cosignature = Cosignature(witness.name, line, found[witness.name])
            return outcome
    outcome.error = "answered without a cosignature by its key"
    return outcome


def _alarm(outcome: PushOutcome, what: str) -> PushOutcome:
    outcome.alarm = True
    outcome.error = f"witness {outcome.witness} {what}"
    return outcome
