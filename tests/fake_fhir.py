"""A FHIR R4 server on loopback for tests: it holds Appointment resources, answers GET with an
ETag, takes PUT (checking ``If-Match`` and the bearer token), records every request, and can be
told to answer the next PUTs with an error status."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None
    answered: int


@dataclass
class FakeFhir:
    token: str
    resources: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    failures: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/fhir"

    def put_resource(self, resource: dict[str, Any]) -> None:
        with self.lock:
            self.resources[resource["id"]] = (1, resource)

    def fail_next_puts(self, *statuses: int) -> None:
        with self.lock:
            self.failures.extend(statuses)

    def puts(self, appointment_id: str) -> list[Recorded]:
        with self.lock:
            return [r for r in self.requests if r.method == "PUT" and r.path == f"/fhir/Appointment/{appointment_id}"]

    def start(self) -> FakeFhir:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        threading.Thread(target=self.server.serve_forever, name="fake-fhir", daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def _handler(fake: FakeFhir) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _answer(self, status: int, body: dict[str, Any] | None = None, etag: str | None = None) -> int:
            payload = json.dumps(body or {"resourceType": "OperationOutcome"}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/fhir+json")
            self.send_header("Content-Length", str(len(payload)))
            if etag:
                self.send_header("ETag", etag)
            self.end_headers()
            self.wfile.write(payload)
            return status

        def _record(self, body: dict[str, Any] | None, status: int) -> None:
            with fake.lock:
                fake.requests.append(Recorded(self.command, self.path, dict(self.headers.items()), body, status))

        def _resource_id(self) -> str | None:
            prefix = "/fhir/Appointment/"
            return self.path[len(prefix):] if self.path.startswith(prefix) else None

        def do_GET(self) -> None:
            key = self._resource_id()
            with fake.lock:
                found = fake.resources.get(key or "")
            if self.headers.get("Authorization") != f"Bearer {fake.token}":
                status = self._answer(401)
            elif found is None:
                status = self._answer(404)
            else:
                status = self._answer(200, found[1], f'W/"{found[0]}"')
            self._record(None, status)

        def do_PUT(self) -> None:
            key = self._resource_id()
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"null")
            with fake.lock:
                found = fake.resources.get(key or "")
                failure = fake.failures.pop(0) if fake.failures else None
                if self.headers.get("Authorization") != f"Bearer {fake.token}":
                    status = 401
                elif failure is not None:
                    status = failure
                elif found is None or body.get("id") != key:
                    status = 404 if found is None else 400
                elif self.headers.get("If-Match") not in (None, f'W/"{found[0]}"'):
                    status = 412
                else:
                    status = 200
                    found = (found[0] + 1, body)
                    fake.resources[key or ""] = found
            self._answer(status, found[1] if status == 200 and found else None,
                         f'W/"{found[0]}"' if status == 200 and found else None)
            self._record(body, status)

    return Handler
