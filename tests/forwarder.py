"""A TCP forwarder to put in front of the real PostgreSQL and break on demand.

`cut()` drops every connection and refuses new ones (the server is gone);
`blackhole()` drops every connection and accepts new ones without ever
answering (a host that vanished from the network); `restore()` forwards again
on the same port. Nothing about the database is mocked: only the wire breaks.
"""

from __future__ import annotations

import socket
import threading
from contextlib import suppress


class Forwarder:
    def __init__(self, upstream: tuple[str, int]):
        self.upstream = upstream
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._forwarding = True
        self.port = 0
        self.restore()

    def restore(self) -> None:
        self._drop()
        self._forwarding = True
        if self._listener is None:
            self._listen()

    def cut(self) -> None:
        self._forwarding = False
        listener, self._listener = self._listener, None
        if listener is not None:
            with suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)  # stop listening now, wake accept()
            listener.close()
        self._drop()

    def blackhole(self) -> None:
        self._forwarding = False
        self._drop()
        if self._listener is None:
            self._listen()

    def close(self) -> None:
        self.cut()

    def _listen(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # listener closed by cut()
            self._track(client)
            if not self._forwarding:
                continue  # blackhole: hold the connection, never answer
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            self._track(server)
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)

    def _drop(self) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
