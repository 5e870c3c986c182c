"""Where user-supplied URLs may send requests (adapters.destinations): the address rules, and that the
guarded client connects to the address it checked, with the original Host header, or not at all."""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from adapters.destinations import (
    DestinationRefusedError,
    UnresolvedHostError,
    check_destination,
    guarded_client,
    resolve,
)


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "172.16.0.9", "192.168.1.1", "169.254.169.254",
                                     "::1", "fe80::1", "fd00::1", "::ffff:127.0.0.1", "0.0.0.0", "100.64.0.1",
                                     "2002:7f00:1::", "2002:a00:1::"])  # 6to4 of 127.0.0.1 and 10.0.0.1
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


REAL_GETADDRINFO = socket.getaddrinfo


@pytest.fixture
def made_up_names(monkeypatch):
    """Names no resolver knows, answered with 127.0.0.1 by a stand-in for the system resolver:
    only a client that connects to the address it was given can reach them."""
    names = {"calendar.clinic.test", "a.test", "b.test"}

    def getaddrinfo(host, port, *args, **kwargs):
        return REAL_GETADDRINFO("127.0.0.1" if host in names else host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return names


def test_the_guarded_client_connects_to_the_checked_address_with_the_original_host(loopback_server, made_up_names):
    port, seen = loopback_server
    with guarded_client(allow_private=True, timeout=2) as client:
        answer = client.put(f"http://calendar.clinic.test:{port}/calendar/event.ics", content=b"x")
        assert answer.status_code == 204
        assert answer.request.url.host == "calendar.clinic.test"  # the request itself is not rewritten
    assert seen == [("PUT", f"calendar.clinic.test:{port}")]
    with guarded_client(allow_private=False, timeout=2) as client, pytest.raises(DestinationRefusedError):
        client.put(f"http://calendar.clinic.test:{port}/calendar/event.ics", content=b"x")
    assert len(seen) == 1


def test_a_connection_verified_for_one_host_is_not_reused_for_another_at_the_same_address(
        tmp_path, made_up_names, monkeypatch):
    """a.test and b.test both resolve to 127.0.0.1, whose server has a certificate for a.test only:
    b.test must get a TLS error, not a.test's open, verified connection."""
    ca_file, serve = tls_server(tmp_path, "a.test")
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))  # the operator's own CA, as for a clinic's server
    with serve() as port, guarded_client(allow_private=True, timeout=5) as client:
        assert client.get(f"https://a.test:{port}/").status_code == 200
        with pytest.raises(httpx.ConnectError):
            client.get(f"https://b.test:{port}/")
        assert client.get(f"https://a.test:{port}/").status_code == 200


def tls_server(directory, name: str):
    """A CA, a certificate for ``name`` signed by it, and an HTTPS server on loopback using it."""
    import contextlib
    import datetime
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def certificate(subject: str, key, issuer: str, issuer_key, ca: bool, san: str | None = None):
        now = datetime.datetime.now(datetime.timezone.utc)
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
                   .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(hours=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if ca:
            builder = builder.add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False,
                decipher_only=False), critical=True)
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(san)]), critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = certificate("Test CA", ca_key, "Test CA", ca_key, True)
    leaf = certificate(name, leaf_key, "Test CA", ca_key, False, san=name)
    ca_file, chain, key_file = directory / "ca.pem", directory / "leaf.pem", directory / "leaf.key"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    chain.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(leaf_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()))

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, so that a client could reuse the connection

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    @contextlib.contextmanager
    def serve():
        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(chain, key_file)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            yield server.server_address[1]
        finally:
            server.shutdown()
            server.server_close()

    return ca_file, serve


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
