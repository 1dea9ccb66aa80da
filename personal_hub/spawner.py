"""Spawner policy: small overridable methods on a DockerSpawner subclass.

A new policy is a subclass overriding one method, for example::

    class BigMemoryForAdmins(PersonalDockerSpawner):
        def user_mem_limit(self):
            return "8G" if self.user.admin else super().user_mem_limit()

`PersonalSwarmSpawner` runs the same policy as one Docker Swarm service per user, on any
node of a swarm. `PersonalLocalSpawner` applies the same environment policy to local
processes, for trying the hub (and testing it) on a machine without Docker.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor

import aiohttp
from docker.errors import APIError, NotFound
from docker.types import (
    ContainerSpec,
    DriverConfig,
    EndpointSpec,
    Mount,
    Placement,
    Resources,
    RestartPolicy,
    TaskTemplate,
)
from dockerspawner import DockerSpawner, SwarmSpawner
from jupyterhub.httpclient import fetch
from jupyterhub.spawner import SimpleLocalProcessSpawner
from tornado import web
from traitlets import Bool, Dict, Integer, List, Unicode, default
from traitlets.config import LoggingConfigurable

from . import homes
from .admission import StartCost, StartQueue, machine_cores, queue_message
from .orphans import SERVER_LABEL
from .profiles import Profile, chosen_profile, options_form
from .variables import default_value

# git's e-mail address for a user who set none (RFC 2606: a domain that never exists).
GIT_EMAIL_VARIABLE = "EMAIL"
PLACEHOLDER_MAIL_DOMAIN = "personal-hub.invalid"
# The OpenAI clients' (and LiteLLM's) API address.
OPENAI_BASE_URL_VARIABLE = "OPENAI_BASE_URL"
# Docker's answer to a GPU request on a host without a GPU runtime.
NO_GPU_DRIVER = "could not select device driver"
# What the single-user image's jupyter_server_config.py reads (docker/singleuser).
AI_MODEL_VARIABLE = "PERSONAL_HUB_AI_MODEL"
AI_BASE_URL_VARIABLE = "PERSONAL_HUB_AI_BASE_URL"
DATA_CONNECTIONS_VARIABLE = "PERSONAL_HUB_DATA_CONNECTIONS"


def server_environment(timezone: str, ai_api_keys: dict[str, str],
                       data_connections: dict[str, str], ai_model: str | None,
                       ai_base_url: str | None) -> dict[str, str]:
    """What a user's code gets from the hub's settings, in a server or a scheduled run:
    TZ, the AI keys that are set, the team's connections and the assistant's model (read
    by the image's jupyter_server_config.py and team_data)."""
    env = {"TZ": timezone}
    env.update({name: key for name, key in ai_api_keys.items() if key})
    if data_connections:
        env[DATA_CONNECTIONS_VARIABLE] = json.dumps(data_connections)
    if ai_model:
        env[AI_MODEL_VARIABLE] = ai_model
    if ai_base_url:
        env[AI_BASE_URL_VARIABLE] = ai_base_url
        # The OpenAI clients in users' own code (and LiteLLM) use the same server.
        env[OPENAI_BASE_URL_VARIABLE] = ai_base_url
    return env


class PersonalSpawner(LoggingConfigurable):
    """Policy shared by the Docker and the local spawner (config section `PersonalSpawner`)."""

    timezone = Unicode(
        default_value("TZ"),
        config=True,
        help="Time zone (TZ) of every user server, e.g. 'Europe/Berlin'.",
    )
    ai_api_keys = Dict(
        value_trait=Unicode(),
        config=True,
        help="""AI provider keys passed into user servers, by environment variable name,
        e.g. {'OPENAI_API_KEY': '...'}. Only keys with a value are passed.""",
    )
    ai_model = Unicode(
        None,
        allow_none=True,
        config=True,
        help="""Model every user's AI assistant (Jupyternaut) answers with, as LiteLLM
        names it (e.g. 'openai/gpt-5.4-mini'); None: each user picks one.""",
    )
    ai_base_url = Unicode(
        None,
        allow_none=True,
        config=True,
        help="""OpenAI-compatible API that `ai_model` is served from (a model server of
        your own, e.g. 'http://ollama:11434/v1'); None: the provider's own API.""",
    )

    data_connections = Dict(
        value_trait=Unicode(),
        config=True,
        help="""Databases every user's notebooks reach by name (HUB_DATA_CONNECTIONS):
        {name: SQLAlchemy URL}. They are in every user container (its environment), so
        anyone with a server can read them.""",
    )
    profiles = List(
        Dict(),
        config=True,
        help="""Kinds of server a person picks from on the start page (HUB_PROFILES), e.g.
        [{'name': 'small', 'cpu': 1, 'memory': 2 * 1024**3},
         {'name': 'gpu', 'memory': 16 * 1024**3, 'gpus': -1, 'image': 'my/cuda-notebook'}].
        Keys: name, cpu (cores), memory (bytes), gpus (a number; -1: all), image. The first
        is pre-selected; [] (the default): no choice. Only a listed profile can be started,
        whether chosen in the form or named through the REST API.""",
    )

    start_concurrency = Integer(
        0,
        config=True,
        help="""Servers that start at the same time; 0: one per CPU core of the hub's
        machine. Further starts wait in a first-come queue and see their place on the
        spawn page, so a crowd logging in at once is served in turn instead of timing out
        together.""",
    )

    # One queue and one record of start durations for the whole hub (set on first use).
    _start_queue: StartQueue | None = None
    # Until a start has been measured: 120 s (the batteries image answers in 6-9 s on two
    # cores, several times that under load); then 4x the median start, 60 s to 10 min.
    _start_cost = StartCost(initial=120, floor=60, ceiling=600)

    # The profile of this start (set from the user's choice before `start`); None
    # without profiles.
    profile: Profile | None = None

    def user_profiles(self) -> list[Profile]:
        """The profiles this user may pick. Default: all of `profiles`; override to
        narrow it, e.g. the GPU profile for admins only."""
        return [Profile.from_config(values) for values in self.profiles]

    @default("options_form")
    def _profile_form(self):
        profiles = self.user_profiles()
        return options_form(profiles, self.user_options.get("profile")) if profiles else ""

    @default("options_from_form")
    def _profile_from_form(self):
        def profile_from_form(formdata):
            return {"profile": formdata["profile"][0]} if formdata.get("profile") else {}

        return profile_from_form

    @default("apply_user_options")
    def _apply_profile(self):
        # JupyterHub runs this before every start, whatever asked for it (the form, the
        # REST API, saved options): the one place that decides what user options may do.
        def apply_profile(spawner, user_options):
            try:
                spawner.profile = chosen_profile(spawner.user_profiles(), user_options)
            except ValueError as error:
                refused = web.HTTPError(400, str(error))
                refused.jupyterhub_message = str(error)  # shown as is on the spawn page
                raise refused from None

        return apply_profile

    def start_queue(self) -> StartQueue:
        if PersonalSpawner._start_queue is None:
            PersonalSpawner._start_queue = StartQueue(self.start_concurrency or machine_cores())
        return PersonalSpawner._start_queue

    async def start(self):
        """Start when a slot is free, and hold it until the server answers."""
        queue = self.start_queue()
        place = queue.waiting + 1 if len(queue.starting) >= queue.slots else 0
        if place:
            self.log.info("Start of %s waits in the queue, place %d", self._log_name, place)
        await queue.enter(self)
        try:
            timeout = self._start_cost.timeout()
            began = time.monotonic()
            try:
                result = await asyncio.wait_for(self._start_until_answering(), timeout)
            except TimeoutError:
                raise TimeoutError(
                    f"The server did not answer within {timeout:.0f} s (usually it takes "
                    f"{self._start_cost.typical() or 0:.0f} s); the machine may be overloaded."
                ) from None
            seconds = time.monotonic() - began
            self._start_cost.record(seconds)
            self.log.info("Server of %s answered %.1f s after its start", self._log_name, seconds)
            return result
        finally:
            queue.leave(self)

    async def _start_until_answering(self):
        result = await super().start()
        await answering(answer_url(result, self.server.base_url))
        return result

    async def progress(self):
        """The place in the start queue while waiting, then that the server starts."""
        queue, shown = self.start_queue(), None
        while self._spawn_pending and queue.place(self) != 0:
            place = queue.place(self)
            if place and place != shown:
                message = queue_message(place, queue.slots, self._start_cost.typical())
                yield {"progress": 10, "message": message}
                shown = place
            await asyncio.sleep(0.5)
        yield {"progress": 40, "message": "Starting your server; JupyterLab is loading."}

    def user_environment(self) -> dict[str, str]:
        """Extra environment of the user's server: TZ, the AI keys that are set, the
        assistant's model and the team's connections (see `server_environment`), and
        an e-mail address for git until the user sets one (`EMAIL` is git's fallback
        for user.email; without any, the Git panel's first commit fails)."""
        env = server_environment(self.timezone, self.ai_api_keys, self.data_connections,
                                 self.ai_model, self.ai_base_url)
        env[GIT_EMAIL_VARIABLE] = f"{self.user.name}@{PLACEHOLDER_MAIL_DOMAIN}"
        return env

    def get_env(self):
        env = super().get_env()
        env.update(self.user_environment())
        return env


class PersonalDockerSpawner(PersonalSpawner, DockerSpawner):
    """One container per user, files in a per-user Docker volume."""

    home_volume_template = Unicode(
        "jupyterhub-user-{username}",
        config=True,
        help="""Name of the user's home volume. `{username}` is DockerSpawner's escaped
        username, so two different usernames never share a volume. Named servers use the
        same volume: a user sees the same files on every server.""",
    )
    home_mount_point = Unicode(
        "/home/jovyan",
        config=True,
        help="Where the home volume is mounted in the container.",
    )
    pids_limit = Integer(
        default_value("HUB_PIDS_LIMIT"),
        config=True,
        help="""Most processes and threads in one user container (a fork bomb stops there).
        0: no limit.""",
    )
    cap_add = List(
        Unicode(),
        config=True,
        help="""Linux capabilities given back to user containers; all others are dropped.
        The docker-stacks images started as their own user need none. e.g. ['CHOWN'].""",
    )

    docker_threads = Integer(
        4,
        config=True,
        help="""Threads for Docker API calls. DockerSpawner's default is one for the whole
        hub, so one slow call (a stop waits up to 10 s for the server to exit) holds up
        every other user's start, stop and status check.""",
    )

    @property
    def executor(self):
        cls = type(self)
        if cls.__dict__.get("_executor") is None:
            cls._executor = ThreadPoolExecutor(self.docker_threads, thread_name_prefix="docker")
        return cls._executor

    home_volume_driver = Unicode(
        default_value("HUB_HOME_VOLUME_DRIVER"),
        config=True,
        help="Docker volume driver of the home volumes (HUB_HOME_VOLUME_DRIVER).",
    )
    home_volume_options = Dict(
        value_trait=Unicode(),
        config=True,
        help="""Driver options of the home volumes (HUB_HOME_VOLUME_OPTIONS), e.g.
        {'type': 'nfs', 'o': 'addr=nas.lan,rw,nfsvers=4.1',
         'device': ':/export/jupyter/{username}'}. `{username}` is the escaped username.
        {} with the local driver: plain volumes on the machine that runs the server.""",
    )
    home_directory_user = Unicode(
        "1000:100",
        config=True,
        help="""uid:gid that makes a user's directory on shared storage (when the
        `device` option ends in /{username}): the single-user image's user (docker-stacks:
        jovyan, 1000:100). The parent directory must be writable by it.""",
    )

    # (root volume, directory) pairs made by this hub process: made once, not per start.
    _made_home_directories: set[tuple[str, str]] = set()

    def home_volume_name(self) -> str:
        """The user's home volume, from `home_volume_template` (one per user)."""
        return self.home_volume_template.format(**self.template_namespace())

    def home_volume_driver_options(self) -> dict[str, str]:
        """Driver options of this user's home volume; {} for a plain local volume."""
        return homes.for_user(self.home_volume_options, self.template_namespace()["username"])

    async def prepare_home(self) -> None:
        """With shared storage: make the user's directory there, then create the home
        volume on it, or refuse a volume of that name that is something else (a plain
        volume from before the storage was set: its files are not on the storage)."""
        driver, options = self.home_volume_driver, self.home_volume_driver_options()
        if not homes.is_shared(driver, options):
            return
        escaped = self.template_namespace()["username"]
        directory = homes.user_directory(driver, self.home_volume_options, escaped)
        if directory:
            await self.make_home_directory(directory)
        name = self.home_volume_name()
        try:
            volume = await self.docker("inspect_volume", name)
        except NotFound:
            await self.docker("create_volume", name=name, driver=driver, driver_opts=options)
            return
        mismatch = homes.volume_mismatch(volume, driver, options)
        if mismatch:
            raise RuntimeError(
                f"The home volume {name} already exists but is not on the shared storage "
                f"HUB_HOME_VOLUME_OPTIONS describes ({mismatch}). Move its files there and "
                f"remove it (see the docs: From Compose to Swarm, and back).")

    async def make_home_directory(self, directory: homes.UserDirectory) -> None:
        """The user's directory on the storage, made in a throwaway container (no
        network, no capabilities, as `home_directory_user`) with the parent mounted."""
        key = (directory.root_volume, directory.name)
        if key in PersonalDockerSpawner._made_home_directories:
            return
        await self.docker("create_volume", name=directory.root_volume,
                          driver=self.home_volume_driver, driver_opts=directory.root_options)
        await self.ensure_image_here(self.image)
        host_config = self.client.create_host_config(
            binds={directory.root_volume: {"bind": "/homes", "mode": "rw"}},
            network_mode="none", cap_drop=["ALL"], read_only=True,
            security_opt=["no-new-privileges:true"],
        )
        created = await self.docker(
            "create_container", image=self.image, entrypoint=["mkdir"],
            command=["-p", f"/homes/{directory.name}"], user=self.home_directory_user,
            host_config=host_config, labels={SERVER_LABEL: f"{self._log_name}:home"},
        )
        try:
            await self.docker("start", created["Id"])
            result = await self.docker("wait", created["Id"], timeout=60)
            if result.get("StatusCode") != 0:
                output = await self.docker("logs", created["Id"])
                raise RuntimeError(
                    f"Could not make {directory.name}/ on the home storage: "
                    f"{output.decode(errors='replace').strip()[-300:]} (the directory above "
                    f"it must be writable by {self.home_directory_user}).")
        finally:
            await self.docker("remove_container", created["Id"], force=True)
        PersonalDockerSpawner._made_home_directories.add(key)

    async def ensure_image_here(self, image: str) -> None:
        """The image on the hub's own engine, pulled if missing."""
        try:
            await self.docker("inspect_image", image)
        except NotFound:
            await self.docker("pull", image)

    def user_volumes(self) -> dict[str, str]:
        """Volumes of the user's container: {volume name: mount point}."""
        return {self.home_volume_name(): self.home_mount_point}

    @default("volumes")
    def _default_volumes(self):
        return self.user_volumes()

    def user_image(self) -> str:
        """Image of this start: the profile's, else `DockerSpawner.image`
        (HUB_SINGLEUSER_IMAGE)."""
        if self.profile and self.profile.image:
            return self.profile.image
        return self.image

    def user_mem_limit(self):
        """Memory limit of this start, in bytes or as '2G'; None: no limit.

        Default: `mem_limit` (HUB_MEM_LIMIT). DockerSpawner evaluates a callable
        `c.DockerSpawner.mem_limit` when the spawner is created, so one set in
        jupyterhub_config.d arrives here already evaluated; an override of this method
        decides last, at every start, and also sets the swap limit to the same value.
        """
        if self.profile and self.profile.memory is not None:
            return self.profile.memory
        return self.mem_limit

    def user_cpu_limit(self):
        """CPU cores of this start (float); None: no limit.

        Default: `cpu_limit` (HUB_CPU_LIMIT), a callable `c.DockerSpawner.cpu_limit`
        already evaluated, or the profile's; an override of this method decides last.
        """
        if self.profile and self.profile.cpu is not None:
            return self.profile.cpu
        return self.cpu_limit

    def user_device_requests(self) -> list[dict]:
        """Devices of this start: the profile's NVIDIA GPUs (as `docker run --gpus`), else
        none. Needs the NVIDIA Container Toolkit on the host."""
        if not (self.profile and self.profile.gpus):
            return []
        return [{"Driver": "", "Count": self.profile.gpus, "Capabilities": [["gpu"]]}]

    def user_pids_limit(self) -> int:
        """Most processes and threads in this container; 0: no limit.

        Default: `pids_limit` (HUB_PIDS_LIMIT).
        """
        return self.pids_limit

    def user_capabilities(self) -> list[str]:
        """Capabilities the container keeps (all others are dropped)."""
        return list(self.cap_add)

    def user_security_options(self) -> list[str]:
        """No process in the container can gain privileges (setuid binaries, sudo)."""
        return ["no-new-privileges:true"]

    def user_host_config(self) -> dict:
        """Docker host settings that protect the host and the other users from this one."""
        config = {
            "cap_drop": ["ALL"],
            "security_opt": self.user_security_options(),
        }
        capabilities = self.user_capabilities()
        if capabilities:
            config["cap_add"] = capabilities
        pids = self.user_pids_limit()
        if pids:
            config["pids_limit"] = pids
        if self.mem_limit:
            # No swap beyond the memory limit: a runaway process is stopped, not swapped.
            config["memswap_limit"] = self.mem_limit
        devices = self.user_device_requests()
        if devices:
            config["device_requests"] = devices
        return config

    def apply_user_policy(self) -> None:
        """Decide image and limits for this start (subclasses override the methods above)."""
        self.image = self.user_image()
        self.mem_limit = self.user_mem_limit()
        self.cpu_limit = self.user_cpu_limit()
        if not hasattr(self, "_configured"):
            # What the operator configured, kept once: later starts wrap it again.
            self._configured = (self.extra_host_config, self.extra_create_kwargs)
        host_config, create_kwargs = self._configured

        async def merged_host_config(spawner):
            # What the operator put in `extra_host_config` wins over the policy.
            return {**spawner.user_host_config(), **await resolved(spawner, host_config)}

        async def labelled_create_kwargs(spawner):
            # A label that marks the container as a server of this spawner class, so a
            # container left behind by a dead hub can be told from anything else.
            extra = await resolved(spawner, create_kwargs)
            labels = {**(extra.get("labels") or {}), SERVER_LABEL: spawner._log_name}
            return {**extra, "labels": labels}

        self.extra_host_config = merged_host_config
        self.extra_create_kwargs = labelled_create_kwargs

    async def start(self):
        self.apply_user_policy()
        return await super().start()

    async def create_object(self):
        await self.prepare_home()
        return await super().create_object()

    async def start_object(self):
        try:
            await super().start_object()
        except APIError as error:
            if not (self.user_device_requests() and NO_GPU_DRIVER in str(error)):
                raise
            # Created but not startable: take it away, and say why in words.
            await self.remove_object()
            raise RuntimeError(
                "This server profile needs GPUs, and the Docker host has none that Docker "
                "can give to containers (is the NVIDIA Container Toolkit installed? See "
                "the docs: GPUs). Choose another profile."
            ) from None


# A generic resource that Swarm nodes with NVIDIA GPUs advertise (their daemon.json's
# node-generic-resources), which a service asks for by number.
SWARM_GPU_RESOURCE = "NVIDIA-GPU"
# Task states after which a task never runs (Docker's swarm task lifecycle).
TASK_ENDED = frozenset({"complete", "shutdown", "failed", "rejected", "orphaned", "remove"})


def task_problem(status: dict) -> str | None:
    """Why a user's Swarm task will not run, in words, from its `Status`; None while it
    may still start."""
    state = (status.get("State") or "").lower()
    reason = (status.get("Err") or status.get("Message") or state).strip()
    if state in TASK_ENDED:
        return f"Your server could not start on the swarm: {reason}."
    if state == "pending" and "no suitable node" in reason:
        return (f"No node of the swarm can run your server ({reason}). The administrator "
                "can check HUB_SWARM_CONSTRAINTS, the nodes' labels and, for a GPU profile, "
                "the nodes' GPU resources.")
    return None


def task_address(task: dict, network: str) -> str | None:
    """A Swarm task's IP address on `network` (its name or id), from `docker inspect`."""
    for attachment in task.get("NetworksAttachments") or ():
        found = attachment.get("Network") or {}
        if network in (found.get("ID"), (found.get("Spec") or {}).get("Name")):
            addresses = attachment.get("Addresses") or ()
            return addresses[0].split("/")[0] if addresses else None
    return None


class PersonalSwarmSpawner(PersonalDockerSpawner, SwarmSpawner):
    """One Docker Swarm service per user, with the Docker spawner's policy methods (image,
    limits, GPUs, capabilities, volumes, environment, profiles), placed by the swarm on
    any node that `user_placement_constraints` allows."""

    placement_constraints = List(
        Unicode(),
        config=True,
        help="""Placement constraints of every user server (HUB_SWARM_CONSTRAINTS), e.g.
        ['node.labels.personal-hub.servers == true'].""",
    )
    single_node = Bool(
        False,
        config=True,
        help="""Every user server on the hub's node (HUB_SWARM_SINGLE_NODE): plain local home
        volumes are then always beside their server.""",
    )

    # The node the hub talks to (its own: the hub runs on a manager), looked up once.
    _hub_node_id: str | None = None

    def user_placement_constraints(self) -> list[str]:
        """Where this user's server may run. Default: `placement_constraints`; override
        per user or profile (e.g. a GPU profile on node.labels.gpu == true)."""
        return list(self.placement_constraints)

    def user_generic_resources(self) -> dict[str, int]:
        """Node resources this start asks for: the profile's GPUs as NVIDIA-GPU."""
        if self.profile and self.profile.gpus and self.profile.gpus > 0:
            return {SWARM_GPU_RESOURCE: self.profile.gpus}
        return {}

    def user_restart_policy(self) -> RestartPolicy:
        """A server that ended (crashed, or shut down from JupyterLab) stays stopped, as
        with the Docker spawner: the hub sees it at its next poll, and the next visit
        starts a new one. A task restarted by Swarm would have a new address that the
        proxy's route does not know."""
        return RestartPolicy(condition="none")

    def apply_user_policy(self) -> None:
        self.image = self.user_image()
        self.mem_limit = self.user_mem_limit()
        self.cpu_limit = self.user_cpu_limit()

    async def hub_node_id(self) -> str:
        cls = PersonalSwarmSpawner
        if cls._hub_node_id is None:
            info = await self.docker("info")
            cls._hub_node_id = info["Swarm"]["NodeID"]
        return cls._hub_node_id

    async def placement_constraints_of_start(self) -> list[str]:
        constraints = self.user_placement_constraints()
        if self.single_node:
            constraints.append(f"node.id == {await self.hub_node_id()}")
        return constraints

    @property
    def mounts(self) -> list[Mount]:
        """Named volumes as volume mounts (the home volume with the storage's driver
        options, created on whichever node runs the server); absolute paths as binds."""
        home, options = self.home_volume_name(), self.home_volume_driver_options()
        driver = (DriverConfig(self.home_volume_driver, options)
                  if homes.is_shared(self.home_volume_driver, options) else None)
        return [
            Mount(target=volume["bind"], source=source,
                  type="bind" if source.startswith("/") else "volume",
                  read_only=volume["mode"] == "ro",
                  driver_config=driver if source == home else None)
            for source, volume in self.volume_binds.items()
        ]

    async def service_spec(self) -> dict:
        """`create_service` arguments of this start: the policy, then what the operator
        set in SwarmSpawner's extra_*_spec options (which win)."""
        labels = {SERVER_LABEL: self._log_name}
        container = ContainerSpec(**{
            "image": self.image, "env": self.get_env(), "args": await self.get_command(),
            "mounts": self.mounts, "labels": labels, "cap_drop": ["ALL"],
            "cap_add": self.user_capabilities() or None,
            # Engines before API 1.46 ignore it (see the docs: Swarm and hardening).
            "privileges": {"NoNewPrivileges": True},
            **self.extra_container_spec,
        })
        resources = Resources(**{
            "mem_limit": self.mem_limit, "cpu_limit":
            int(self.cpu_limit * 1e9) if self.cpu_limit else None,
            "mem_reservation": self.mem_guarantee, "cpu_reservation":
            int(self.cpu_guarantee * 1e9) if self.cpu_guarantee else None,
            "generic_resources": self.user_generic_resources() or None,
            **self.extra_resources_spec,
        })
        pids = self.user_pids_limit()
        if pids:
            resources.setdefault("Limits", {})["Pids"] = pids
        placement = Placement(**{"constraints": await self.placement_constraints_of_start(),
                                 **self.extra_placement_spec})
        task = TaskTemplate(**{
            "container_spec": container, "resources": resources, "placement": placement,
            "networks": [self.network_name] if self.network_name else [],
            "restart_policy": self.user_restart_policy(), **self.extra_task_spec,
        })
        # dnsrr: the service's name resolves to its task's address. No virtual IP, which
        # needs IPVS in the node's kernel, for a service of one task.
        endpoint = EndpointSpec(**{**({"mode": "dnsrr"} if self.use_internal_ip else {
            "ports": {None: (self.port, "tcp")}}), **self.extra_endpoint_spec})
        extra = await resolved(self, self.extra_create_kwargs)
        return {"task_template": task, "endpoint_spec": endpoint, "name": self.service_name,
                **extra, "labels": {**(extra.get("labels") or {}), **labels}}

    async def create_object(self):
        await self.prepare_home()
        service = await self.docker("create_service", **await self.service_spec())
        while not await self.docker("tasks", filters={"service": self.service_name}):
            await asyncio.sleep(0.25)
        return service

    async def get_ip_and_port(self):
        """The running task's own address on the users' network: the proxy and the hub
        reach the server there, as they reach a Docker container by its IP. (The
        service's name can still resolve to the task of a removed service of the same
        name for a minute or more: seen with Docker Engine 20.10.)"""
        task = await self.get_task()
        address = task_address(task or {}, self.network_name)
        if address is None:
            raise RuntimeError(f"The server's task has no address on {self.network_name}.")
        return address, self.port

    async def start_object(self):
        """Wait until the server's task runs; one that cannot be placed or started ends
        the start with the reason in words (SwarmSpawner would wait for ever)."""
        delay = 0.25
        while True:
            task = await self.get_task()
            if not task:
                raise RuntimeError(f"The service {self.service_name} is gone.")
            status = task["Status"]
            if status["State"].lower() == "running":
                return
            problem = task_problem(status)
            if problem:
                raise RuntimeError(problem)
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 2)


class PersonalLocalSpawner(PersonalSpawner, SimpleLocalProcessSpawner):
    """User servers as local processes in per-user directories. No isolation: for trials."""

    def get_args(self):
        args = super().get_args()
        if hasattr(os, "geteuid") and os.geteuid() == 0 and "--allow-root" not in args:
            # jupyter-server refuses to run as root without it (containers, CI).
            args.append("--allow-root")
        return args


async def resolved(spawner, configured):
    """A DockerSpawner option as it applies to this start: a value, or a callable of the
    spawner returning one (or an awaitable of one)."""
    value = spawner._eval_if_callable(configured)
    return await value if inspect.isawaitable(value) else value


def answer_url(started, base_url: str) -> str:
    """The URL the hub checks to see a server answer, from what `Spawner.start` returned:
    a URL, or (ip, port) as DockerSpawner and the local spawner return it."""
    if isinstance(started, str):
        root = started.rstrip("/")
    else:
        ip, port = started
        root = f"http://[{ip}]:{int(port)}" if ":" in ip else f"http://{ip}:{int(port)}"
    return f"{root}{base_url}api"


async def answering(url: str, interval: float = 0.25) -> None:
    """Return once `url` answers below 500, as the hub's own check wants it.

    Polls every `interval` (JupyterHub's check backs off to seconds between tries, which
    a person waiting on the spawn page would feel); the caller bounds the wait.
    """
    while True:
        try:
            response = await fetch(url, raise_for_status=False, allow_redirects=False)
        except (TimeoutError, OSError, aiohttp.ClientError):
            pass
        else:
            if response.status < 500:
                return
        await asyncio.sleep(interval)
