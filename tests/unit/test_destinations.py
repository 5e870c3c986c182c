"""Where user-supplied URLs may send requests (adapters.destinations): the address rules, and that the
guarded client connects to the address it checked, with the original Host header, or not at all."""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from adapters.destinations import (
    DestinationRefusedError,
    UnresolvedHostError,
    check_destination,
    guarded_client,
    resolve,
)


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "172.16.0.9", "192.168.1.1", "169.254.169.254",
                                     "::1", "fe80::1", "fd00::1", "::ffff:127.0.0.1", "0.0.0.0", "100.64.0.1"])
def test_private_loopback_and_link_local_destinations_are_refused_unless_allowed(address):
    with pytest.raises(DestinationRefusedError):
        resolve(address, 443, allow_private=False)
    assert ipaddress.ip_address(resolve(address, 443, allow_private=True)) == ipaddress.ip_address(address)


def test_a_public_address_is_allowed():
    assert resolve("93.184.215.14", 443, allow_private=False) == "93.184.215.14"


def test_a_host_that_does_not_resolve_is_its_own_error():
    with pytest.raises(UnresolvedHostError):
        resolve("hooks.nowhere.invalid", 443, allow_private=True)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/x", "https://[::1]/hook", "http://10.0.0.7/", "http://localhost/"])
def test_saving_a_private_destination_is_refused_unless_allowed(url):
    with pytest.raises(DestinationRefusedError):
        check_destination(url, allow_private=False)
    check_destination(url, allow_private=True)
    check_destination("https://hooks.nowhere.invalid/x", allow_private=False)  # unresolvable now: checked when sent


@pytest.fixture
def loopback_server() -> Iterator[tuple[int, list[tuple[str, str]]]]:
    """An HTTP server on 127.0.0.1 that records each request's method and Host header."""
    seen: list[tuple[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            seen.append((self.command, self.headers.get("Host", "")))
            self.send_response(204)
            self.end_headers()

        def do_GET(self) -> None:  # always a redirect, to this server's own /metadata
            seen.append((self.command, self.headers.get("Host", "")))
            self.send_response(302)
            self.send_header("Location", "/metadata")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], seen
    finally:
        server.shutdown()
        server.server_close()


def test_the_guarded_client_refuses_a_loopback_host_without_connecting(loopback_server):
    port, seen = loopback_server
    with guarded_client(allow_private=False, timeout=2) as client:
        for host in ("127.0.0.1", "localhost"):
            with pytest.raises(DestinationRefusedError):
                client.put(f"http://{host}:{port}/calendar/event.ics", content=b"x")
    assert seen == []


def test_the_guarded_client_connects_to_the_checked_address_with_the_original_host(loopback_server):
    port, seen = loopback_server
    with guarded_client(allow_private=True, timeout=2) as client:
        answer = client.put(f"http://localhost:{port}/calendar/event.ics", content=b"x")
    assert answer.status_code == 204
    assert seen == [("PUT", f"localhost:{port}")]


def test_the_guarded_client_ignores_proxies_from_the_environment(loopback_server, monkeypatch):
    # A proxy would make the connection to the host itself, unchecked: it must not be used.
    port, seen = loopback_server
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("ALL_PROXY", "http://127.0.0.1:9")
    with guarded_client(allow_private=True, timeout=2) as client:
        assert client.put(f"http://127.0.0.1:{port}/x", content=b"x").status_code == 204
    assert seen == [("PUT", f"127.0.0.1:{port}")]


def test_the_guarded_client_follows_no_redirect(loopback_server):
    port, seen = loopback_server
    with guarded_client(allow_private=True, timeout=2) as client:
        assert client.get(f"http://127.0.0.1:{port}/Appointment/1").status_code == 302
    assert len(seen) == 1
