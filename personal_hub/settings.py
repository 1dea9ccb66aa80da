"""Turn the environment (the variables of stack.env) into typed, validated settings.

`load_settings(environ)` validates every variable and raises one `SettingsError`
listing *all* problems: the variable, what is wrong, how to fix it. Secret values are
never echoed (at most their length). Standard library only, so `personal-hub check`
runs anywhere, and importing this module reads nothing.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from urllib.parse import quote

from .parsers import GENERATE_HINT, Invalid, format_bytes
from .profiles import ALL_GPUS, Profile
from .variables import AI_DEFAULT_MODELS, BY_NAME, REQUIRED, VARIABLES, Variable

EGRESS_SUMMARY = {
    "internet": "internet (not private or link-local addresses, not the Docker host)",
    "none": "none (the hub and the proxy only)",
    "all": "all (not filtered)",
}
# Our own prefix: an unknown HUB_* variable is almost certainly a typo.
OWN_PREFIX = "HUB_"


@dataclass(frozen=True)
class Problem:
    variable: str
    message: str
    fix: str

    def __str__(self) -> str:
        return f"{self.variable}: {self.message} Fix: {self.fix}"


class SettingsError(Exception):
    """Every problem found in the settings, reported together."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__(self.report())

    def report(self) -> str:
        count = len(self.problems)
        header = f"personal-hub: {count} problem{'s' if count != 1 else ''} in the settings:"
        return "\n".join([header, *(f"  - {problem}" for problem in self.problems)])


@dataclass(frozen=True)
class Settings:
    user_password: str = field(repr=False)
    admin_user: str | None
    admin_password: str | None = field(repr=False)
    allowed_users: frozenset[str]
    login_max_failures: int
    login_max_failures_per_ip: int
    login_max_failures_shared: int
    login_lockout_seconds: int
    trusted_proxies: tuple[str, ...]
    domain: str | None
    proxy_api_url: str | None
    proxy_auth_token: str | None = field(repr=False)
    bind_url: str
    postgres_host: str | None
    postgres_port: int
    postgres_db: str
    postgres_user: str
    postgres_password: str | None = field(repr=False)
    spawner: str
    singleuser_image: str
    docker_network: str
    hub_connect_host: str
    home_volume_driver: str
    home_volume_options: tuple[tuple[str, str], ...]
    swarm_single_node: bool
    swarm_constraints: tuple[str, ...]
    mem_limit_bytes: int | None
    cpu_limit: float | None
    pids_limit: int | None
    cap_add: tuple[str, ...]
    idle_timeout_seconds: int
    start_concurrency: int | None
    named_server_limit: int
    profiles: tuple[Profile, ...]
    data_connections: Mapping[str, str] = field(repr=False)
    sharing: bool
    scheduled_runs: bool
    scheduled_run_timeout_seconds: int
    reports: bool
    egress: str
    egress_allow: tuple
    timezone: str
    ai_model: str
    ai_base_url: str | None
    ai_api_keys: Mapping[str, str] = field(repr=False)
    data_dir: str
    config_d: str
    log_level: str

    @property
    def external_proxy(self) -> bool:
        return self.proxy_api_url is not None

    @property
    def in_containers(self) -> bool:
        """User servers run in containers (Docker or Swarm), not as local processes."""
        return self.spawner in ("docker", "swarm")

    @property
    def public_url(self) -> str | None:
        """The hub's public https URL behind Traefik (TLS ends there), or None."""
        return f"https://{self.domain}/" if self.domain else None

    @property
    def assistant_model(self) -> str | None:
        """The model every user's assistant answers with (HUB_AI_MODEL resolved), or None."""
        if self.ai_model == "none":
            return None
        if self.ai_model != "auto":
            return self.ai_model
        return next((model for key, model in AI_DEFAULT_MODELS.items()
                     if key in self.ai_api_keys), None)

    @property
    def uses_postgres(self) -> bool:
        return self.postgres_host is not None

    def database_url(self) -> str:
        """SQLAlchemy URL; psycopg2 named explicitly (SQLAlchemy 2.1 defaults to psycopg 3)."""
        if not self.uses_postgres:
            return f"sqlite:///{PurePosixPath(self.data_dir) / 'jupyterhub.sqlite'}"
        credentials = quote(self.postgres_user, safe="")
        if self.postgres_password:
            credentials += ":" + quote(self.postgres_password, safe="")
        return (
            f"postgresql+psycopg2://{credentials}@{self.postgres_host}:{self.postgres_port}"
            f"/{quote(self.postgres_db, safe='')}"
        )

    def summary(self) -> list[str]:
        """The effective configuration in a few lines, without any secret."""
        database = (
            f"PostgreSQL {self.postgres_user}@{self.postgres_host}:{self.postgres_port}"
            f"/{self.postgres_db}"
            if self.uses_postgres
            else f"SQLite in {self.data_dir}"
        )
        proxy = (
            f"external configurable-http-proxy at {self.proxy_api_url}"
            if self.external_proxy
            else f"started by the hub, listening on {self.bind_url}"
        )
        users = ", ".join(sorted(self.allowed_users)) or "anyone with the shared password"
        limits = (
            f"memory {format_bytes(self.mem_limit_bytes) if self.mem_limit_bytes else 'unlimited'}"
            f", CPU {self.cpu_limit if self.cpu_limit else 'unlimited'}"
            f", processes {self.pids_limit or 'unlimited'}"
            f", capabilities {', '.join(self.cap_add) or 'none'}"
        )
        servers = {
            "docker": f"Docker containers from {self.singleuser_image} on network "
                      f"{self.docker_network}",
            "swarm": f"Docker Swarm services from {self.singleuser_image} on overlay network "
                     f"{self.docker_network}, "
                     + ("on the hub's node" if self.swarm_single_node else "on any node")
                     + "".join(f", {c}" for c in self.swarm_constraints),
            "local": "local processes (no isolation; for trying the hub)",
        }[self.spawner]
        homes = (
            f"{self.home_volume_driver} volumes with "
            + " ".join(f"{key}={value}" for key, value in self.home_volume_options)
            if self.home_volume_options or self.home_volume_driver != "local"
            else "plain local volumes"
        )
        egress = (
            EGRESS_SUMMARY[self.egress]
            if self.in_containers
            else "not filtered (local processes)"
        )
        if self.egress_allow and self.in_containers and self.egress != "all":
            egress += "; also " + ", ".join(map(str, self.egress_allow))
        profiles = "; ".join(f"{p.name} ({p.description()})" for p in self.profiles) or (
            "none (every server is the same)")
        ai = ", ".join(sorted(self.ai_api_keys)) or "none"
        assistant = self.assistant_model or "none (each user picks one)"
        if self.ai_base_url:
            assistant += f" at {self.ai_base_url}"
        idle = f"{self.idle_timeout_seconds}s" if self.idle_timeout_seconds else "off"
        return [
            f"admin user:     {self.admin_user or '(none)'}",
            f"allowed users:  {users}",
            f"login lockout:  {self.login_max_failures} failures per user / "
            f"{self.login_max_failures_per_ip} per address / "
            f"{self.login_max_failures_shared} with the shared password "
            f"in {self.login_lockout_seconds}s",
            f"public URL:     {self.public_url or '(as requested)'}",
            f"trusted proxies: the hub's proxy{''.join(', ' + p for p in self.trusted_proxies)}",
            f"database:       {database}",
            f"proxy:          {proxy}",
            f"user servers:   {servers}",
            f"home volumes:   {homes if self.in_containers else 'none (local directories)'}",
            f"limits:         {limits}",
            f"profiles:       {profiles}",
            f"data connections: {', '.join(sorted(self.data_connections)) or 'none'}",
            f"user egress:    {egress}",
            f"idle culling:   {idle}",
            f"server starts:  {self.start_concurrency or 'one per CPU core'} at a time, "
            "the rest queue",
            f"server sharing: {'on' if self.sharing else 'off'}",
            f"scheduled runs: "
            f"{'on' if self.scheduled_runs and self.in_containers else 'off'}",
            f"reports:        {'on' if self.reports and self.in_containers else 'off'}",
            f"time zone:      {self.timezone}",
            f"AI keys set:    {ai}",
            f"AI model:       {assistant}",
            f"data directory: {self.data_dir}",
        ]


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Validate every variable in `environ`; raise SettingsError listing all problems."""
    problems = unknown_variable_problems(environ)
    values = {}
    for variable in VARIABLES:
        try:
            values[variable.name] = read_variable(variable, environ.get(variable.name))
        except Invalid as error:
            problems.append(Problem(variable.name, str(error), variable.fix_for(error)))
    problems += cross_variable_problems(values)
    if problems:
        raise SettingsError(problems)
    if values["HUB_CONFIG_D"] is None:
        values["HUB_CONFIG_D"] = str(PurePosixPath(values["HUB_DATA_DIR"]) / "jupyterhub_config.d")
    return Settings(
        **{v.setting: values[v.name] for v in VARIABLES if v.setting},
        ai_api_keys={
            v.name: values[v.name] for v in VARIABLES
            if v.group == "ai" and v.secret and values[v.name]
        },
    )


def read_variable(variable: Variable, text: str | None):
    """The value of one variable; raises Invalid. A secret is taken exactly as written."""
    if text is None:
        text = variable.default
    elif not variable.secret:
        text = text.strip()
    if text:
        return variable.parse(text)
    if variable.empty is REQUIRED:
        raise Invalid("is not set.", f"set it; {GENERATE_HINT}.")
    return variable.empty_value()


def cross_variable_problems(values: Mapping[str, object]) -> list[Problem]:
    """What no single variable can decide: secrets needed by another setting, and
    values that must differ. `values` lacks the variables that already have a problem."""
    problems = []
    for variable in VARIABLES:
        needed_by = variable.required_with
        if needed_by and values.get(needed_by) and variable.name in values and (
            values[variable.name] is None
        ):
            problems.append(
                Problem(
                    variable.name,
                    f"is not set but {needed_by} is.",
                    f"set it; {GENERATE_HINT}.",
                )
            )
    model = values.get("HUB_AI_MODEL")
    if values.get("HUB_AI_BASE_URL") and model and not model.startswith("openai/"):
        problems.append(
            Problem(
                "HUB_AI_MODEL",
                f"is {model}, but HUB_AI_BASE_URL needs a model of the OpenAI-compatible "
                "server it names.",
                "set it to openai/<a model that server serves>, e.g. openai/llama3.2.",
            )
        )
    if values.get("HUB_SPAWNER") == "swarm":
        problems += swarm_problems(values)
    user, admin = values.get("JUPYTER_PASSWORD"), values.get("JUPYTER_ADMIN_PASSWORD")
    if admin and admin == user:
        problems.append(
            Problem(
                "JUPYTER_ADMIN_PASSWORD",
                "is the same as JUPYTER_PASSWORD, so every user could log in as admin.",
                f"use a different value; {GENERATE_HINT}.",
            )
        )
    return problems


def swarm_problems(values: Mapping[str, object]) -> list[Problem]:
    """What HUB_SPAWNER=swarm cannot do with these values: servers on other nodes without
    their files, an egress policy that only one host's firewall can keep, all GPUs."""
    problems = []
    if ("HUB_HOME_VOLUME_OPTIONS" in values and not values["HUB_HOME_VOLUME_OPTIONS"]
            and not values.get("HUB_SWARM_SINGLE_NODE")
            and values.get("HUB_HOME_VOLUME_DRIVER") == "local"):
        problems.append(Problem(
            "HUB_HOME_VOLUME_OPTIONS",
            "is empty, so on a swarm of several nodes a server started on another node "
            "would not find the user's files (plain local volumes stay on one node).",
            "put the homes on shared storage, e.g. HUB_HOME_VOLUME_OPTIONS=type=nfs "
            "o=addr=nas.lan,rw,nfsvers=4.1 device=:/export/jupyter/{username}, or set "
            "HUB_SWARM_SINGLE_NODE=true for a swarm of one node."))
    if values.get("HUB_EGRESS") == "internet":
        problems.append(Problem(
            "HUB_EGRESS",
            "is internet, which a firewall on one Docker host keeps; on Swarm, user servers "
            "run on any node.",
            "set HUB_EGRESS=none (the users' overlay network is internal: the hub and the "
            "proxy only, on every node) or HUB_EGRESS=all (no filtering: your LAN is "
            "reachable from users' code)."))
    if values.get("HUB_EGRESS_ALLOW"):
        problems.append(Problem(
            "HUB_EGRESS_ALLOW",
            "makes exceptions to HUB_EGRESS=internet or none, which Swarm cannot make.",
            "leave it empty; with HUB_EGRESS=all every address is reachable."))
    if any(profile.gpus == ALL_GPUS for profile in values.get("HUB_PROFILES") or ()):
        problems.append(Problem(
            "HUB_PROFILES",
            "asks for all GPUs (gpus=all); a Swarm service asks for a number of them.",
            "give a number, e.g. gpus=1 (the node must advertise NVIDIA-GPU resources; "
            "see the docs)."))
    return problems


def unknown_variable_problems(environ: Mapping[str, str]) -> list[Problem]:
    problems = []
    for name in sorted(environ):
        if name.startswith(OWN_PREFIX) and name not in BY_NAME:
            close = difflib.get_close_matches(name, list(BY_NAME), n=1)
            fix = f"did you mean {close[0]}?" if close else "remove it (see example-stack.env)."
            problems.append(Problem(name, "is not a personal-hub setting.", fix))
    return problems
