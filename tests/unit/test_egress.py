"""HUB_EGRESS: the iptables rules of each policy (exactly), the scripts that put them in
place and take them away, the network lookup, and the setting itself. No root needed: the
host's iptables is played by a small in-memory stand-in."""

from __future__ import annotations

import subprocess

import pytest

from personal_hub import egress
from personal_hub.cli import main
from personal_hub.egress import (
    Chains,
    EgressError,
    Enforcer,
    UsersNetwork,
    apply_script,
    chains_for,
    egress_rules,
    host_resolvers,
    network_from_inspect,
    remove_script,
    resolvers_from,
)
from personal_hub.settings import SettingsError, load_settings

NETWORK_ID = "4f0e2a1b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f"
BRIDGE = "br-4f0e2a1b9c8d"
FWD, INP = "PERSONAL-HUB-4f0e2a1b9c8d", "PERSONAL-HUB-IN-4f0e2a1b9c8d"
CHAINS = Chains(forward=FWD, input=INP)
ESTABLISHED = ["-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED"]


def test_chain_names_fit_iptables():
    chains = chains_for(NETWORK_ID)
    assert chains == CHAINS
    assert max(len(chains.forward), len(chains.input)) <= 28


def test_internet_rules():
    rules = egress_rules("internet", BRIDGE, "10.214.5.0/24", CHAINS, ["192.168.1.1", "9.9.9.9"])
    dns = [
        ["-A", chain, "-d", server, "-p", protocol, "-m", protocol, "--dport", "53",
         "-j", "RETURN"]
        for chain in (FWD, INP)
        for server in ("192.168.1.1/32", "9.9.9.9/32")
        for protocol in ("udp", "tcp")
    ]
    assert rules == [
        ["-N", FWD],
        ["-A", FWD, "-o", BRIDGE, "-j", "RETURN"],
        ["-A", FWD, *ESTABLISHED, "-j", "RETURN"],
        *dns[:4],
        ["-A", FWD, "-d", "10.0.0.0/8", "-j", "DROP"],
        ["-A", FWD, "-d", "172.16.0.0/12", "-j", "DROP"],
        ["-A", FWD, "-d", "192.168.0.0/16", "-j", "DROP"],
        ["-A", FWD, "-d", "100.64.0.0/10", "-j", "DROP"],
        ["-A", FWD, "-d", "169.254.0.0/16", "-j", "DROP"],
        ["-N", INP],
        ["-A", INP, *ESTABLISHED, "-j", "RETURN"],
        *dns[4:],
        ["-A", INP, "-j", "DROP"],
        ["-A", "DOCKER-USER", "-i", BRIDGE, "-j", FWD],
        ["-A", "INPUT", "-i", BRIDGE, "-j", INP],
    ]


def test_none_rules():
    assert egress_rules("none", BRIDGE, "10.214.5.0/24", CHAINS, ["192.168.1.1"]) == [
        ["-N", FWD],
        ["-A", FWD, "-o", BRIDGE, "-j", "RETURN"],
        ["-A", FWD, *ESTABLISHED, "-j", "RETURN"],
        ["-A", FWD, "-j", "DROP"],
        ["-N", INP],
        ["-A", INP, *ESTABLISHED, "-j", "RETURN"],
        ["-A", INP, "-j", "DROP"],
        ["-A", "DOCKER-USER", "-i", BRIDGE, "-j", FWD],
        ["-A", "INPUT", "-i", BRIDGE, "-j", INP],
    ]


def test_all_has_no_rules():
    assert egress_rules("all", BRIDGE, "10.214.5.0/24", CHAINS, ["192.168.1.1"]) == []


def test_ipv6_rules_use_ipv6_ranges_and_resolvers_only():
    rules = egress_rules(
        "internet", BRIDGE, "fd00:1::/64", CHAINS, ["192.168.1.1", "fd00::53"],
        forward_hook="FORWARD",
    )
    assert ["-A", FWD, "-d", "fd00::53/128", "-p", "udp", "-m", "udp", "--dport", "53",
            "-j", "RETURN"] in rules
    assert not any("192.168.1.1/32" in rule for rule in rules)
    assert [rule[3] for rule in rules if rule[-1] == "DROP" and rule[1] == FWD] == [
        "fc00::/7", "fe80::/10"
    ]
    assert ["-A", "FORWARD", "-i", BRIDGE, "-j", FWD] in rules


def test_unknown_policy_is_refused():
    with pytest.raises(ValueError, match="not an egress policy"):
        egress_rules("lan", BRIDGE, "10.214.5.0/24", CHAINS)


# ---------------------------------------------------------------- the scripts


def listing_of(rules, chain):
    return [" ".join(rule) for rule in rules if rule[1] == chain]


def test_apply_script_from_scratch_is_one_transaction():
    rules = egress_rules("none", BRIDGE, "10.214.5.0/24", CHAINS)
    script = apply_script(rules, {FWD: None, INP: None, "DOCKER-USER": ["-N DOCKER-USER",
                                  "-A DOCKER-USER -j RETURN"], "INPUT": ["-P INPUT ACCEPT"]})
    assert script == "\n".join([
        "*filter",
        f":{FWD} - [0:0]",
        f"-A {FWD} -o {BRIDGE} -j RETURN",
        f"-A {FWD} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN",
        f"-A {FWD} -j DROP",
        f":{INP} - [0:0]",
        f"-A {INP} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN",
        f"-A {INP} -j DROP",
        f"-I DOCKER-USER 1 -i {BRIDGE} -j {FWD}",
        f"-I INPUT 1 -i {BRIDGE} -j {INP}",
        "COMMIT",
    ]) + "\n"


def test_apply_script_is_empty_when_everything_is_in_place():
    rules = egress_rules("internet", BRIDGE, "10.214.5.0/24", CHAINS, ["10.0.0.53"])
    current = {chain: listing_of(rules, chain) for chain in (FWD, INP, "DOCKER-USER", "INPUT")}
    assert apply_script(rules, current) is None


def test_apply_script_repairs_only_what_is_missing():
    rules = egress_rules("internet", BRIDGE, "10.214.5.0/24", CHAINS)
    current = {chain: listing_of(rules, chain) for chain in (FWD, INP, "INPUT")}
    current["DOCKER-USER"] = ["-N DOCKER-USER", "-A DOCKER-USER -j RETURN"]  # flushed
    assert apply_script(rules, current) == (
        f"*filter\n-I DOCKER-USER 1 -i {BRIDGE} -j {FWD}\nCOMMIT\n"
    )
    current = {chain: listing_of(rules, chain) for chain in (FWD, INP, "DOCKER-USER", "INPUT")}
    current[FWD] = current[FWD][:-1]  # a rule went missing: the chain is written afresh
    script = apply_script(rules, current)
    assert script.splitlines()[1] == f":{FWD} - [0:0]"
    assert f":{INP} - [0:0]" not in script and "-I " not in script


def test_apply_script_needs_dockers_chain():
    rules = egress_rules("internet", BRIDGE, "10.214.5.0/24", CHAINS)
    with pytest.raises(EgressError, match="DOCKER-USER does not exist"):
        apply_script(rules, {FWD: None, INP: None, "DOCKER-USER": None, "INPUT": []})


def test_remove_script_takes_every_jump_and_both_chains():
    current = {
        FWD: [f"-N {FWD}", f"-A {FWD} -j DROP"],
        INP: [f"-N {INP}"],
        "DOCKER-USER": ["-N DOCKER-USER", f"-A DOCKER-USER -i {BRIDGE} -j {FWD}",
                        f"-A DOCKER-USER -i {BRIDGE} -j {FWD}", "-A DOCKER-USER -j RETURN"],
        "FORWARD": ["-P FORWARD DROP", "-A FORWARD -j DOCKER-USER"],
        "INPUT": ["-P INPUT ACCEPT", f"-A INPUT -i {BRIDGE} -j {INP}",
                  "-A INPUT -i eth0 -j ACCEPT"],
    }
    assert remove_script(CHAINS, current) == "\n".join([
        "*filter",
        f"-D DOCKER-USER -i {BRIDGE} -j {FWD}",
        f"-D DOCKER-USER -i {BRIDGE} -j {FWD}",
        f"-D INPUT -i {BRIDGE} -j {INP}",
        f"-F {FWD}", f"-X {FWD}", f"-F {INP}", f"-X {INP}",
        "COMMIT",
    ]) + "\n"


def test_remove_script_is_empty_when_nothing_is_there():
    current = {
        FWD: None, INP: None, "DOCKER-USER": ["-N DOCKER-USER"], "INPUT": ["-P INPUT ACCEPT"]
    }
    assert remove_script(CHAINS, current) is None


# ---------------------------------------------------------------- resolvers, network


def test_resolvers_from_resolv_conf():
    text = ("# comment\nnameserver 192.168.1.1\nnameserver 127.0.0.53\n"
            "nameserver fe80::1%eth0\nnameserver 192.168.1.1\nsearch lan\nnameserver bogus\n")
    assert resolvers_from(text) == ("192.168.1.1", "fe80::1")


def test_host_resolvers(tmp_path):
    conf = tmp_path / "resolv.conf"
    conf.write_text("nameserver 10.0.0.53\n")
    assert host_resolvers(str(conf)) == (("10.0.0.53",), None)
    # Nothing at all: Docker falls back to public servers, which `internet` allows anyway.
    conf.write_text("options ndots:0\n")
    assert host_resolvers(str(conf)) == ((), None)
    # Only systemd-resolved's stub: its upstream servers are unknown; DNS stays working.
    conf.write_text("nameserver 127.0.0.53\n")
    servers, warning = host_resolvers(str(conf))
    assert servers == egress.BLOCKED_NETWORKS[4] + egress.BLOCKED_NETWORKS[6]
    assert "port 53" in warning


def inspect_data(**changes):
    attrs = {
        "Name": "jupyterhub-net",
        "Id": NETWORK_ID,
        "Driver": "bridge",
        "Options": {},
        "IPAM": {"Config": [{"Subnet": "10.214.5.0/24", "Gateway": "10.214.5.1"}]},
    }
    attrs.update(changes)
    return attrs


def test_network_from_inspect():
    network = network_from_inspect(inspect_data())
    assert network == UsersNetwork("jupyterhub-net", NETWORK_ID, BRIDGE, ("10.214.5.0/24",))
    assert network.subnet(4) == "10.214.5.0/24" and network.subnet(6) is None
    named = network_from_inspect(inspect_data(Options={"com.docker.network.bridge.name": "hub0"}))
    assert named.bridge == "hub0"
    dual = network_from_inspect(inspect_data(IPAM={"Config": [
        {"Subnet": "10.214.5.0/24"}, {"Subnet": "fd00:1::/64"}]}))
    assert dual.subnet(6) == "fd00:1::/64"


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"Driver": "overlay"}, "bridge networks"), ({"IPAM": {"Config": []}}, "no subnet")],
)
def test_network_that_cannot_be_filtered(changes, message):
    with pytest.raises(EgressError, match=message):
        network_from_inspect(inspect_data(**changes))


# ---------------------------------------------------------------- the enforcer


class FakeIptables:
    """iptables-nft -S / iptables-nft-restore --noflush, for the filter table, in memory."""

    def __init__(self, docker_user: bool = True):
        self.chains = {"INPUT": ["-P INPUT ACCEPT"], "FORWARD": ["-P FORWARD DROP"]}
        if docker_user:
            self.chains["FORWARD"].append("-A FORWARD -j DOCKER-USER")
            self.chains["DOCKER-USER"] = ["-N DOCKER-USER", "-A DOCKER-USER -j RETURN"]
        self.restores = 0

    def __call__(self, command, input=None, **kwargs):
        name = command[0]
        if name == "iptables-nft" and command[-1] == "-S":  # the whole table
            lines = [line for rules in self.chains.values() for line in rules]
            return subprocess.CompletedProcess(command, 0, "\n".join(lines) + "\n")
        if name == "iptables-nft" and command[-2] == "-S":
            chain = command[-1]
            if chain not in self.chains:
                return subprocess.CompletedProcess(command, 1, "", "no chain")
            return subprocess.CompletedProcess(command, 0, "\n".join(self.chains[chain]) + "\n")
        if name == "iptables-nft-restore":
            self.restores += 1
            for line in input.splitlines()[1:-1]:
                self.execute(line)
            return subprocess.CompletedProcess(command, 0, "", "")
        return subprocess.CompletedProcess(command, 1, "", f"{name}: not here")

    def execute(self, line):
        words = line.split()
        if line.startswith(":"):
            chain = line[1:].split()[0]
            self.chains[chain] = [f"-N {chain}"]
        elif words[0] == "-A":
            self.chains[words[1]].append(line)
        elif words[0] == "-I":
            rule = " ".join(["-A", words[1], *words[3:]])
            listing = self.chains[words[1]]
            head = 1 if listing and listing[0].startswith(("-N", "-P")) else 0
            listing.insert(head, rule)
        elif words[0] == "-D":
            self.chains[words[1]].remove(" ".join(["-A", *words[1:]]))
        elif words[0] == "-F":
            self.chains[words[1]] = self.chains[words[1]][:1]
        elif words[0] == "-X":
            del self.chains[words[1]]

    def ours(self):
        return {chain: rules for chain, rules in self.chains.items()
                if chain.startswith("PERSONAL-HUB-")}


@pytest.fixture
def fake(monkeypatch):
    fake = FakeIptables()
    monkeypatch.setattr(egress.shutil, "which", lambda name: f"/usr/sbin/{name}")
    return fake


NETWORK = UsersNetwork("jupyterhub-net", NETWORK_ID, BRIDGE, ("10.214.5.0/24",))


def test_enforcer_applies_once_then_keeps_and_repairs(fake):
    enforcer = Enforcer("internet", ["10.0.0.53"], run=fake)
    assert enforcer.ensure(NETWORK) is True
    expected = egress_rules("internet", BRIDGE, "10.214.5.0/24", CHAINS, ["10.0.0.53"])
    assert fake.ours() == {FWD: listing_of(expected, FWD), INP: listing_of(expected, INP)}
    assert fake.chains["DOCKER-USER"][1] == f"-A DOCKER-USER -i {BRIDGE} -j {FWD}"
    assert fake.chains["INPUT"][1] == f"-A INPUT -i {BRIDGE} -j {INP}"
    # Idempotent: a second pass writes nothing.
    restores = fake.restores
    assert enforcer.ensure(NETWORK) is False and fake.restores == restores
    # Someone flushes DOCKER-USER: the next pass puts the jump back, once.
    fake.chains["DOCKER-USER"] = ["-N DOCKER-USER", "-A DOCKER-USER -j RETURN"]
    assert enforcer.ensure(NETWORK) is True
    assert fake.chains["DOCKER-USER"].count(f"-A DOCKER-USER -i {BRIDGE} -j {FWD}") == 1


def test_enforcer_switches_policy_and_removes_everything(fake):
    Enforcer("internet", [], run=fake).ensure(NETWORK)
    none = Enforcer("none", [], run=fake)
    assert none.ensure(NETWORK) is True
    assert fake.ours()[FWD][-1] == f"-A {FWD} -j DROP"
    assert none.remove() is True
    assert fake.ours() == {}
    assert fake.chains["DOCKER-USER"] == ["-N DOCKER-USER", "-A DOCKER-USER -j RETURN"]
    assert fake.chains["INPUT"] == ["-P INPUT ACCEPT"]


def test_policy_all_removes_leftovers(fake):
    Enforcer("internet", [], run=fake).ensure(NETWORK)  # e.g. a killed service's rules
    assert Enforcer("all", [], run=fake).ensure(NETWORK) is True
    assert fake.ours() == {}


def test_recreated_network_moves_the_rules(fake):
    enforcer = Enforcer("none", [], run=fake)
    enforcer.ensure(NETWORK)
    renewed = UsersNetwork("jupyterhub-net", "a" * 64, "br-aaaaaaaaaaaa", ("10.214.6.0/24",))
    enforcer.ensure(renewed)
    assert set(fake.ours()) == {"PERSONAL-HUB-aaaaaaaaaaaa", "PERSONAL-HUB-IN-aaaaaaaaaaaa"}
    assert f"-j {FWD}" not in "\n".join(fake.chains["DOCKER-USER"])


def test_sweep_removes_only_the_rules_of_networks_that_are_gone(fake):
    Enforcer("internet", [], run=fake).ensure(NETWORK)  # a network that still exists
    gone = UsersNetwork("old-net", "b" * 64, "br-bbbbbbbbbbbb", ("10.214.7.0/24",))
    Enforcer("none", [], run=fake).ensure(gone)  # left behind by a killed service
    assert Enforcer("internet", [], run=fake).sweep(lambda: [NETWORK_ID, "c" * 64]) == [
        "bbbbbbbbbbbb"]
    assert set(fake.ours()) == {FWD, INP}
    hooks = "\n".join(fake.chains["DOCKER-USER"] + fake.chains["INPUT"])
    assert "bbbbbbbbbbbb" not in hooks and FWD in hooks


def test_stale_chains_are_told_by_network_id_listed_after_the_chains():
    lines = ["-P INPUT ACCEPT", "-N DOCKER-USER", "-N PERSONAL-HUB-aaaaaaaaaaaa",
             "-N PERSONAL-HUB-IN-aaaaaaaaaaaa", "-N PERSONAL-HUB-bbbbbbbbbbbb",
             "-A PERSONAL-HUB-bbbbbbbbbbbb -j DROP", "-N OTHER-cccccccccccc"]
    assert egress.stale_chain_ids(lines, ["a" * 64]) == ["bbbbbbbbbbbb"]
    assert egress.stale_chain_ids(lines, ["a" * 64, "b" * 64]) == []


def test_without_dockers_chain_internet_fails_and_all_does_nothing(monkeypatch):
    fake = FakeIptables(docker_user=False)
    monkeypatch.setattr(egress.shutil, "which", lambda name: f"/usr/sbin/{name}")
    with pytest.raises(EgressError, match="HUB_EGRESS=all"):
        Enforcer("internet", [], run=fake).ensure(NETWORK)
    assert Enforcer("all", [], run=fake).ensure(NETWORK) is False


# ---------------------------------------------------------------- the setting


def test_egress_setting(make_settings):
    assert make_settings().egress == "internet"
    assert make_settings(HUB_EGRESS="").egress == "internet"
    assert make_settings(HUB_EGRESS="None").egress == "none"
    assert make_settings(HUB_EGRESS="all").egress == "all"


def test_egress_setting_mistake(environ):
    with pytest.raises(SettingsError) as raised:
        load_settings({**environ, "HUB_EGRESS": "lan-only"})
    [problem] = raised.value.problems
    assert problem.variable == "HUB_EGRESS"
    assert problem.message == "'lan-only' is not one of internet, all, none."
    assert "internet" in problem.fix and "none" in problem.fix and "all" in problem.fix


def test_egress_in_the_summary(make_settings):
    assert "user egress:    none (the hub and the proxy only)" in make_settings(
        HUB_EGRESS="none"
    ).summary()
    local = make_settings(HUB_SPAWNER="local").summary()
    assert "user egress:    not filtered (local processes)" in local


def test_egress_command_refuses_an_unknown_policy(capsys):
    with pytest.raises(SystemExit) as raised:
        main(["egress", "--policy", "lan"])
    assert raised.value.code == 2
    assert "invalid choice: 'lan'" in capsys.readouterr().err


# --- HUB_EGRESS_ALLOW: destinations reachable whatever the policy ---------------------

ALLOWED = (egress.Destination("192.168.1.20/32", 11434), egress.Destination("10.0.5.0/24"),
           egress.Destination("fd00::5/128", 5432))


def allow(chain: str) -> list[list[str]]:
    return [
        *[["-A", chain, "-d", "192.168.1.20/32", "-p", protocol, "-m", protocol, "--dport",
           "11434", "-j", "RETURN"] for protocol in ("tcp", "udp")],
        ["-A", chain, "-d", "10.0.5.0/24", "-j", "RETURN"],
    ]


def test_allowed_destinations_come_before_anything_is_dropped():
    rules = egress_rules("internet", BRIDGE, "10.214.5.0/24", CHAINS, [], allowed=ALLOWED)
    assert rules[:6] == [
        ["-N", FWD],
        ["-A", FWD, "-o", BRIDGE, "-j", "RETURN"],
        ["-A", FWD, *ESTABLISHED, "-j", "RETURN"],
        *allow(FWD),
    ]
    assert rules[6] == ["-A", FWD, "-d", "10.0.0.0/8", "-j", "DROP"]
    inbound = rules[rules.index(["-N", INP]):]
    # The Docker host itself too (a model server on the host): before its DROP.
    assert inbound[:5] == [["-N", INP], ["-A", INP, *ESTABLISHED, "-j", "RETURN"], *allow(INP)]
    assert inbound[5] == ["-A", INP, "-j", "DROP"]


def test_allowed_destinations_under_none_and_by_family():
    rules = egress_rules("none", BRIDGE, "10.214.5.0/24", CHAINS, [], allowed=ALLOWED)
    assert rules[3:6] == allow(FWD) and rules[6] == ["-A", FWD, "-j", "DROP"]
    assert egress_rules("all", BRIDGE, "10.214.5.0/24", CHAINS, [], allowed=ALLOWED) == []
    six = egress_rules("none", BRIDGE, "fd00:1::/64", CHAINS, [], allowed=ALLOWED)
    assert ["-A", FWD, "-d", "fd00::5/128", "-p", "tcp", "-m", "tcp", "--dport", "5432",
            "-j", "RETURN"] in six
    assert not any("192.168.1.20/32" in rule for rule in six)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("192.168.1.20:11434, 10.0.5.0/24 [fd00::5]:5432", ALLOWED),
        ("192.168.1.20", (egress.Destination("192.168.1.20/32"),)),
        ("fd00::/64", (egress.Destination("fd00::/64"),)),
        ("", ()),
    ],
)
def test_allow_setting(make_settings, text, expected):
    assert make_settings(HUB_EGRESS_ALLOW=text).egress_allow == expected


@pytest.mark.parametrize("text", ["nas.lan:445", "192.168.1.20:0", "192.168.1.20:99999",
                                  "192.168.1.300", "[fd00::5]x", "10.0.0.0/33"])
def test_allow_setting_mistakes(environ, text):
    with pytest.raises(SettingsError) as raised:
        load_settings({**environ, "HUB_EGRESS_ALLOW": text})
    [problem] = raised.value.problems
    assert problem.variable == "HUB_EGRESS_ALLOW"
    assert "192.168.1.20:11434" in problem.fix  # says how it is written


def test_allowed_destinations_in_the_summary(make_settings):
    summary = make_settings(HUB_EGRESS_ALLOW="192.168.1.20:11434,[fd00::5]:5432").summary()
    assert ("user egress:    internet (not private or link-local addresses, not the Docker "
            "host); also 192.168.1.20:11434, [fd00::5]:5432") in summary


def test_egress_command_refuses_a_wrong_destination(capsys):
    assert main(["egress", "--allow", "nas.lan:445"]) == 2
    assert "HUB_EGRESS_ALLOW" in capsys.readouterr().err
