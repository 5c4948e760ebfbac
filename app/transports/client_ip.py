"""The client's address: the connection's, or what trusted proxies say in ``X-Forwarded-For``.

Each proxy appends the address it saw, so the chain is read from the right: addresses of
trusted proxies are skipped, and the first one that is not trusted is the client. A header
from an untrusted peer is ignored (anyone can write it), as is a malformed entry.
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

from aiohttp import web

Network = IPv4Network | IPv6Network
TRUSTED_PROXIES: web.AppKey[tuple[Network, ...]] = web.AppKey("TRUSTED_PROXIES")
#: More hops than any real proxy chain: the rest of a longer header is not read.
MAX_HOPS = 16


def _parsed(text: str) -> IPv4Address | IPv6Address | None:
    try:
        return ip_address(text.strip())
    except ValueError:
        return None


def _trusted(address: IPv4Address | IPv6Address, trusted: Sequence[Network]) -> bool:
    return any(address in network for network in trusted)


def resolve(peer: str, forwarded_for: str, trusted: Sequence[Network]) -> str:
    """The client address for a connection from ``peer`` with that header value."""
    peer_address = _parsed(peer)
    if not trusted or not forwarded_for or peer_address is None:
        return peer
    if not _trusted(peer_address, trusted):
        return peer
    client = peer
    for hop in reversed(forwarded_for.split(",")[-MAX_HOPS:]):
        address = _parsed(hop)
        if address is None:
            break
        client = str(address)
        if not _trusted(address, trusted):
            break
    return client


def client_ip(request: web.Request) -> str:
    """``resolve`` for an aiohttp request, with the application's trusted proxies."""
    peer = request.remote or ""
    trusted = request.app.get(TRUSTED_PROXIES, ())
    if not trusted:
        return peer
    return resolve(peer, request.headers.get("X-Forwarded-For", ""), trusted)
