"""HUB_EGRESS on the real stack: what a user's code can reach from inside its container.

One stack of its own. The "LAN" is a host this module creates: a small listener container
without any Docker network, wired to the Docker host by a veth pair with private addresses
of its own (a /30 in 172.31.0.0/16 that no route of the host uses), so the Docker host
routes to it exactly as to a machine on your LAN. (A listener on another Docker network
would prove nothing: Docker's own isolation drops traffic between its networks whatever
the policy.) Nothing else is probed: no LAN, no metadata service, no internet.

Tests run in file order: the default `internet`, the rules in the host's firewall, one
allowed LAN address and port (HUB_EGRESS_ALLOW), then `all`, then `none`, then
`./hub down` takes the rules away. User servers run the lean
stand-in notebook image (the policy does not depend on what the image holds; the
batteries image starts slowly on a busy machine and would only add build time).
"""

from __future__ import annotations

import ipaddress
import json
import os
import random
import secrets
import shutil
import socket

import pytest

from personal_hub.egress import chains_for, egress_rules, network_from_inspect, resolvers_from
from tests.docker.conftest import (  # noqa: F401 - standins is a fixture used by name
    Stack,
    docker_json,
    managed,
    run,
    standins,
)
from tests.docker.test_stack import open_server
from tests.helpers import login, login_error, require, wait_for

pytestmark = [pytest.mark.security, pytest.mark.docker]

LISTENER_PORT = 8080
CLOSED_PORT = 9  # nothing listens there: an answer (refused) means "reached"
LAN_POOL = ipaddress.ip_network("172.31.0.0/16")

# Runs in the user's container: one JSON line per target. host:port is a TCP connect
# (connected, refused: the host answered; timeout: dropped); an http URL is a GET.
PROBE = r"""
import json, socket, sys, urllib.request

for target in sys.argv[1:]:
    if target.startswith("http://"):
        try:
            with urllib.request.urlopen(target, timeout=5) as response:
                outcome = "http %d" % response.status
        except Exception as error:
            outcome = type(error).__name__ + ": " + str(error)
    else:
        host, port = target.rsplit(":", 1)
        try:
            socket.create_connection((host, int(port)), timeout=3).close()
            outcome = "connected"
        except ConnectionRefusedError:
            outcome = "refused"
        except (socket.timeout, TimeoutError):
            outcome = "timeout"
        except OSError as error:
            outcome = type(error).__name__ + ": " + str(error)
    print(json.dumps({"target": target, "outcome": outcome}), flush=True)
"""


# ---------------------------------------------------------------- helpers


class EgressStack(Stack):
    """The stack, with the stand-in notebook image as the user servers' image."""

    def environ(self) -> dict[str, str]:
        return {
            **super().environ(),
            "HUB_SINGLEUSER_IMAGE": self.standins["SINGLEUSER_BASE_IMAGE"],
        }


def host_routes() -> list[ipaddress.IPv4Network]:
    listed = run(["ip", "-4", "route", "show", "table", "all"]).stdout
    routes = []
    for line in listed.splitlines():
        word = line.split()[0] if line.split() else ""
        if word in ("broadcast", "local", "unicast"):
            word = line.split()[1]
        try:
            routes.append(ipaddress.ip_network(word, strict=False))
        except ValueError:
            continue  # "default" and friends
    return routes


def free_lan_subnet() -> ipaddress.IPv4Network:
    """A /30 of 172.31.0.0/16 that no route of this host touches."""
    used = [route for route in host_routes() if route.prefixlen > 0]
    for _ in range(100):
        candidate = ipaddress.ip_network(
            f"{LAN_POOL.network_address + 4 * random.randrange(1, 2**14 - 1)}/30"
        )
        if not any(candidate.overlaps(route) for route in used):
            return candidate
    raise AssertionError("no free /30 in 172.31.0.0/16 on this host")


class LanHost:
    """A listener container reached through the Docker host's routing, like a LAN host."""

    def __init__(self, stack: Stack):
        self.name = f"{stack.prefix}-lan"
        self.host_link = f"phg{secrets.token_hex(3)}"
        subnet = free_lan_subnet()
        self.host_address, self.address = (str(a) for a in list(subnet.hosts())[:2])
        run([
            "docker", "run", "-d", "--name", self.name, "--network", "none",
            "--cap-drop", "ALL", stack.standins["PYTHON_IMAGE"],
            "python3", "-m", "http.server", str(LISTENER_PORT), "--directory", "/tmp",
        ])
        pid = docker_json("inspect", self.name)[0]["State"]["Pid"]
        inside = ["nsenter", "-t", str(pid), "-n"]
        run(["ip", "link", "add", self.host_link, "type", "veth", "peer", "name", "lan0",
             "netns", str(pid)])
        run(["ip", "addr", "add", f"{self.host_address}/30", "dev", self.host_link])
        run(["ip", "link", "set", self.host_link, "up"])
        run([*inside, "ip", "addr", "add", f"{self.address}/30", "dev", "lan0"])
        run([*inside, "ip", "link", "set", "lan0", "up"])
        run([*inside, "ip", "route", "add", "default", "via", self.host_address])

        def listening():
            with socket.create_connection((self.address, LISTENER_PORT), timeout=2):
                return True

        # The control: the host itself reaches the listener.
        wait_for(listening, timeout=30, what=f"the LAN listener at {self.address}")

    @property
    def url(self) -> str:
        return f"http://{self.address}:{LISTENER_PORT}/"

    def remove(self) -> None:
        run(["docker", "rm", "-f", self.name], check=False)  # takes its end of the veth
        run(["ip", "link", "del", self.host_link], check=False)


def probe(user: str, *targets: str) -> dict[str, str]:
    result = run(
        ["docker", "exec", f"jupyter-{user}", "python", "-c", PROBE, *targets], timeout=120
    )
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == len(targets), result.stdout + result.stderr
    return {line["target"]: line["outcome"] for line in lines}


def users_network(stack: Stack):
    return network_from_inspect(docker_json("network", "inspect", stack.network)[0])


def our_chain_lines(network_id: str) -> list[str]:
    """Every line of the host's filter table that names this stack's egress chains."""
    chains = chains_for(network_id)
    listed = run(["iptables", "-w", "-S"]).stdout.splitlines()
    return [line for line in listed if chains.forward in line or chains.input in line]


def switch_policy(stack: Stack, policy: str) -> None:
    """What a user does: edit stack.env, then `./hub up`."""
    stack.set_env(HUB_EGRESS=policy)
    stack.hub_up()
    logs = run(["docker", "logs", stack.container("egress")], check=False)
    assert f"egress policy {policy} on network {stack.network}" in logs.stderr, logs.stderr


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def egress_stack(standins):  # noqa: F811 - the fixture imported above
    require(os.geteuid() == 0, "the egress tests need root (they read the host's iptables)")
    for tool in ("ip", "nsenter", "iptables"):
        require(shutil.which(tool) is not None, f"{tool} is not installed")
    with managed(EgressStack(standins)) as stack:
        stack.hub_up()
        yield stack


@pytest.fixture(scope="module")
def lan(egress_stack):
    host = LanHost(egress_stack)
    yield host
    host.remove()


@pytest.fixture(scope="module")
def user(egress_stack):
    """A user with a running server: the seat of the user's code."""
    name = f"{egress_stack.prefix}eve"
    session, response = login(
        egress_stack.url, name, egress_stack.env_file()["JUPYTER_PASSWORD"]
    )
    assert response.status_code == 302, login_error(response)
    open_server(session, egress_stack.url, name)
    return name


# ---------------------------------------------------------------- the tests


def test_internet_policy_keeps_the_lan_and_the_host_out(egress_stack, lan, user):
    policy = egress_stack.env_file().get("HUB_EGRESS")
    assert policy == "internet", "a new stack.env starts with the default"
    listener = f"{lan.address}:{LISTENER_PORT}"
    host = f"{lan.host_address}:{CLOSED_PORT}"
    outcomes = probe(user, "http://hub:8081/hub/api", "proxy-public:8000", listener, host)
    # What users need keeps working: the hub's API and the proxy on the users' network.
    assert outcomes["http://hub:8081/hub/api"] == "http 200", outcomes
    assert outcomes["proxy-public:8000"] == "connected", outcomes
    # A private address behind the Docker host, and the Docker host itself: dropped.
    assert outcomes[listener] == "timeout", outcomes
    assert outcomes[host] == "timeout", outcomes
    # ...and the proxy still reaches the server (replies to incoming connections).
    status = run(["docker", "exec", egress_stack.container("proxy"), "node", "-e",
                  f"require('http').get('http://jupyter-{user}:8888/user/{user}/api/status',"
                  " r => console.log(r.statusCode)).on('error', e => console.log(e.code))"])
    assert status.stdout.strip() in ("200", "403"), status.stdout


def test_rules_in_the_hosts_firewall(egress_stack, user):
    network = users_network(egress_stack)
    chains = chains_for(network.id)
    egress = egress_stack.container("egress")
    info = docker_json("inspect", egress)[0]
    assert info["HostConfig"]["NetworkMode"] == "host"
    capabilities = [name.removeprefix("CAP_") for name in info["HostConfig"]["CapAdd"]]
    assert capabilities == ["NET_ADMIN"] and info["HostConfig"]["CapDrop"] == ["ALL"]
    # In the host's network namespace the service reads the host's resolvers.
    resolv = run(["docker", "exec", egress, "cat", "/etc/resolv.conf"]).stdout
    resolvers = resolvers_from(resolv)
    assert resolvers, f"this test expects a non-local resolver in the host's resolv.conf:\n{resolv}"

    forward = run(["iptables", "-w", "-S", chains.forward]).stdout.splitlines()
    inbound = run(["iptables", "-w", "-S", chains.input]).stdout.splitlines()
    bridge = network.bridge
    for line in (
        f"-A {chains.forward} -o {bridge} -j RETURN",
        f"-A {chains.forward} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN",
        f"-A {chains.forward} -d 10.0.0.0/8 -j DROP",
        f"-A {chains.forward} -d 172.16.0.0/12 -j DROP",
        f"-A {chains.forward} -d 192.168.0.0/16 -j DROP",
        f"-A {chains.forward} -d 100.64.0.0/10 -j DROP",
        f"-A {chains.forward} -d 169.254.0.0/16 -j DROP",
    ):
        assert line in forward, "\n".join(forward)
    assert inbound[-1] == f"-A {chains.input} -j DROP", inbound
    expected = egress_rules("internet", bridge, network.subnets[0], chains, resolvers)
    assert forward == [" ".join(rule) for rule in expected if rule[1] == chains.forward]
    assert inbound == [" ".join(rule) for rule in expected if rule[1] == chains.input]
    # Jumped to once, from Docker's DOCKER-USER and from INPUT, for this bridge only.
    docker_user = run(["iptables", "-w", "-S", "DOCKER-USER"]).stdout.splitlines()
    assert docker_user.count(f"-A DOCKER-USER -i {bridge} -j {chains.forward}") == 1
    input_chain = run(["iptables", "-w", "-S", "INPUT"]).stdout.splitlines()
    assert input_chain.count(f"-A INPUT -i {bridge} -j {chains.input}") == 1


def test_an_allowed_lan_address_and_port_and_nothing_more(egress_stack, lan, user):
    """HUB_EGRESS_ALLOW: a model server or database on the LAN, one port of it."""
    allowed = f"{lan.address}:{LISTENER_PORT}"
    egress_stack.set_env(HUB_EGRESS_ALLOW=allowed)
    egress_stack.hub_up()
    logs = run(["docker", "logs", egress_stack.container("egress")], check=False).stderr
    assert f"also {allowed}" in logs, logs
    other_port = f"{lan.address}:{CLOSED_PORT}"
    host = f"{lan.host_address}:{CLOSED_PORT}"
    outcomes = probe(user, lan.url, other_port, host)
    assert outcomes[lan.url] == "http 200", outcomes
    assert outcomes[other_port] == "timeout", outcomes  # another port of the same host
    assert outcomes[host] == "timeout", outcomes
    egress_stack.set_env(HUB_EGRESS_ALLOW="")  # the next test's ./hub up takes it away


def test_all_policy_does_not_filter(egress_stack, lan, user):
    switch_policy(egress_stack, "all")
    network = users_network(egress_stack)
    assert our_chain_lines(network.id) == []
    outcomes = probe(user, lan.url, f"{lan.host_address}:{CLOSED_PORT}")
    assert outcomes[lan.url] == "http 200", outcomes
    assert outcomes[f"{lan.host_address}:{CLOSED_PORT}"] in ("refused", "connected"), outcomes


def test_none_policy_allows_only_the_users_network(egress_stack, lan, user):
    switch_policy(egress_stack, "none")
    outcomes = probe(
        user, "http://hub:8081/hub/api", "proxy-public:8000",
        f"{lan.address}:{LISTENER_PORT}", f"{lan.host_address}:{CLOSED_PORT}",
    )
    assert outcomes["http://hub:8081/hub/api"] == "http 200", outcomes
    assert outcomes["proxy-public:8000"] == "connected", outcomes
    assert outcomes[f"{lan.address}:{LISTENER_PORT}"] == "timeout", outcomes
    assert outcomes[f"{lan.host_address}:{CLOSED_PORT}"] == "timeout", outcomes
    chains = chains_for(users_network(egress_stack).id)
    forward = run(["iptables", "-w", "-S", chains.forward]).stdout.splitlines()
    assert forward[-1] == f"-A {chains.forward} -j DROP", forward


def test_hub_down_takes_the_rules_away(egress_stack, user):
    network_id = users_network(egress_stack).id
    assert our_chain_lines(network_id), "the none policy's rules should be in place"
    result = run(["sh", "./hub", "down"], cwd=egress_stack.repo, env=egress_stack.environ(),
                 timeout=300)
    assert run(["docker", "inspect", egress_stack.container("egress")],
               check=False).returncode != 0, result.stdout + result.stderr
    assert our_chain_lines(network_id) == [], run(["iptables", "-w", "-S"]).stdout
