"""Which address a login comes from: forwarded headers only from trusted proxies."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from personal_hub.addresses import client_address, normalize_address, parse_networks
from personal_hub.authenticator import PersonalAuthenticator

PROXY = "10.0.0.2"
TRAEFIK = "172.18.0.5"
TRUSTED, _ = parse_networks([PROXY, "172.18.0.5/32"])


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "expected"),
    [
        # Not a trusted proxy: its headers are ignored, whatever they say.
        ("203.0.113.7", "198.51.100.1", "203.0.113.7"),
        ("10.0.0.9", "198.51.100.1, 10.0.0.2", "10.0.0.9"),
        # The proxy appends the peer it saw: the rightmost untrusted entry is the client.
        (PROXY, "198.51.100.1", "198.51.100.1"),
        (PROXY, "1.2.3.4, 198.51.100.1", "198.51.100.1"),
        # Through Traefik then the proxy: skip Traefik, take what Traefik saw.
        (PROXY, f"1.2.3.4, 198.51.100.1, {TRAEFIK}", "198.51.100.1"),
        # Someone reaching the proxy directly cannot pose as Traefik's client.
        (PROXY, f"{TRAEFIK}, 10.0.0.77", "10.0.0.77"),
        # IPv4-mapped IPv6 (how Node.js reports IPv4 peers) is the same address.
        (PROXY, "::ffff:198.51.100.1", "198.51.100.1"),
        ("::ffff:10.0.0.2", "198.51.100.1", "198.51.100.1"),
        # Garbage in the chain: stop at the last trusted hop.
        (PROXY, "not-an-address", PROXY),
        (PROXY, "", PROXY),
        (PROXY, None, PROXY),
    ],
)
def test_client_address(peer, forwarded_for, expected):
    assert client_address(peer, forwarded_for, TRUSTED) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("10.0.0.1", "10.0.0.1"), ("::ffff:10.0.0.1", "10.0.0.1"), ("[::1]", "::1"),
     (" 192.0.2.1 ", "192.0.2.1"), ("x", None), ("", None), ("10.0.0.256", None)],
)
def test_normalize_address(text, expected):
    assert normalize_address(text) == expected


def test_parse_networks_splits_addresses_from_names():
    networks, hosts = parse_networks(["10.0.0.1", "172.16.0.0/12", "traefik", " ", "::1"])
    assert [str(n) for n in networks] == ["10.0.0.1/32", "172.16.0.0/12", "::1/128"]
    assert hosts == ["traefik"]


def request(peer, forwarded_for):
    return SimpleNamespace(remote_ip=peer, headers={"X-Forwarded-For": forwarded_for})


async def test_trusted_proxies_by_host_name_are_resolved():
    auth = PersonalAuthenticator(trusted_proxies=["localhost"])
    assert await auth.client_address(request("127.0.0.1", "198.51.100.3")) == "198.51.100.3"


async def test_a_name_that_does_not_resolve_trusts_nobody(monkeypatch):
    async def no_such_host(self, host, *args, **kwargs):
        raise OSError(f"cannot resolve {host}")

    # No DNS query leaves the machine: the resolver itself is the stand-in.
    monkeypatch.setattr(asyncio.BaseEventLoop, "getaddrinfo", no_such_host)
    auth = PersonalAuthenticator(trusted_proxies=["traefik"])
    assert await auth.client_address(request("10.0.0.2", "198.51.100.3")) == "10.0.0.2"
