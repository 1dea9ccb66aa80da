"""The variables of stack.env: one declaration each, and everything rendered from them.

Each `Variable` says everything about one setting: its name, default, parser (type and
bounds), what an empty value means, whether it is a secret, its help and the fix to
suggest. `settings.load_settings` is a loop over these declarations; `example-stack.env`,
the configuration reference in docs/configuration.md, `personal-hub init` and the trait
defaults of the authenticator and the spawner are all derived from them. Standard library
only: `personal-hub init` must work on a Docker host that has nothing but python3.
"""

from __future__ import annotations

import re
import secrets
import textwrap
from dataclasses import dataclass

from . import parsers
from .egress import POLICIES as EGRESS_POLICIES
from .parsers import PLACEHOLDER
from .profiles import Profiles

# What an empty value means. An empty value is the same as leaving the variable out,
# as in docker compose's ${X:-default}: the default applies, or "not set" when the
# default is empty. A declaration may say otherwise: REQUIRED, or a value of its own.
DEFAULT = "default"
REQUIRED = "required"

# The AI assistant's model when HUB_AI_MODEL is auto, by the key that is set (first wins).
AI_DEFAULT_MODELS = {
    "OPENAI_API_KEY": "openai/gpt-5.4-mini",
    "ANTHROPIC_API_KEY": "anthropic/claude-sonnet-4-6",
}

# The longest a login lockout lasts (HUB_LOGIN_LOCKOUT's bound, and where doubling stops).
MAX_LOCKOUT_SECONDS = 86400
# Days an address that logged in stays exempt from the shared-password pause.
KNOWN_ADDRESS_DAYS = 30


@dataclass(frozen=True)
class Variable:
    name: str
    default: str
    help: str
    group: str
    parse: object = parsers.Pattern(re.compile(r"[^\0]+"), "any text")
    # The field of `settings.Settings` it fills; None: read by docker compose only.
    setting: str | None = None
    empty: object = DEFAULT
    # Required (when this one is a secret) once the named variable has a value.
    required_with: str | None = None
    # Whether `init` generates a value for it (a secret that the hub needs).
    generated: bool = False
    # How to fix a wrong value; by default "use <what the parser allows>".
    fix: str | None = None

    @property
    def secret(self) -> bool:
        return isinstance(self.parse, parsers.Secret)

    @property
    def min_length(self) -> int:
        return self.parse.min_length if self.secret else 0

    @property
    def allowed(self) -> str:
        return self.parse.allowed

    def fix_for(self, error: parsers.Invalid | None = None) -> str:
        if error is not None and error.fix:
            return error.fix
        if self.fix:
            return self.fix
        default = f" The default is {self.default}." if self.default else ""
        return f"use {self.allowed}.{default}"

    def empty_value(self):
        """The value of this variable when it is empty (not for REQUIRED)."""
        if self.empty is DEFAULT:
            return self.parse(self.default) if self.default else None
        return self.empty

    def description(self) -> str:
        """The help, with when the declaration makes it required."""
        if self.empty is REQUIRED:
            return f"{self.help} Required."
        if self.required_with:
            return f"{self.help} Required when {self.required_with} is not empty."
        return self.help


def default_value(name: str):
    """The typed default of a variable: the one source of the package's trait defaults."""
    variable = BY_NAME[name]
    return variable.parse(variable.default) if variable.default else None


GROUPS = (
    ("login", "Login and users"),
    ("proxy", "Proxy (configurable-http-proxy)"),
    ("database", "Database (PostgreSQL; leave POSTGRES_HOST empty for embedded SQLite)"),
    ("servers", "User servers"),
    ("ai", "AI assistant (optional; keys are passed into user servers only when set)"),
    ("hub", "Hub process"),
    (
        "compose",
        "Docker Compose stack (read by docker compose and ./hub up; the hub ignores them)",
    ),
)

_PORT = parsers.Integer(1, 65535)

VARIABLES: tuple[Variable, ...] = (
    Variable(
        "JUPYTER_PASSWORD",
        "",
        "Shared password every (non-admin) user logs in with.",
        "login",
        parsers.Secret(12),
        setting="user_password",
        empty=REQUIRED,
        generated=True,
    ),
    Variable(
        "JUPYTER_ADMIN_USER",
        "admin",
        "Username of the hub administrator. Empty: no admin account.",
        "login",
        parsers.Username(),
        setting="admin_user",
        empty=None,
    ),
    Variable(
        "JUPYTER_ADMIN_PASSWORD",
        "",
        "Password of the admin user (only the admin user can use it; the shared password "
        "never makes anyone admin). Different from JUPYTER_PASSWORD.",
        "login",
        parsers.Secret(32),
        setting="admin_password",
        required_with="JUPYTER_ADMIN_USER",
        generated=True,
    ),
    Variable(
        "HUB_ALLOWED_USERS",
        "",
        "Comma-separated usernames allowed to log in. Empty: anyone who knows "
        "JUPYTER_PASSWORD may log in with any valid username.",
        "login",
        parsers.Usernames(),
        setting="allowed_users",
        empty=frozenset(),
    ),
    Variable(
        "HUB_LOGIN_MAX_FAILURES",
        "5",
        "Failed logins for one username within HUB_LOGIN_LOCKOUT before that username is "
        "locked out for HUB_LOGIN_LOCKOUT.",
        "login",
        parsers.Integer(1, 1000),
        setting="login_max_failures",
    ),
    Variable(
        "HUB_LOGIN_MAX_FAILURES_PER_IP",
        "20",
        "Failed logins from one client address within HUB_LOGIN_LOCKOUT before that address "
        "is locked out.",
        "login",
        parsers.Integer(1, 100000),
        setting="login_max_failures_per_ip",
    ),
    Variable(
        "HUB_LOGIN_MAX_FAILURES_SHARED",
        "30",
        "Failed logins with the shared password, over all usernames and addresses, within "
        "HUB_LOGIN_LOCKOUT before new shared-password logins pause (addresses that logged in "
        f"successfully in the last {KNOWN_ADDRESS_DAYS} days can still log in).",
        "login",
        parsers.Integer(1, 100000),
        setting="login_max_failures_shared",
    ),
    Variable(
        "HUB_LOGIN_LOCKOUT",
        "5m",
        "Window in which failures are counted, and how long a first lockout lasts; each "
        "further lockout lasts twice as long, up to "
        f"{parsers.format_duration(MAX_LOCKOUT_SECONDS)}.",
        "login",
        parsers.Duration(1, MAX_LOCKOUT_SECONDS),
        setting="login_lockout_seconds",
    ),
    Variable(
        "JUPYTER_DOMAIN",
        "",
        "Public host name of the hub (used by the Traefik labels), e.g. jupyter.example.com. "
        "Set: the hub's public URL is https://JUPYTER_DOMAIN/ and its cookies are Secure.",
        "proxy",
        parsers.HOSTNAME,
        setting="domain",
        fix="use a bare host name such as jupyter.example.com (no scheme, no path).",
    ),
    Variable(
        "HUB_TRUSTED_PROXIES",
        "",
        "Reverse proxies in front of the hub's proxy whose X-Forwarded-For is believed, "
        "comma-separated: IP addresses, networks (CIDR) or host names, e.g. traefik (your "
        "Traefik container's name). The hub's own proxy is always trusted. Forwarded headers "
        "from anyone else are ignored.",
        "proxy",
        parsers.Addresses(),
        setting="trusted_proxies",
        empty=(),
    ),
    Variable(
        "HUB_PROXY_API_URL",
        "",
        "REST API URL of an external configurable-http-proxy, e.g. http://proxy:8001. "
        "Empty: the hub starts its own proxy (fine for trying it out; user servers then "
        "stop with the hub).",
        "proxy",
        parsers.HttpUrl(need_port=True),
        setting="proxy_api_url",
        fix="use the proxy's API address with a port, e.g. http://proxy:8001.",
    ),
    Variable(
        "CONFIGPROXY_AUTH_TOKEN",
        "",
        "Token the hub and the proxy share for the proxy API.",
        "proxy",
        parsers.Secret(32),
        setting="proxy_auth_token",
        required_with="HUB_PROXY_API_URL",
        generated=True,
    ),
    Variable(
        "HUB_BIND_URL",
        "http://127.0.0.1:8000",
        "Public URL of the hub. With a hub-managed proxy this is where the proxy listens; its "
        "path is the hub's base URL.",
        "proxy",
        parsers.HttpUrl(need_port=False),
        setting="bind_url",
    ),
    Variable(
        "POSTGRES_HOST",
        "",
        "PostgreSQL host name. Empty: the hub keeps its state in SQLite in HUB_DATA_DIR.",
        "database",
        parsers.HOSTNAME,
        setting="postgres_host",
    ),
    Variable("POSTGRES_PORT", "5432", "PostgreSQL port.", "database", _PORT,
             setting="postgres_port"),
    Variable("POSTGRES_DB", "jupyterhub", "PostgreSQL database name.", "database",
             setting="postgres_db"),
    Variable("POSTGRES_USER", "jupyterhub", "PostgreSQL user name.", "database",
             setting="postgres_user"),
    Variable(
        "POSTGRES_PASSWORD",
        "",
        "PostgreSQL password.",
        "database",
        parsers.Secret(16),
        setting="postgres_password",
        required_with="POSTGRES_HOST",
        generated=True,
    ),
    Variable(
        "HUB_SPAWNER",
        "docker",
        "How user servers run: docker (one container per user), swarm (one Docker Swarm "
        "service per user, on any node of the swarm; ./hub up deploys the stack with docker "
        "stack deploy) or local (processes on the hub's machine, no isolation; for trying "
        "the hub without Docker).",
        "servers",
        parsers.Choice(("docker", "swarm", "local")),
        setting="spawner",
    ),
    Variable(
        "HUB_SINGLEUSER_IMAGE",
        "personal-jupyter-singleuser:latest",
        "Docker image of the user servers.",
        "servers",
        parsers.IMAGE,
        setting="singleuser_image",
    ),
    Variable(
        "HUB_DOCKER_NETWORK",
        "jupyterhub-net",
        "Docker network that user containers join (the hub and proxy must be on it).",
        "servers",
        parsers.DOCKER_NAME,
        setting="docker_network",
    ),
    Variable(
        "HUB_CONNECT_HOST",
        "hub",
        "Host name user containers use to reach the hub API (the hub's compose service name).",
        "servers",
        parsers.HOSTNAME,
        setting="hub_connect_host",
    ),
    Variable(
        "HUB_HOME_VOLUME_DRIVER",
        "local",
        "Docker volume driver of the users' home volumes (a plugin's name, or local).",
        "servers",
        parsers.Pattern(re.compile(r"[a-z0-9][a-z0-9_./:-]*", re.IGNORECASE),
                        "a volume driver's name"),
        setting="home_volume_driver",
    ),
    Variable(
        "HUB_HOME_VOLUME_OPTIONS",
        "",
        "Options of the home volumes' driver, so that a user's files live on shared storage "
        "and follow them to any node (Swarm) or host: an NFS export, e.g. type=nfs "
        "o=addr=nas.lan,rw,nfsvers=4.1 device=:/export/jupyter/{username}, or a share every "
        "node mounts at the same path, e.g. type=none o=bind device=/mnt/nas/jupyter/{username}. "
        "The hub creates the user's directory (device's last part) before their first start. "
        "Empty: plain volumes on the machine that runs the server.",
        "servers",
        parsers.VolumeOptions(),
        setting="home_volume_options",
        empty=(),
    ),
    Variable(
        "HUB_SWARM_SINGLE_NODE",
        "false",
        "HUB_SPAWNER=swarm on a swarm of one node: home volumes may then be plain local "
        "volumes, and every user server runs on the hub's node, beside its files. Without "
        "it, swarm needs HUB_HOME_VOLUME_OPTIONS (shared storage).",
        "servers",
        parsers.Boolean(),
        setting="swarm_single_node",
    ),
    Variable(
        "HUB_SWARM_CONSTRAINTS",
        "",
        "Where on the swarm user servers may run: placement constraints, comma-separated, as "
        "docker service create --constraint takes them, e.g. node.labels.personal-hub.servers"
        "==true. Empty: any node (the scheduler picks).",
        "servers",
        parsers.Constraints(),
        setting="swarm_constraints",
        empty=(),
    ),
    Variable(
        "HUB_MEM_LIMIT",
        "2G",
        "Memory limit of each user server (no swap beyond it); a process that goes over is "
        "stopped by the kernel.",
        "servers",
        parsers.OrWord(parsers.Size(64 * 1024**2, 1024**5), "unlimited"),
        setting="mem_limit_bytes",
    ),
    Variable(
        "HUB_PIDS_LIMIT",
        "1024",
        "Most processes and threads in one user server (stops fork bombs).",
        "servers",
        parsers.OrWord(parsers.Integer(64, 4_194_304), "unlimited"),
        setting="pids_limit",
    ),
    Variable(
        "HUB_CAP_ADD",
        "",
        "Linux capabilities given back to user containers, comma-separated (all are dropped "
        "by default; the standard images need none), e.g. CHOWN,SETUID,SETGID for an image "
        "that starts as root.",
        "servers",
        parsers.Capabilities(),
        setting="cap_add",
        empty=(),
    ),
    Variable(
        "HUB_CPU_LIMIT",
        "",
        "CPU limit of each user server in cores. Empty: no limit.",
        "servers",
        parsers.Cores(0.01, 1024),
        setting="cpu_limit",
    ),
    Variable(
        "HUB_IDLE_TIMEOUT",
        "1h",
        "Stop user servers idle this long. Files are kept.",
        "servers",
        parsers.Duration(20, 365 * 86400, zero_means="the idle culler is off"),
        setting="idle_timeout_seconds",
    ),
    Variable(
        "HUB_START_CONCURRENCY",
        "auto",
        "User servers that start at the same time; further starts wait in a first-come "
        "queue, and each person sees their place on the start page. auto: one per CPU "
        "core of the hub's machine (starting JupyterLab is CPU-bound).",
        "servers",
        parsers.OrWord(parsers.Integer(1, 256), "auto"),
        setting="start_concurrency",
    ),
    Variable(
        "HUB_NAMED_SERVER_LIMIT",
        "0",
        "Named servers each user may have besides the default one (0: named servers off). "
        "Named servers share the user's home volume.",
        "servers",
        parsers.Integer(0, 100),
        setting="named_server_limit",
    ),
    Variable(
        "HUB_PROFILES",
        "",
        "Kinds of server a person picks from on the start page, separated by ; each a name "
        "and what it sets: cpu (cores), memory, gpus (all or a number of NVIDIA GPUs; see "
        "the docs for the host's setup) and image. What a profile leaves out is "
        "HUB_CPU_LIMIT, HUB_MEM_LIMIT or HUB_SINGLEUSER_IMAGE; the first is pre-selected. "
        "e.g. small: cpu=1 memory=2G; large: cpu=4 memory=8G; gpu: memory=16G gpus=all. "
        "Empty: no choice, every server is the same.",
        "servers",
        Profiles(),
        setting="profiles",
        empty=(),
    ),
    Variable(
        "HUB_DATA_CONNECTIONS",
        "",
        "Databases every user's notebooks reach by name, name=URL separated by spaces (SQLAlchemy "
        "URLs, passwords in them percent-encoded), e.g. sales=postgresql://reader:PASSWORD@"
        "db.lan:5432/sales. In a notebook: %sql --section sales, or team_data.engine('sales') "
        "in Python. Anyone with a server can read these credentials: give read-only accounts.",
        "servers",
        parsers.Connections(),
        setting="data_connections",
        empty={},
    ),
    Variable(
        "HUB_SCHEDULED_RUNS",
        "true",
        "Let users run notebooks on a schedule (the hub's Services menu: Scheduler), in a "
        "container of their own with their files, also while their server is stopped "
        "(Docker spawner only).",
        "servers",
        parsers.Boolean(),
        setting="scheduled_runs",
    ),
    Variable(
        "HUB_SCHEDULED_RUN_TIMEOUT",
        "1h",
        "Longest a scheduled run may take; it is stopped then, and shown as timed out.",
        "servers",
        parsers.Duration(60, 7 * 86400),
        setting="scheduled_run_timeout_seconds",
    ),
    Variable(
        "HUB_REPORTS",
        "true",
        "Let users publish notebooks as read-only reports that every hub user can open "
        "(the hub's Services menu: Reports; Docker spawner only).",
        "servers",
        parsers.Boolean(),
        setting="reports",
    ),
    Variable(
        "HUB_SHARING",
        "true",
        "Let users share their server with other users (JupyterLab's Share dialog, JupyterHub "
        "sharing) for real-time collaboration. A guest runs code as the owner.",
        "servers",
        parsers.Boolean(),
        setting="sharing",
    ),
    Variable(
        "HUB_EGRESS",
        "internet",
        "What user containers may reach beyond the hub and the proxy (Docker stack only; a "
        "firewall service keeps it in place): internet (the internet, but not your LAN, "
        "other private or link-local addresses, the cloud metadata service or the Docker "
        "host), none (nothing) or all (no filtering).",
        "servers",
        parsers.Choice(EGRESS_POLICIES),
        setting="egress",
    ),
    Variable(
        "HUB_EGRESS_ALLOW",
        "",
        "Addresses user containers may reach whatever HUB_EGRESS says: a model server, a "
        "database or a NAS on your LAN or on the Docker host, e.g. 192.168.1.20:11434 (one "
        "port, TCP and UDP) or 192.168.1.0/24 (every port). Empty: none.",
        "servers",
        parsers.Destinations(),
        setting="egress_allow",
        empty=(),
    ),
    Variable(
        "TZ",
        "Etc/UTC",
        "Time zone of the hub and of every user server.",
        "servers",
        parsers.TimeZone(),
        setting="timezone",
    ),
    Variable(
        "OPENAI_API_KEY",
        "",
        "OpenAI (ChatGPT) API key for the AI assistant.",
        "ai",
        parsers.Secret(),
    ),
    Variable(
        "ANTHROPIC_API_KEY",
        "",
        "Anthropic (Claude) API key for the AI assistant.",
        "ai",
        parsers.Secret(),
    ),
    Variable(
        "HUB_AI_MODEL",
        "auto",
        "Model every user's AI assistant (Jupyternaut) answers with, as LiteLLM names it. "
        f"auto: {AI_DEFAULT_MODELS['OPENAI_API_KEY']} when OPENAI_API_KEY is set, else "
        f"{AI_DEFAULT_MODELS['ANTHROPIC_API_KEY']} when ANTHROPIC_API_KEY is set, else none. "
        "none: no default; each user picks a model in the chat's settings. Applies to every "
        "server at its next start.",
        "ai",
        parsers.OrWords(parsers.MODEL_ID, ("auto", "none")),
        setting="ai_model",
    ),
    Variable(
        "HUB_AI_BASE_URL",
        "",
        "OpenAI-compatible API of a model server of your own (Ollama, vLLM, a LiteLLM proxy), "
        "e.g. http://192.168.1.20:11434/v1. HUB_AI_MODEL is then openai/<a model it serves>, "
        "and OPENAI_API_KEY is only needed if the server asks for one. User servers must be "
        "allowed to reach it (HUB_EGRESS_ALLOW=192.168.1.20:11434 for a LAN address). "
        "Empty: the providers' own APIs.",
        "ai",
        parsers.HttpUrl(need_port=False, credentials=False),
        setting="ai_base_url",
    ),
    Variable(
        "HUB_DATA_DIR",
        "/srv/jupyterhub",
        "Directory of the hub's own state: cookie secret, SQLite database (if used).",
        "hub",
        parsers.Pattern(re.compile(r"[^\0]+"), "a directory"),
        setting="data_dir",
    ),
    Variable(
        "HUB_CONFIG_D",
        "",
        "Directory of extra jupyterhub_config.d/*.py files loaded after ours, in sorted order. "
        "Empty: HUB_DATA_DIR/jupyterhub_config.d.",
        "hub",
        parsers.Pattern(re.compile(r"[^\0]+"), "a directory"),
        setting="config_d",
    ),
    Variable(
        "HUB_LOG_LEVEL",
        "INFO",
        "Hub log level.",
        "hub",
        parsers.Choice(("DEBUG", "INFO", "WARNING", "ERROR"), upper=True),
        setting="log_level",
    ),
)

COMPOSE_VARIABLES: tuple[Variable, ...] = (
    Variable(
        "HUB_PUBLISH_ADDRESS",
        "127.0.0.1",
        "Host address the proxy's port is published on. 127.0.0.1: only this machine (put "
        "Traefik or another reverse proxy in front); 0.0.0.0: every interface.",
        "compose",
        parsers.IpAddress(),
    ),
    Variable("HUB_PUBLISH_PORT", "8000", "Host port of the hub's web interface.", "compose",
             _PORT),
    Variable(
        "HUB_WAIT_TIMEOUT",
        "300",
        "Seconds ./hub up waits for every service of the stack to be healthy (the first "
        "start builds the hub image).",
        "compose",
        parsers.Integer(10, 3600),
    ),
    Variable(
        "TRAEFIK_NETWORK",
        "traefik_default",
        "External Docker network of your Traefik (used only when JUPYTER_DOMAIN is set).",
        "compose",
        parsers.DOCKER_NAME,
    ),
    Variable(
        "TRAEFIK_ENTRYPOINT",
        "websecure",
        "Traefik entrypoint that serves JUPYTER_DOMAIN (configure TLS on it in Traefik).",
        "compose",
        parsers.DOCKER_NAME,
    ),
    Variable(
        "STACK_ENV_FILE",
        "../stack.env",
        "This settings file, as the compose file's directory sees it: the hub reads its "
        "settings from there. Portainer: stack.env (the file Portainer writes).",
        "compose",
    ),
    Variable("HUB_IMAGE", "personal-hub:latest", "Name of the hub image built here.", "compose",
             parsers.IMAGE),
    Variable(
        "PYTHON_IMAGE", "python:3.12.14-slim-trixie", "Base image of the hub image.", "compose",
        parsers.IMAGE,
    ),
    Variable(
        "SINGLEUSER_BASE_IMAGE",
        "quay.io/jupyter/datascience-notebook:2026-08-24",
        "Base image of the single-user image (a docker-stacks image, by its dated tag).",
        "compose",
        parsers.IMAGE,
    ),
    Variable(
        "POSTGRES_IMAGE",
        "postgres:16.15-trixie",
        "PostgreSQL image. Stay on the same major version (16): a new major needs a dump and "
        "restore of the database.",
        "compose",
        parsers.IMAGE,
    ),
    Variable(
        "CHP_IMAGE",
        "quay.io/jupyterhub/configurable-http-proxy:5.3.0",
        "configurable-http-proxy image.",
        "compose",
        parsers.IMAGE,
    ),
)

VARIABLES = VARIABLES + COMPOSE_VARIABLES

BY_NAME = {variable.name: variable for variable in VARIABLES}


def generate_secret(variable: Variable) -> str:
    """A strong random value, comfortably longer than the variable's minimum."""
    return secrets.token_urlsafe(max(32, variable.min_length))


def comment(text: str) -> list[str]:
    """`text` as shell comment lines that fit an editor window."""
    return ["# " + line for line in textwrap.wrap(text, width=86, break_on_hyphens=False)]


def render_env_file(values: dict[str, str] | None = None) -> str:
    """Render a stack.env: every variable with its help as a comment.

    `values` overrides defaults; required secrets without a value get PLACEHOLDER.
    """
    values = values or {}
    lines = [
        "# personal-hub settings. Copy to stack.env (`personal-hub init` does it and",
        "# generates the secrets), keep it private (chmod 600), never commit it.",
        "# Check it with `personal-hub check --env-file stack.env`.",
    ]
    for group, title in GROUPS:
        lines += ["", f"# --- {title} ---"]
        for variable in VARIABLES:
            if variable.group != group:
                continue
            lines += comment(variable.description())
            lines += comment(f"Values: {variable.allowed}.")
            value = values.get(variable.name)
            if value is None:
                value = PLACEHOLDER if variable.generated else variable.default
            lines.append(f"{variable.name}={value}")
    return "\n".join(lines) + "\n"


REFERENCE_START = "<!-- Generated from personal_hub.variables.VARIABLES by render_reference(). -->"
REFERENCE_END = "<!-- End of generated table. -->"


def render_reference() -> str:
    """The docs' configuration reference: one Markdown table per group.

    An empty value means the default (or "not set" where the default is empty), as with
    docker compose's ${X:-default}; a variable that means something else says so.
    """
    lines = [
        REFERENCE_START,
        "",
        "An empty value is the same as leaving the variable out: its default applies (as with "
        "docker compose's `${X:-default}`), unless the table says what empty means.",
    ]
    for group, title in GROUPS:
        lines += [
            "",
            f"#### {title}",
            "",
            "| Variable | Default | Values | Meaning |",
            "|---|---|---|---|",
        ]
        for variable in VARIABLES:
            if variable.group != group:
                continue
            default = f"`{variable.default}`" if variable.default else "*(empty)*"
            meaning = variable.description().replace("*", "\\*")
            if variable.secret:
                meaning += (
                    " **Secret**; `init` generates it." if variable.generated else " **Secret.**"
                )
            lines.append(f"| `{variable.name}` | {default} | {variable.allowed} | {meaning} |")
    lines += ["", REFERENCE_END]
    return "\n".join(lines) + "\n"
