"""A TCP proxy on loopback in front of PostgreSQL that can lose a statement's answer.

``lose_answer_after(marker)``: the next client message containing ``marker`` is passed to the server,
which runs (and, in autocommit, commits) it; its answer is dropped and the connection is cut, as
when a network fails between the server's commit and the client hearing of it. The client then
cannot tell whether its statement took effect: an "ambiguous commit".
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable

from psycopg.conninfo import conninfo_to_dict, make_conninfo


class PgProxy:
    def __init__(self, conninfo: str) -> None:
        params = conninfo_to_dict(conninfo)
        host, port = str(params.get("host") or "127.0.0.1"), int(params.get("port") or 5432)
        if host.startswith("/"):  # the embedded server listens on a Unix socket only
            path = f"{host}/.s.PGSQL.{port}"
            self._upstream: Callable[[], socket.socket] = lambda: _unix(path)
        else:
            self._upstream = lambda: socket.create_connection((host, port))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._lock = threading.Lock()
        self._marker: bytes | None = None
        self.answers_lost = 0
        params.update(host="127.0.0.1", port=str(self._listener.getsockname()[1]))
        self.conninfo = make_conninfo(**params)
        threading.Thread(target=self._accept, name="pg-proxy", daemon=True).start()

    def lose_answer_after(self, marker: bytes) -> None:
        with self._lock:
            self._marker = marker

    def close(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = self._upstream()
            cut = threading.Event()
            threading.Thread(target=self._to_server, args=(client, server, cut), daemon=True).start()
            threading.Thread(target=self._to_client, args=(server, client, cut), daemon=True).start()

    def _to_server(self, client: socket.socket, server: socket.socket, cut: threading.Event) -> None:
        try:
            while data := client.recv(65536):
                with self._lock:
                    losing = self._marker is not None and self._marker in data
                    if losing:
                        self._marker = None
                if losing:
                    cut.set()  # from now on nothing the server says reaches the client
                    server.sendall(data)
                    time.sleep(0.5)  # the server runs and commits the statement meanwhile
                    self.answers_lost += 1
                    break
                server.sendall(data)
        except OSError:
            pass
        _close(client, server)

    def _to_client(self, server: socket.socket, client: socket.socket, cut: threading.Event) -> None:
        try:
            while data := server.recv(65536):
                if cut.is_set():
                    continue
                client.sendall(data)
        except OSError:
            pass
        if not cut.is_set():
            _close(client, server)


def _unix(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    return sock


def _close(*sockets: socket.socket) -> None:
    for sock in sockets:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()
