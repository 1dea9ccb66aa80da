"""Which address a request really came from, trusting forwarded headers only from proxies.

Tornado (with JupyterHub's `xheaders=True`) believes `X-Real-Ip` and `X-Forwarded-For`
from *any* client, and configurable-http-proxy passes a client's `X-Real-Ip` through
unchanged. So the client address is worked out here from the TCP peer instead: a peer
that is not a trusted proxy is the client; a trusted proxy's `X-Forwarded-For` is read
from the right (each proxy appends the peer it saw), skipping further trusted proxies.
`X-Real-Ip` is never read: nothing in front of the hub sets it reliably.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def normalize_address(text: str) -> str | None:
    """The canonical form of an IP address (IPv4-mapped IPv6 as IPv4), or None."""
    try:
        address = ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return str(address)


def parse_networks(entries: Iterable[str]) -> tuple[list[Network], list[str]]:
    """Split trusted-proxy entries into networks (IPs, CIDRs) and host names to resolve."""
    networks, hosts = [], []
    for entry in entries:
        entry = entry.strip()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            hosts.append(entry)
    return networks, hosts


def is_trusted(address: str, networks: Iterable[Network]) -> bool:
    ip = ipaddress.ip_address(address)
    return any(ip.version == network.version and ip in network for network in networks)


def client_address(peer: str, forwarded_for: str | None, trusted: list[Network]) -> str:
    """The client's address: the peer, unless the peer is a trusted proxy."""
    address = normalize_address(peer) or peer
    if not forwarded_for or not is_trusted(address, trusted):
        return address
    for hop in reversed(forwarded_for.split(",")):
        hop_address = normalize_address(hop)
        if hop_address is None:
            # Garbage in the chain: stop at the last address we could trust.
            return address
        address = hop_address
        if not is_trusted(address, trusted):
            return address
    return address


def peer_address(request) -> str:
    """The TCP peer of a tornado request, before any X-headers were applied."""
    context = getattr(getattr(request, "connection", None), "context", None)
    peer = getattr(context, "_orig_remote_ip", None)
    return peer or request.remote_ip
