"""Egress policy of user containers (`HUB_EGRESS`): host firewall rules for the users' network.

A container reaches whatever the Docker host reaches unless the host's firewall says
otherwise. `personal-hub egress` (the compose service `egress`: host network, only the
NET_ADMIN capability) installs iptables rules for packets that come *in* on the users'
network's bridge, i.e. from user containers (and from the hub and the proxy, which
need nothing beyond their own networks):

- `internet` (the default): the internet yes; private, shared (CGNAT) and link-local
  addresses (the LAN, other Docker networks, the cloud metadata service) no; the Docker
  host itself no.
- `none`: nothing beyond the users' own network.
- `all`: no rules (the rules of an earlier policy are removed).

Always allowed: traffic that stays on the bridge (a server and the hub's API, the
proxy), and replies to connections made *to* a container (the proxy reaching a server).
Docker's embedded DNS resolver forwards queries from inside the container's network
namespace, so under `internet` the host's resolvers stay reachable on port 53 even
when they are private addresses.

Rules live in chains of their own, `PERSONAL-HUB-<network id>` (jumped to from Docker's
`DOCKER-USER` chain, which Docker keeps first in FORWARD) and `PERSONAL-HUB-IN-<network
id>` (jumped to from INPUT), and are written in one `iptables-restore --noflush`
transaction, so they change atomically and are never doubled. `egress_rules()` and the
two script builders are pure; everything that touches the host is below them.
"""

from __future__ import annotations

import ipaddress
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

POLICIES = ("internet", "all", "none")
# Destinations `internet` refuses: private (RFC 1918, RFC 4193), shared address space
# (RFC 6598: carrier-grade NAT, Tailscale) and link-local (169.254.169.254 is the cloud
# metadata service). The host's own addresses are refused by the INPUT chain.
BLOCKED_NETWORKS = {
    4: ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16"),
    6: ("fc00::/7", "fe80::/10"),
}
CHAIN_PREFIX = "PERSONAL-HUB-"
# Docker's chain for its users' rules: FORWARD jumps to it before any of Docker's own.
DOCKER_USER = "DOCKER-USER"
ESTABLISHED = ["-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED"]
DNS_PORT = "53"
READY_FILE = "/tmp/personal-hub-egress.ready"


class EgressError(Exception):
    """A problem the egress service reports (and retries) instead of a traceback."""


@dataclass(frozen=True)
class Chains:
    forward: str
    input: str


def chains_for(network_id: str) -> Chains:
    """Our chains for one network (iptables allows at most 28 characters in a name)."""
    short = network_id[:12]
    return Chains(forward=f"{CHAIN_PREFIX}{short}", input=f"{CHAIN_PREFIX}IN-{short}")


@dataclass(frozen=True)
class Destination:
    """A destination user containers may reach whatever the policy (HUB_EGRESS_ALLOW):
    an address or network, and a port (TCP and UDP) or every port (None)."""

    network: str
    port: int | None = None

    def __str__(self) -> str:
        if self.port is None:
            return self.network
        address = self.network.removesuffix("/32").removesuffix("/128")
        return f"[{address}]:{self.port}" if ":" in address else f"{address}:{self.port}"


def parse_destination(text: str) -> Destination:
    """'192.168.1.20:11434', '192.168.1.0/24', '[fd00::5]:5432', 'fd00::/64'."""
    text = text.strip()
    port = None
    if text.startswith("["):
        address, _, rest = text[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"{text!r} is not an address[:port].")
            port = rest[1:]
    elif text.count(":") == 1:
        address, port = text.split(":")
    else:
        address = text
    network = ipaddress.ip_network(address, strict=False)  # ValueError when it is not one
    if port is not None:
        if not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ValueError(f"{text!r} has no valid port (1-65535).")
        port = int(port)
    return Destination(str(network), port)


def parse_destinations(text: str) -> tuple[Destination, ...]:
    """HUB_EGRESS_ALLOW: destinations separated by commas (or spaces)."""
    return tuple(parse_destination(word) for word in text.replace(",", " ").split())


def egress_rules(
    policy: str,
    bridge: str,
    subnet: str,
    chains: Chains,
    resolvers: Sequence[str] = (),
    forward_hook: str = DOCKER_USER,
    allowed: Sequence[Destination] = (),
) -> list[list[str]]:
    """The rules of `policy` for the network on `bridge`, in `iptables -S` form.

    The family (iptables or ip6tables) is the subnet's. `resolvers`: DNS servers (or
    networks) the users' DNS queries may reach under `internet`; the others' families
    are skipped. `allowed`: destinations reachable under any policy (on the LAN or the
    Docker host itself), before anything is dropped. Chain declarations (`-N`) and rules
    (`-A`) of our two chains come first, then the two jumps into them (`-A <hook> ...`,
    inserted first in that chain).
    """
    if policy not in POLICIES:
        raise ValueError(f"{policy!r} is not an egress policy; use one of {', '.join(POLICIES)}.")
    if policy == "all":
        return []
    version = ipaddress.ip_network(subnet, strict=False).version
    forward, inbound = chains.forward, chains.input
    dns = [
        str(ipaddress.ip_network(server, strict=False))
        for server in resolvers
        if ipaddress.ip_network(server, strict=False).version == version
    ]

    def allow_destinations(chain: str) -> list[list[str]]:
        rules = []
        for destination in allowed:
            if ipaddress.ip_network(destination.network).version != version:
                continue
            if destination.port is None:
                rules.append(["-A", chain, "-d", destination.network, "-j", "RETURN"])
            else:
                rules += [["-A", chain, "-d", destination.network, "-p", protocol, "-m",
                           protocol, "--dport", str(destination.port), "-j", "RETURN"]
                          for protocol in ("tcp", "udp")]
        return rules

    def allow_dns(chain: str) -> list[list[str]]:
        return [
            ["-A", chain, "-d", server, "-p", protocol, "-m", protocol, "--dport", DNS_PORT,
             "-j", "RETURN"]
            for server in dns
            for protocol in ("udp", "tcp")
        ]

    rules = [
        ["-N", forward],
        # Hub API, proxy, other servers: traffic that leaves on the same bridge.
        ["-A", forward, "-o", bridge, "-j", "RETURN"],
        # Replies to connections made to a container (published ports, the proxy).
        ["-A", forward, *ESTABLISHED, "-j", "RETURN"],
    ]
    rules += allow_destinations(forward)
    if policy == "internet":
        rules += allow_dns(forward)
        rules += [["-A", forward, "-d", network, "-j", "DROP"] for network in
                  BLOCKED_NETWORKS[version]]
    else:
        rules.append(["-A", forward, "-j", "DROP"])
    # The Docker host itself (every address it has): packets for it go through INPUT.
    rules += [["-N", inbound], ["-A", inbound, *ESTABLISHED, "-j", "RETURN"]]
    rules += allow_destinations(inbound)
    if policy == "internet":
        rules += allow_dns(inbound)
    rules.append(["-A", inbound, "-j", "DROP"])
    rules += [
        ["-A", forward_hook, "-i", bridge, "-j", forward],
        ["-A", "INPUT", "-i", bridge, "-j", inbound],
    ]
    return rules


def stale_chain_ids(chain_lines: Sequence[str], network_ids: Sequence[str]) -> list[str]:
    """Network ids (12 characters) of our chains whose Docker network is gone.

    `chain_lines`: `iptables -S` lines, listed *before* `network_ids` (every network's
    full id), so a network created in between cannot be taken for a gone one. Chains
    of removed networks stay behind when the egress service could not clean up (killed,
    the engine or the host went down).
    """
    ids = set()
    for line in chain_lines:
        words = line.split()
        if words[:1] == ["-N"] and len(words) == 2 and words[1].startswith(CHAIN_PREFIX):
            short = words[1][len(CHAIN_PREFIX):].removeprefix("IN-")
            if not any(network.startswith(short) for network in network_ids):
                ids.add(short)
    return sorted(ids)


def apply_script(
    rules: Sequence[Sequence[str]], current: Mapping[str, Sequence[str] | None]
) -> str | None:
    """An `iptables-restore --noflush` script that makes the host's rules `rules`.

    `current`: `iptables -S <chain>` lines of every chain `rules` names (None: no such
    chain). Our chains are declared afresh (which empties them) only when they differ;
    a missing jump is inserted first in its hook chain. None: nothing to change.
    """
    own = [rule[1] for rule in rules if rule[0] == "-N"]
    lines: list[str] = []
    for chain in own:
        wanted = [" ".join(rule) for rule in rules if rule[1] == chain]
        if list(current.get(chain) or ()) != wanted:
            lines.append(f":{chain} - [0:0]")
            lines += [line for line in wanted if line.startswith("-A ")]
    for rule in rules:
        hook = rule[1]
        if hook in own:
            continue
        if current.get(hook) is None:
            raise EgressError(
                f"the chain {hook} does not exist. Is Docker managing the firewall here "
                '("iptables": false in daemon.json turns that off)?'
            )
        if " ".join(rule) not in current[hook]:
            lines.append(" ".join(["-I", hook, "1", *rule[2:]]))
    if not lines:
        return None
    return "\n".join(["*filter", *lines, "COMMIT"]) + "\n"


def remove_script(chains: Chains, current: Mapping[str, Sequence[str] | None]) -> str | None:
    """An `iptables-restore --noflush` script that removes our chains and every jump to them.

    `current`: `iptables -S` lines of our two chains and of the chains that may jump to
    them (DOCKER-USER, FORWARD, INPUT). None: nothing to remove.
    """
    ours = (chains.forward, chains.input)
    lines = []
    for chain, listing in current.items():
        if chain in ours:
            continue
        for line in listing or ():
            words = line.split()
            if words[:2] == ["-A", chain] and words[-2:-1] == ["-j"] and words[-1] in ours:
                lines.append(" ".join(["-D", *words[1:]]))
    for chain in ours:
        if current.get(chain) is not None:
            lines += [f"-F {chain}", f"-X {chain}"]
    if not lines:
        return None
    return "\n".join(["*filter", *lines, "COMMIT"]) + "\n"


def resolvers_from(resolv_conf: str) -> tuple[str, ...]:
    """The non-loopback `nameserver` addresses of a resolv.conf (scope ids dropped)."""
    servers = []
    for line in resolv_conf.splitlines():
        words = line.split()
        if len(words) < 2 or words[0] != "nameserver":
            continue
        try:
            address = ipaddress.ip_address(words[1].split("%", 1)[0])
        except ValueError:
            continue
        if not address.is_loopback and str(address) not in servers:
            servers.append(str(address))
    return tuple(servers)


# ---------------------------------------------------------------- the Docker network


@dataclass(frozen=True)
class UsersNetwork:
    name: str
    id: str
    bridge: str
    subnets: tuple[str, ...]

    def subnet(self, version: int) -> str | None:
        return next(
            (s for s in self.subnets if ipaddress.ip_network(s, strict=False).version == version),
            None,
        )


def network_from_inspect(attrs: Mapping) -> UsersNetwork:
    """The users' network from `docker network inspect` data (a bridge network)."""
    name = attrs.get("Name", "?")
    if attrs.get("Driver") != "bridge":
        raise EgressError(
            f"network {name} uses the {attrs.get('Driver')!r} driver; the egress policy "
            "works on bridge networks (set HUB_EGRESS=all to run without it)."
        )
    options = attrs.get("Options") or {}
    bridge = options.get("com.docker.network.bridge.name") or f"br-{attrs['Id'][:12]}"
    subnets = tuple(
        config["Subnet"] for config in (attrs.get("IPAM") or {}).get("Config") or ()
        if config.get("Subnet")
    )
    if not subnets:
        raise EgressError(f"network {name} has no subnet.")
    return UsersNetwork(name=name, id=attrs["Id"], bridge=bridge, subnets=subnets)


def network_ids() -> list[str]:
    """The full id of every Docker network on this host."""
    import docker

    client = docker.from_env()
    try:
        return [network.id for network in client.networks.list()]
    finally:
        client.close()


def lookup_network(name: str) -> UsersNetwork:
    import docker  # the Docker SDK (installed with dockerspawner), only where it is needed

    try:
        client = docker.from_env()
        try:
            return network_from_inspect(client.networks.get(name).attrs)
        finally:
            client.close()
    except docker.errors.NotFound:
        raise EgressError(f"the Docker network {name} does not exist (yet).") from None
    except docker.errors.DockerException as error:
        raise EgressError(f"cannot ask Docker about network {name}: {error}") from None


# ---------------------------------------------------------------- the host's firewall


Runner = Callable[..., subprocess.CompletedProcess]


class Firewall:
    """One iptables command (a family and a backend: iptables-nft, ip6tables-legacy...)."""

    def __init__(self, command: str, run: Runner = subprocess.run):
        self.command = command
        self.run = run

    def listing(self, chain: str) -> list[str] | None:
        """`-S` of one chain, or of the whole filter table for ""; None if it fails."""
        result = self.run(
            [self.command, "-w", "-t", "filter", "-S", *([chain] if chain else [])],
            capture_output=True, text=True,
        )
        if result.returncode != 0:
            return None
        lines = (line.strip() for line in result.stdout.splitlines())
        return [line for line in lines if line and not line.startswith("#")]

    def restore(self, script: str) -> None:
        result = self.run(
            [f"{self.command}-restore", "-w", "--noflush"], input=script,
            capture_output=True, text=True,
        )
        if result.returncode != 0:
            raise EgressError(
                f"{self.command}-restore failed: {result.stderr.strip()}\nscript:\n{script}"
            )


def find_firewall(run: Runner = subprocess.run) -> str:
    """The iptables backend Docker writes with: `nft` or `legacy` (the host's iptables is
    one of them). The one whose FORWARD chain jumps to DOCKER-USER; nftables is asked
    first, so a legacy table is never touched (or its kernel module loaded) without need."""
    for backend in ("nft", "legacy"):
        command = f"iptables-{backend}"
        if not shutil.which(command):
            continue
        forward = Firewall(command, run).listing("FORWARD")
        if forward is not None and f"-A FORWARD -j {DOCKER_USER}" in forward:
            return backend
    raise EgressError(
        "Docker's DOCKER-USER chain is missing: Docker does not manage this host's firewall "
        '("iptables": false in daemon.json?), or this container lacks NET_ADMIN or the host '
        "network. The egress policy cannot be enforced; set HUB_EGRESS=all to run without it."
    )


class Enforcer:
    """Keeps one policy in place for one network, and takes it away again."""

    def __init__(self, policy: str, resolvers: Sequence[str], run: Runner = subprocess.run,
                 allowed: Sequence[Destination] = ()):
        self.policy = policy
        self.resolvers = tuple(resolvers)
        self.allowed = tuple(allowed)
        self.run = run
        self.applied: UsersNetwork | None = None

    def _families(self, network: UsersNetwork):
        """(subnet, firewall, forward hook) for each family the network has addresses of.
        Docker 20.10 manages ip6tables only when told to; without its DOCKER-USER there,
        our IPv6 chain hangs off FORWARD itself."""
        backend = find_firewall(self.run)
        for version, base in ((4, "iptables"), (6, "ip6tables")):
            subnet = network.subnet(version)
            if subnet is None:
                continue
            firewall = Firewall(f"{base}-{backend}", self.run)
            hook = DOCKER_USER if firewall.listing(DOCKER_USER) is not None else "FORWARD"
            yield subnet, firewall, hook

    def ensure(self, network: UsersNetwork) -> bool:
        """Put the rules in place (remove them for `all`); True if anything changed."""
        if self.applied and self.applied.id != network.id:
            self.remove(self.applied)  # the network was recreated
        changed = False
        chains = chains_for(network.id)
        try:
            families = list(self._families(network))
        except EgressError:
            if self.policy != "all":
                raise
            families = []  # no Docker firewall here: nothing of ours to remove either
        for subnet, firewall, hook in families:
            if self.policy == "all":
                changed |= self._remove_from(firewall, chains)
                continue
            rules = egress_rules(
                self.policy, network.bridge, subnet, chains, self.resolvers, forward_hook=hook,
                allowed=self.allowed,
            )
            names = sorted({rule[1] for rule in rules})
            script = apply_script(rules, {name: firewall.listing(name) for name in names})
            if script is None:
                continue
            firewall.restore(script)
            if apply_script(rules, {name: firewall.listing(name) for name in names}):
                raise EgressError(f"{firewall.command} did not keep the rules:\n{script}")
            changed = True
        self.applied = network
        return changed

    def _remove_from(self, firewall: Firewall, chains: Chains) -> bool:
        names = (chains.forward, chains.input, DOCKER_USER, "FORWARD", "INPUT")
        script = remove_script(chains, {name: firewall.listing(name) for name in names})
        if script is None:
            return False
        firewall.restore(script)
        return True

    def sweep(self, network_ids: Callable[[], Sequence[str]]) -> list[str]:
        """Remove our chains of networks that no longer exist; their ids."""
        removed = []
        for command in (f"{base}-{find_firewall(self.run)}" for base in ("iptables",
                                                                          "ip6tables")):
            firewall = Firewall(command, self.run)
            listing = firewall.listing("")
            if listing is None:
                continue
            for short in stale_chain_ids(listing, network_ids()):
                if self._remove_from(firewall, chains_for(short)):
                    removed.append(short)
        return sorted(set(removed))

    def remove(self, network: UsersNetwork | None = None) -> bool:
        """Remove our chains of `network` (default: the one in place); True if any were."""
        network = network or self.applied
        if network is None:
            return False
        chains = chains_for(network.id)
        removed = False
        for _, firewall, _ in self._families(network):
            removed |= self._remove_from(firewall, chains)
        if network is self.applied:
            self.applied = None
        return removed


def describe(policy: str, network: UsersNetwork, resolvers: Sequence[str],
             allowed: Sequence[Destination] = ()) -> str:
    where = f"network {network.name} ({network.bridge}, {', '.join(network.subnets)})"
    if policy == "all":
        return f"egress policy all on {where}: no filtering"
    also = f"; also {', '.join(map(str, allowed))}" if allowed else ""
    if policy == "none":
        return (f"egress policy none on {where}: nothing beyond the network itself, "
                f"not this host{also}")
    return (f"egress policy internet on {where}: the internet, not private or link-local "
            f"addresses, not this host; DNS to {', '.join(resolvers) or 'public servers only'}"
            f"{also}")


def host_resolvers(path: str = "/etc/resolv.conf") -> tuple[tuple[str, ...], str | None]:
    """The resolvers Docker forwards user containers' DNS queries to, as far as the host's
    resolv.conf tells (in the host's network namespace this container gets the host's
    file), and a warning when it cannot tell."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    servers = resolvers_from(text)
    if servers or not any(line.split()[:1] == ["nameserver"] for line in text.splitlines()):
        # No nameserver at all: Docker falls back to public servers, which `internet` allows.
        return servers, None
    # Only a local stub (systemd-resolved's 127.0.0.53): Docker forwards to the stub's
    # upstream servers, which are not visible here. Keep DNS working to any of them.
    return BLOCKED_NETWORKS[4] + BLOCKED_NETWORKS[6], (
        f"{path} names only local resolvers (systemd-resolved?), so the servers Docker "
        "forwards DNS to are unknown here: DNS (port 53) stays open to private addresses."
    )


def run_service(
    network_name: str, policy: str, interval: float, ready_file: str = READY_FILE,
    allowed: Sequence[Destination] = (),
) -> int:
    """The `egress` service: keep the policy in place until SIGTERM, then remove it."""
    stop = threading.Event()

    def log(message: str) -> None:
        print(f"personal-hub egress: {message}", file=sys.stderr, flush=True)

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    ready = Path(ready_file)
    ready.unlink(missing_ok=True)
    resolvers, warning = host_resolvers()
    if warning and policy == "internet":
        log(f"warning: {warning}")
    enforcer = Enforcer(policy, resolvers if policy == "internet" else (), allowed=allowed)
    try:
        swept = enforcer.sweep(network_ids)
    except Exception as error:  # noqa: BLE001 - the policy itself matters more
        log(f"could not look for rules of removed networks: {error}")
    else:
        if swept:
            log(f"removed the rules of networks that no longer exist: {', '.join(swept)}")
    last_problem = None
    try:
        while not stop.is_set():
            try:
                network = lookup_network(network_name)
                first = enforcer.applied is None
                if enforcer.ensure(network) or first:
                    log(describe(policy, network, enforcer.resolvers, allowed))
                ready.touch()
                last_problem = None
            except EgressError as error:
                ready.unlink(missing_ok=True)
                if str(error) != last_problem:
                    log(f"not in place: {error}")
                    last_problem = str(error)
            # Until the rules are in place, try again soon.
            stop.wait(interval if ready.exists() else min(interval, 2.0))
    finally:
        ready.unlink(missing_ok=True)
        network = enforcer.applied
        try:
            if enforcer.remove():
                log(f"removed the egress rules of network {network.name}")
        except EgressError as error:
            log(f"could not remove the rules: {error}")
            return 1
    return 0
