"""A real SMTP relay on loopback (aiosmtpd) for tests and benches: it speaks SMTP, optionally
STARTTLS or implicit TLS with a self-signed certificate and AUTH, and keeps what it receives."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that is its own CA: (certificate file, key file)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "commhub test relay")])
    now = dt.datetime.now(dt.timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                    x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "relay-cert.pem", directory / "relay-key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.raw, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


class RelayHandler:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self.answer: str | None = None  # e.g. "451 4.3.0 try later": refuse DATA with this

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.answer is not None:
            return self.answer
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.original_content)))
        return "250 OK queued"


class Relay:
    """``security``: none, starttls (required before AUTH and MAIL) or tls (implicit)."""

    def __init__(self, directory: Path, *, security: str = "none", username: str | None = None,
                 password: str | None = None) -> None:
        self.handler = RelayHandler()
        self.port = free_port()
        self.security = security
        self.ca_file: Path | None = None
        kwargs: dict[str, Any] = {}
        if security != "none":
            self.ca_file, key_file = self_signed_certificate(directory)
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(self.ca_file, key_file)
            if security == "tls":
                kwargs["ssl_context"] = context
                kwargs["server_hostname"] = "127.0.0.1"
            else:
                kwargs.update(tls_context=context, require_starttls=True)
        if username is not None:
            def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
                ok = isinstance(data, LoginPassword) and (data.login.decode(), data.password.decode()) == (username, password)
                return AuthResult(success=ok, handled=False)

            kwargs.update(authenticator=authenticate, auth_require_tls=security == "starttls")
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port, **kwargs)

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    def answer_with(self, reply: str | None) -> None:
        self.handler.answer = reply

    def env(self, from_address: str = "clinic@harbour.example") -> dict[str, str]:
        """commhub's settings for sending through this relay."""
        env = {"COMMHUB_SMTP_HOST": "127.0.0.1", "COMMHUB_SMTP_PORT": str(self.port),
               "COMMHUB_SMTP_SECURITY": self.security, "COMMHUB_SMTP_FROM": from_address}
        if self.ca_file is not None:
            env["COMMHUB_SMTP_CA_FILE"] = str(self.ca_file)
        return env

    def start(self) -> Relay:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def __enter__(self) -> Relay:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
