"""Outbound HTTP that reaches only the addresses it is allowed to.

Webhooks, calendar pushes (CalDAV) and FHIR write-backs send requests to URLs that workspace staff
type in. Without a check, anyone who may set such a URL could make the hub call services on its
own network (the database, a cloud metadata endpoint, an admin page on loopback): server-side
request forgery. So every such request goes through ``GuardedTransport``: at connect time it
resolves the host, refuses private, loopback, link-local and other non-global addresses unless the
operator allowed them (``COMMHUB_WEBHOOK_ALLOW_PRIVATE``, ``COMMHUB_CALDAV_ALLOW_PRIVATE``,
``COMMHUB_FHIR_ALLOW_PRIVATE``), and connects to exactly the address it checked — no second lookup
a hostile DNS server could answer differently — while the request, the connection pool's key, the
``Host`` header and the TLS name all stay the host's.
Redirects are never followed and proxies from the environment are ignored (a proxy would connect
to the host on our behalf, unchecked).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class DestinationRefusedError(httpx.TransportError):
    """The URL's host resolves to an address this kind of request may not reach."""


class UnresolvedHostError(httpx.ConnectError):
    """The URL's host does not resolve (now)."""


def refused(address: Address) -> bool:
    """True for every address that is not a public unicast one (IPv4 inside IPv6 — mapped, 6to4,
    Teredo — judged as that IPv4 address)."""
    if isinstance(address, ipaddress.IPv6Address):  # an IPv4 address inside IPv6 is judged as itself
        embedded = address.ipv4_mapped or address.sixtofour or (address.teredo[1] if address.teredo else None)
        if embedded is not None:
            address = embedded
    return (address.is_private or address.is_loopback or address.is_link_local or address.is_multicast
            or address.is_reserved or address.is_unspecified or not address.is_global)


def resolve(host: str, port: int, allow_private: bool) -> str:
    """The address to connect to: the first the host resolves to (IPv4 first), if every one is allowed."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise UnresolvedHostError("the host does not resolve") from None
    addresses = [ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos]
    if not addresses:
        raise UnresolvedHostError("the host does not resolve")
    if not allow_private and any(refused(a) for a in addresses):
        raise DestinationRefusedError("destination address not allowed")
    return str(sorted(addresses, key=lambda a: a.version)[0])  # IPv4 first: not every host has IPv6 routes


def default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def check_destination(url: str, allow_private: bool) -> None:
    """Refuse (``DestinationRefusedError``) a URL whose host resolves to an address it may not reach,
    when the URL is saved; every request checks again. A host that does not resolve now passes: the
    request-time check decides then."""
    parts = urlsplit(url)
    try:
        resolve(parts.hostname or "", parts.port or default_port(parts.scheme), allow_private)
    except UnresolvedHostError:
        pass


class _GuardedBackend(httpcore.SyncBackend):
    """Opens each TCP connection to the address ``resolve`` checked, never to a second lookup."""

    def __init__(self, allow_private: bool) -> None:
        self.allow_private = allow_private

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        return super().connect_tcp(resolve(host, port, self.allow_private), port, timeout, local_address,
                                   socket_options)


class GuardedTransport(httpx.HTTPTransport):
    """An httpx transport whose connections go only to checked addresses.

    The check sits where the connection is opened (a network backend of httpcore), not in the URL:
    the request keeps its host, so the connection pool is keyed by host name (a connection opened
    and TLS-verified for one host is never reused for another that shares its address), the
    ``Host`` header and the TLS name (SNI and certificate check) are the host's, and each new
    connection resolves and checks anew."""

    def __init__(self, *, allow_private: bool, limits: httpx.Limits = httpx.Limits()) -> None:
        super().__init__(trust_env=False)
        self._pool = httpcore.ConnectionPool(
            # SSL_CERT_FILE / SSL_CERT_DIR are honoured (a clinic's own CA); proxy variables are not
            ssl_context=httpx.create_ssl_context(trust_env=True), max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections, keepalive_expiry=limits.keepalive_expiry,
            network_backend=_GuardedBackend(allow_private))


def guarded_client(*, allow_private: bool, timeout: float) -> httpx.Client:
    """A client for user-supplied URLs: checked addresses, no redirects, no proxies from the environment."""
    return httpx.Client(transport=GuardedTransport(allow_private=allow_private), timeout=timeout,
                        follow_redirects=False, trust_env=False)
