"""Outbound HTTP that reaches only the addresses it is allowed to.

Webhooks, calendar pushes (CalDAV) and FHIR write-backs send requests to URLs that workspace staff
type in. Without a check, anyone who may set such a URL could make the hub call services on its
own network (the database, a cloud metadata endpoint, an admin page on loopback): server-side
request forgery. So every such request goes through ``GuardedTransport``: at connect time it
resolves the host, refuses private, loopback, link-local and other non-global addresses unless the
operator allowed them (``COMMHUB_WEBHOOK_ALLOW_PRIVATE``, ``COMMHUB_CALDAV_ALLOW_PRIVATE``,
``COMMHUB_FHIR_ALLOW_PRIVATE``), and connects to exactly the address it checked — no second lookup
a hostile DNS server could answer differently — with the original ``Host`` header and TLS name.
Redirects are never followed and proxies from the environment are ignored (a proxy would connect
to the host on our behalf, unchecked).
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

import httpx

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class DestinationRefusedError(httpx.TransportError):
    """The URL's host resolves to an address this kind of request may not reach."""


class UnresolvedHostError(httpx.ConnectError):
    """The URL's host does not resolve (now)."""


def refused(address: Address) -> bool:
    """True for every address that is not a public unicast one (IPv4-mapped IPv6 judged as IPv4)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
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


class GuardedTransport(httpx.HTTPTransport):
    """An httpx transport that resolves and checks each request's host, then connects to that address."""

    def __init__(self, *, allow_private: bool) -> None:
        super().__init__(trust_env=False)
        self.allow_private = allow_private

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        address = resolve(host, request.url.port or default_port(request.url.scheme), self.allow_private)
        # The Host header was set from the original URL when the request was built; TLS verifies the
        # certificate against the name in sni_hostname, not against the address connected to.
        request.url = request.url.copy_with(host=address)
        request.extensions = {**request.extensions, "sni_hostname": host}
        return super().handle_request(request)


def guarded_client(*, allow_private: bool, timeout: float) -> httpx.Client:
    """A client for user-supplied URLs: checked addresses, no redirects, no proxies from the environment."""
    return httpx.Client(transport=GuardedTransport(allow_private=allow_private), timeout=timeout,
                        follow_redirects=False, trust_env=False)
