"""A minimal C2SP tlog-witness, written from the specification, for testing the log's client.

It serves `POST /add-checkpoint` on a free local port, keeps the latest cosigned
(size, root) of one log in memory, and answers exactly as tlog-witness says:
403 for a note the log did not sign, 400 for a bad body or old > size, 409
text/x.tlog.size when `old` is not its size (or the roots differ at equal size),
422 for a consistency proof that does not verify, 200 with a cosignature line.
`delay` makes it slow (timeouts); `state` can be set to what another tree told it;
`before` runs at the start of the next request (to interleave another process).
`drip_witness` is a hostile one that answers a byte at a time, for ever.
"""

from __future__ import annotations

import base64
import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ledger.audit.checkpoint import CheckpointError, verify_checkpoint
from ledger.audit.cosignature import VerifierKey, cosign, witness_vkey
from ledger.audit.merkle import verify_consistency
from ledger.crypto import SigningKey


@dataclass
class SpecWitness:
    name: str
    origin: str
    log_key: bytes
    key: SigningKey = field(default_factory=SigningKey.generate)
    state: tuple[int, bytes] | None = None  # (size, root) last cosigned
    delay: float = 0.0
    requests: list[bytes] = field(default_factory=list)
    url: str = ""
    before: Callable[[], None] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def vkey(self) -> VerifierKey:
        return witness_vkey(self.name, self.key)

    def config_entry(self) -> str:
        return f"{self.vkey} {self.url}"

    def add_checkpoint(self, body: bytes) -> tuple[int, str, bytes]:
        """(status, content type, body) for one request, atomically."""
        self.requests.append(body)
        before, self.before = self.before, None
        if before is not None:
            before()
        time.sleep(self.delay)
        try:
            old, proof, note = _parse(body)
        except ValueError as exc:
            return 400, "text/plain", str(exc).encode()
        try:
            cp = verify_checkpoint(note, self.origin, [self.log_key])
        except CheckpointError:
            return 403, "text/plain", b"not signed by the log\n"
        if old > cp.size:
            return 400, "text/plain", b"old size is larger than the checkpoint\n"
        with self._lock:
            size, root = self.state or (0, b"")
            if old != size:
                return 409, "text/x.tlog.size", b"%d\n" % size
            if old == cp.size and root != cp.root:
                return 409, "text/x.tlog.size", b"%d\n" % size
            if old == 0 and proof:
                return 400, "text/plain", b"the proof from 0 is empty\n"
            if old and not verify_consistency(old, cp.size, root, cp.root, proof):
                return 422, "text/plain", b"consistency proof does not verify\n"
            self.state = (cp.size, cp.root)
            line = cosign(cp.body(), self.name, self.key, int(time.time()))
            return 200, "text/plain; charset=utf-8", line.encode()


def _parse(body: bytes) -> tuple[int, list[bytes], str]:
    text = body.decode()
    head, sep, note = text.partition("\n\n")
    if not sep:
        raise ValueError("no blank line")
    lines = head.split("\n")
    if not lines[0].startswith("old ") or len(lines) > 64:
        raise ValueError("no old size line")
    old = int(lines[0][4:])
    if str(old) != lines[0][4:]:
        raise ValueError("old size not canonical")
    proof = [base64.b64decode(line, validate=True) for line in lines[1:]]
    return old, proof, note


class _Handler(BaseHTTPRequestHandler):
    witness: SpecWitness

    def do_POST(self) -> None:
        if self.path != "/add-checkpoint":
            self._answer(404, "text/plain", b"not found\n")
            return
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self._answer(*self.witness.add_checkpoint(body))

    def _answer(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(OSError):  # the client gave up (timeout tests)
            self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def spec_witness(name: str, origin: str, log_key: bytes) -> Iterator[SpecWitness]:
    """A running witness on 127.0.0.1; stopped on leaving."""
    witness = SpecWitness(name, origin, log_key)
    handler = type("Handler", (_Handler,), {"witness": witness})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    witness.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield witness
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def drip_witness(interval: float = 0.1) -> Iterator[str]:
    """The URL of a witness that sends a 200 header, then one body byte every `interval`.

    Each read gets a byte long before any socket timeout: only an overall deadline stops it.
    """
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n")
            conn.sendall(b"Content-Length: 65536\r\n\r\n")
            while not stop.wait(interval):
                conn.sendall(b"x")

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = server.accept()
                threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        with contextlib.suppress(OSError):
            server.shutdown(socket.SHUT_RDWR)  # wakes the accept
        server.close()
