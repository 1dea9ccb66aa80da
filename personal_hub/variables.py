"""The variables of stack.env: names, defaults, help text and which ones are secrets.

This is the single source for `example-stack.env` (rendered by `render_env_file`),
for `personal-hub init` and for the README's configuration table. Standard library
only: `personal-hub init` must work on a Docker host that has nothing but python3.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

# The placeholder written into example-stack.env for every required secret.
# `check` refuses it, so a copied example file never runs with a known secret.
PLACEHOLDER = "change-me"


@dataclass(frozen=True)
class Variable:
    name: str
    default: str
    help: str
    group: str
    secret: bool = False
    # secrets: the minimum length `check` accepts; 0 means "optional, any length"
    min_length: int = 0
    # whether `init` generates a value for it (a secret that the hub needs)
    generated: bool = False


GROUPS = (
    ("login", "Login and users"),
    ("proxy", "Proxy (configurable-http-proxy)"),
    ("database", "Database (PostgreSQL; leave POSTGRES_HOST empty for embedded SQLite)"),
    ("servers", "User servers"),
    ("ai", "AI assistant keys (optional; passed into user servers only when set)"),
    ("hub", "Hub process"),
    (
        "compose",
        "Docker Compose stack (read by docker compose and ./hub up; the hub ignores them)",
    ),
)

VARIABLES: tuple[Variable, ...] = (
    Variable(
        "JUPYTER_PASSWORD",
        "",
        "Shared password every (non-admin) user logs in with. At least 12 characters.",
        "login",
        secret=True,
        min_length=12,
        generated=True,
    ),
    Variable(
        "JUPYTER_ADMIN_USER",
        "admin",
        "Username of the hub administrator. Leave empty for no admin account.",
        "login",
    ),
    Variable(
        "JUPYTER_ADMIN_PASSWORD",
        "",
        "Password of the admin user (only the admin user can use it; the shared password "
        "never makes anyone admin). At least 32 characters, different from JUPYTER_PASSWORD. "
        "Required when JUPYTER_ADMIN_USER is set.",
        "login",
        secret=True,
        min_length=32,
        generated=True,
    ),
    Variable(
        "HUB_ALLOWED_USERS",
        "",
        "Comma-separated usernames allowed to log in. Empty: anyone who knows "
        "JUPYTER_PASSWORD may log in with any valid username.",
        "login",
    ),
    Variable(
        "HUB_LOGIN_MAX_FAILURES",
        "5",
        "Failed logins for one username within HUB_LOGIN_LOCKOUT before that username is "
        "locked out for HUB_LOGIN_LOCKOUT.",
        "login",
    ),
    Variable(
        "HUB_LOGIN_MAX_FAILURES_PER_IP",
        "20",
        "Failed logins from one client address within HUB_LOGIN_LOCKOUT before that address "
        "is locked out.",
        "login",
    ),
    Variable(
        "HUB_LOGIN_MAX_FAILURES_SHARED",
        "30",
        "Failed logins with the shared password, over all usernames and addresses, within "
        "HUB_LOGIN_LOCKOUT before new shared-password logins pause (addresses that logged in "
        "successfully in the last 30 days can still log in).",
        "login",
    ),
    Variable(
        "HUB_LOGIN_LOCKOUT",
        "5m",
        "Window in which failures are counted, and how long a first lockout lasts; each "
        "further lockout lasts twice as long, up to a day (seconds, or 90s, 5m, 1h; at "
        "most 1d).",
        "login",
    ),
    Variable(
        "JUPYTER_DOMAIN",
        "",
        "Public host name of the hub (used by the Traefik labels), e.g. jupyter.example.com.",
        "proxy",
    ),
    Variable(
        "HUB_TRUSTED_PROXIES",
        "",
        "Reverse proxies in front of the hub's proxy whose X-Forwarded-For is believed, "
        "comma-separated: IP addresses, networks (CIDR) or host names, e.g. traefik (your "
        "Traefik container's name). The hub's own proxy is always trusted. Forwarded headers "
        "from anyone else are ignored.",
        "proxy",
    ),
    Variable(
        "HUB_PROXY_API_URL",
        "",
        "REST API URL of an external configurable-http-proxy, e.g. http://proxy:8001. "
        "Empty: the hub starts its own proxy (fine for trying it out; user servers then "
        "stop with the hub).",
        "proxy",
    ),
    Variable(
        "CONFIGPROXY_AUTH_TOKEN",
        "",
        "Token the hub and the proxy share for the proxy API. At least 32 characters. "
        "Required when HUB_PROXY_API_URL is set.",
        "proxy",
        secret=True,
        min_length=32,
        generated=True,
    ),
    Variable(
        "HUB_BIND_URL",
        "http://127.0.0.1:8000",
        "Public URL of the hub. With a hub-managed proxy this is where the proxy listens; its "
        "path is the hub's base URL.",
        "proxy",
    ),
    Variable(
        "POSTGRES_HOST",
        "",
        "PostgreSQL host name. Empty: the hub keeps its state in SQLite in HUB_DATA_DIR.",
        "database",
    ),
    Variable("POSTGRES_PORT", "5432", "PostgreSQL port.", "database"),
    Variable("POSTGRES_DB", "jupyterhub", "PostgreSQL database name.", "database"),
    Variable("POSTGRES_USER", "jupyterhub", "PostgreSQL user name.", "database"),
    Variable(
        "POSTGRES_PASSWORD",
        "",
        "PostgreSQL password. At least 16 characters. Required when POSTGRES_HOST is set.",
        "database",
        secret=True,
        min_length=16,
        generated=True,
    ),
    Variable(
        "HUB_SPAWNER",
        "docker",
        "How user servers run: docker (one container per user) or local (processes on the "
        "hub's machine, no isolation; for trying the hub without Docker).",
        "servers",
    ),
    Variable(
        "HUB_SINGLEUSER_IMAGE",
        "personal-jupyter-singleuser:latest",
        "Docker image of the user servers.",
        "servers",
    ),
    Variable(
        "HUB_DOCKER_NETWORK",
        "jupyterhub-net",
        "Docker network that user containers join (the hub and proxy must be on it).",
        "servers",
    ),
    Variable(
        "HUB_CONNECT_HOST",
        "hub",
        "Host name user containers use to reach the hub API (the hub's compose service name).",
        "servers",
    ),
    Variable(
        "HUB_MEM_LIMIT",
        "2G",
        "Memory limit of each user server, e.g. 2G or 512M (no swap beyond it); a process "
        "that goes over is stopped by the kernel. unlimited: no limit.",
        "servers",
    ),
    Variable(
        "HUB_PIDS_LIMIT",
        "1024",
        "Most processes and threads in one user server (stops fork bombs). unlimited: no "
        "limit.",
        "servers",
    ),
    Variable(
        "HUB_CAP_ADD",
        "",
        "Linux capabilities given back to user containers, comma-separated (all are dropped "
        "by default; the standard images need none), e.g. CHOWN,SETUID,SETGID for an image "
        "that starts as root.",
        "servers",
    ),
    Variable(
        "HUB_CPU_LIMIT",
        "",
        "CPU limit of each user server in cores, e.g. 1.5. Empty: no limit.",
        "servers",
    ),
    Variable(
        "HUB_IDLE_TIMEOUT",
        "1h",
        "Stop user servers idle this long (seconds, or 30m, 2h, 1d). Files are kept. "
        "0 turns the idle culler off.",
        "servers",
    ),
    Variable(
        "HUB_NAMED_SERVER_LIMIT",
        "0",
        "Named servers each user may have besides the default one (0: named servers off). "
        "Named servers share the user's home volume.",
        "servers",
    ),
    Variable(
        "HUB_SHARING",
        "true",
        "Let users share their server with other users (JupyterLab's Share dialog, JupyterHub "
        "sharing) for real-time collaboration: true or false. A guest runs code as the owner.",
        "servers",
    ),
    Variable(
        "HUB_EGRESS",
        "internet",
        "What user containers may reach beyond the hub and the proxy (Docker stack only; a "
        "firewall service keeps it in place): internet (the internet, but not your LAN, "
        "other private or link-local addresses, the cloud metadata service or the Docker "
        "host), none (nothing) or all (no filtering).",
        "servers",
    ),
    Variable(
        "TZ",
        "Etc/UTC",
        "Time zone of the hub and of every user server, e.g. Europe/Berlin.",
        "servers",
    ),
    Variable(
        "OPENAI_API_KEY",
        "",
        "OpenAI (ChatGPT) API key for the AI assistant.",
        "ai",
        secret=True,
    ),
    Variable(
        "ANTHROPIC_API_KEY",
        "",
        "Anthropic (Claude) API key for the AI assistant.",
        "ai",
        secret=True,
    ),
    Variable(
        "HUB_DATA_DIR",
        "/srv/jupyterhub",
        "Directory of the hub's own state: cookie secret, SQLite database (if used).",
        "hub",
    ),
    Variable(
        "HUB_CONFIG_D",
        "",
        "Directory of extra jupyterhub_config.d/*.py files loaded after ours, in sorted order. "
        "Empty: HUB_DATA_DIR/jupyterhub_config.d.",
        "hub",
    ),
    Variable(
        "HUB_LOG_LEVEL",
        "INFO",
        "Hub log level: DEBUG, INFO, WARNING or ERROR.",
        "hub",
    ),
)

COMPOSE_VARIABLES: tuple[Variable, ...] = (
    Variable(
        "HUB_PUBLISH_ADDRESS",
        "127.0.0.1",
        "Host address the proxy's port is published on. 127.0.0.1: only this machine (put "
        "Traefik or another reverse proxy in front); 0.0.0.0: every interface.",
        "compose",
    ),
    Variable("HUB_PUBLISH_PORT", "8000", "Host port of the hub's web interface.", "compose"),
    Variable(
        "TRAEFIK_NETWORK",
        "traefik_default",
        "External Docker network of your Traefik (used only when JUPYTER_DOMAIN is set).",
        "compose",
    ),
    Variable(
        "TRAEFIK_ENTRYPOINT",
        "websecure",
        "Traefik entrypoint that serves JUPYTER_DOMAIN (configure TLS on it in Traefik).",
        "compose",
    ),
    Variable("HUB_IMAGE", "personal-hub:latest", "Name of the hub image built here.", "compose"),
    Variable(
        "PYTHON_IMAGE", "python:3.12.14-slim-trixie", "Base image of the hub image.", "compose"
    ),
    Variable(
        "SINGLEUSER_BASE_IMAGE",
        "quay.io/jupyter/datascience-notebook:2026-08-24",
        "Base image of the single-user image (a docker-stacks image, by its dated tag).",
        "compose",
    ),
    Variable(
        "POSTGRES_IMAGE",
        "postgres:16.15-trixie",
        "PostgreSQL image. Stay on the same major version (16): a new major needs a dump and "
        "restore of the database.",
        "compose",
    ),
    Variable(
        "CHP_IMAGE",
        "quay.io/jupyterhub/configurable-http-proxy:5.3.0",
        "configurable-http-proxy image.",
        "compose",
    ),
)

VARIABLES = VARIABLES + COMPOSE_VARIABLES

BY_NAME = {variable.name: variable for variable in VARIABLES}


def generate_secret(variable: Variable) -> str:
    """A strong random value, comfortably longer than the variable's minimum."""
    return secrets.token_urlsafe(max(32, variable.min_length))


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
            lines.append(f"# {variable.help}")
            value = values.get(variable.name)
            if value is None:
                value = PLACEHOLDER if variable.generated else variable.default
            lines.append(f"{variable.name}={value}")
    return "\n".join(lines) + "\n"


REFERENCE_START = "<!-- Generated from personal_hub.variables.VARIABLES by render_reference(). -->"
REFERENCE_END = "<!-- End of generated table. -->"


def render_reference() -> str:
    """The docs' configuration reference: one Markdown table per group."""
    lines = [REFERENCE_START]
    for group, title in GROUPS:
        lines += ["", f"#### {title}", "", "| Variable | Default | Meaning |", "|---|---|---|"]
        for variable in VARIABLES:
            if variable.group != group:
                continue
            default = f"`{variable.default}`" if variable.default else "*(empty)*"
            meaning = variable.help.replace("*", "\\*")
            if variable.secret:
                meaning += (
                    " **Secret**; `init` generates it." if variable.generated else " **Secret.**"
                )
            lines.append(f"| `{variable.name}` | {default} | {meaning} |")
    lines += ["", REFERENCE_END]
    return "\n".join(lines) + "\n"
