"""The lifecycle the fake providers share: a threaded HTTP server on a loopback port whose POSTs go
to the fake's ``_handle`` (GETs to ``_handle_get``); it can be stopped and started again on the same port (an outage)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

F = TypeVar("F", bound="LoopbackHttp")


class LoopbackHttp:
    port: int = 0
    _server: ThreadingHTTPServer | None = None

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        raise NotImplementedError

    def _handle_get(self, handler: BaseHTTPRequestHandler) -> None:
        """GETs: none unless the fake serves some."""
        handler.send_response(405)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    def start(self: F) -> F:
        """Listen (again, on the same port after a ``stop``)."""
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                fake._handle(self)

            def do_GET(self) -> None:  # noqa: N802
                fake._handle_get(self)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
