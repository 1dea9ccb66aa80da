"""Apply validated settings to a traitlets `Config`, and load user overrides.

`apply(settings, c)` only *sets* traits (it never appends to or mutates a value that
is already there), so it can be unit-tested on a bare `Config()` without a hub.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import urlsplit

from .settings import Settings, SettingsError, load_settings

AUTHENTICATOR = "personal"
SPAWNERS = {"docker": "personal-docker", "swarm": "personal-swarm", "local": "personal-local"}
IDLE_CULLER = "idle-culler"
# jupyterhub-singleuser reads how often to report its activity to the hub from this.
SERVER_ACTIVITY_INTERVAL = "JUPYTERHUB_ACTIVITY_INTERVAL"
# Least privilege for jupyterhub-idle-culler when it only stops servers (not users).
IDLE_CULLER_SCOPES = ["list:users", "read:users:activity", "read:servers", "delete:servers"]
# JupyterHub sharing, for real-time collaboration: an owner may grant access to their
# own servers (`shares!user`) and find the names to share with (the Share dialog searches
# only with `list:users` / `list:groups`; `read:*:name` limits what a listing shows to
# names). Nothing more: the guest's access to one server is granted per share by the hub.
SHARING_USER_SCOPES = (
    "shares!user", "read:users:name", "read:groups:name", "list:users", "list:groups"
)
# What the token a server receives for a visitor may do. These are resolved for the
# *visitor* who logs in to the server, so they must name that server only: `shares!server`
# (shares of this server, which only its owner holds), never `shares!user` (which would
# hand the server's owner the power to share the visitor's own servers).
SHARING_SERVER_SCOPES = (
    "access:servers!server",
    "shares!server",
    "read:users:name",
    "read:groups:name",
    "list:users",
    "list:groups",
)


# The hub's own services with pages (in the hub's container, reached by its name).
SCHEDULER = "scheduler"
SCHEDULER_PORT = 10101
REPORTS = "reports"
REPORTS_PORT = 10102


def apply(settings: Settings, c) -> None:
    """Set every trait the settings decide on `c` (a traitlets Config)."""
    apply_hub(settings, c)
    apply_database(settings, c)
    apply_proxy(settings, c)
    apply_authenticator(settings, c)
    apply_spawner(settings, c)
    apply_sharing(settings, c)
    apply_idle_culler(settings, c)
    apply_services(settings, c)
    apply_roles(settings, c)


def apply_hub(settings: Settings, c) -> None:
    data_dir = Path(settings.data_dir)
    c.JupyterHub.bind_url = settings.bind_url
    c.JupyterHub.cookie_secret_file = str(data_dir / "jupyterhub_cookie_secret")
    c.JupyterHub.pid_file = str(data_dir / "jupyterhub.pid")
    c.JupyterHub.log_level = settings.log_level
    c.JupyterHub.allow_named_servers = settings.named_server_limit > 0
    c.JupyterHub.named_server_limit_per_user = settings.named_server_limit
    if settings.public_url:
        # Behind Traefik, TLS ends in front of the proxy: without the public https URL the
        # hub sees http and sets login cookies without `Secure`.
        c.JupyterHub.public_url = settings.public_url


def apply_database(settings: Settings, c) -> None:
    c.JupyterHub.db_url = settings.database_url()
    # Alembic migrations run on start (JupyterHub backs up SQLite files first).
    c.JupyterHub.upgrade_db = True


def apply_proxy(settings: Settings, c) -> None:
    c.JupyterHub.proxy_class = "personal_hub.proxy.PersonalProxy"
    c.ConfigurableHTTPProxy.pid_file = str(Path(settings.data_dir) / "jupyterhub-proxy.pid")
    if settings.proxy_auth_token:
        c.ConfigurableHTTPProxy.auth_token = settings.proxy_auth_token
    if settings.external_proxy:
        c.ConfigurableHTTPProxy.should_start = False
        c.ConfigurableHTTPProxy.api_url = settings.proxy_api_url
        # The external proxy keeps routing while the hub restarts, so user servers
        # must outlive the hub process too.
        c.JupyterHub.cleanup_servers = False
    else:
        c.ConfigurableHTTPProxy.should_start = True


def apply_authenticator(settings: Settings, c) -> None:
    c.JupyterHub.authenticator_class = AUTHENTICATOR
    auth = c.PersonalAuthenticator
    auth.user_password = settings.user_password
    auth.admin_password = settings.admin_password
    auth.admin_users = {settings.admin_user} if settings.admin_user else set()
    if settings.allowed_users:
        auth.allowed_users = set(settings.allowed_users)
        auth.allow_all = False
        # The list is the whole truth: a name removed from it can no longer log in,
        # even though the user is still in the database.
        auth.allow_existing_users = False
    else:
        # No list: whoever knows the shared password may log in, under any valid name.
        auth.allow_all = True
    auth.max_failures_per_user = settings.login_max_failures
    auth.max_failures_per_ip = settings.login_max_failures_per_ip
    auth.max_failures_shared = settings.login_max_failures_shared
    auth.lockout_seconds = settings.login_lockout_seconds
    auth.trusted_proxies = trusted_proxies(settings)


def trusted_proxies(settings: Settings) -> list[str]:
    """The hub's own proxy (its API host is the same process) plus the configured ones."""
    own = (
        [urlsplit(settings.proxy_api_url).hostname]
        if settings.external_proxy
        else ["127.0.0.1", "::1"]  # the hub starts the proxy beside itself
    )
    return [*own, *(p for p in settings.trusted_proxies if p not in own)]


# Spawner.start waits in the start queue and then until the server answers, with a
# timeout derived from measured starts (personal_hub.admission): the hub's own bound on
# start() only has to cover the longest queue, a crowd on a small machine.
QUEUE_SAFETY_TIMEOUT_SECONDS = 3600
# After start() returns the server already answers; the hub's check is a formality.
SERVER_ANSWER_TIMEOUT_SECONDS = 120


def apply_spawner(settings: Settings, c) -> None:
    c.JupyterHub.spawner_class = SPAWNERS[settings.spawner]
    c.Spawner.http_timeout = SERVER_ANSWER_TIMEOUT_SECONDS
    c.Spawner.start_timeout = QUEUE_SAFETY_TIMEOUT_SECONDS
    c.PersonalSpawner.start_concurrency = settings.start_concurrency or 0
    # Show the start page with its progress (a place in the start queue) at once, instead
    # of a browser spinning for JupyterHub's default 10 s first.
    c.JupyterHub.tornado_settings = {"slow_spawn_timeout": 0}
    c.PersonalSpawner.timezone = settings.timezone
    c.PersonalSpawner.ai_api_keys = dict(settings.ai_api_keys)
    c.PersonalSpawner.ai_model = settings.assistant_model
    c.PersonalSpawner.profiles = [profile.as_config() for profile in settings.profiles]
    c.PersonalSpawner.data_connections = dict(settings.data_connections)
    c.PersonalSpawner.ai_base_url = settings.ai_base_url
    if settings.mem_limit_bytes is not None:
        c.Spawner.mem_limit = settings.mem_limit_bytes
    if settings.cpu_limit is not None:
        c.Spawner.cpu_limit = settings.cpu_limit
    c.PersonalDockerSpawner.pids_limit = settings.pids_limit or 0
    c.PersonalDockerSpawner.cap_add = list(settings.cap_add)
    c.PersonalDockerSpawner.home_volume_driver = settings.home_volume_driver
    c.PersonalDockerSpawner.home_volume_options = dict(settings.home_volume_options)
    if settings.spawner == "swarm":
        c.PersonalSwarmSpawner.placement_constraints = list(settings.swarm_constraints)
        c.PersonalSwarmSpawner.single_node = settings.swarm_single_node
    if settings.in_containers:
        c.JupyterHub.hub_ip = "0.0.0.0"
        c.JupyterHub.hub_connect_ip = settings.hub_connect_host
        c.DockerSpawner.image = settings.singleuser_image
        c.DockerSpawner.network_name = settings.docker_network
        c.DockerSpawner.use_internal_ip = True
        if settings.spawner == "docker":
            # Containers are disposable; the home volume is what persists. (Swarm services
            # are always removed when they stop.)
            c.DockerSpawner.remove = True
    else:
        c.JupyterHub.hub_ip = "127.0.0.1"
        c.PersonalLocalSpawner.home_dir_template = str(
            Path(settings.data_dir) / "users" / "{username}"
        )


def apply_sharing(settings: Settings, c) -> None:
    scopes = set(SHARING_USER_SCOPES if settings.sharing else ())
    # Logging in to the pages of the hub's own services (through the hub's OAuth).
    scopes.update(f"access:services!service={service['name']}"
                  for service in page_services(settings))
    c.JupyterHub.extra_user_scopes = scopes
    c.Spawner.oauth_client_allowed_scopes = list(
        SHARING_SERVER_SCOPES if settings.sharing else ()
    )


def apply_idle_culler(settings: Settings, c) -> None:
    if not settings.idle_timeout_seconds:
        return
    # The hub learns of activity from the proxy and from each server every few minutes
    # by default: with a short timeout, a server in use would look idle and be stopped.
    interval = activity_interval(settings.idle_timeout_seconds)
    c.JupyterHub.last_activity_interval = interval
    c.Spawner.environment.update({SERVER_ACTIVITY_INTERVAL: str(interval)})


def apply_services(settings: Settings, c) -> None:
    services = []
    if settings.idle_timeout_seconds:
        services.append(idle_culler_service(settings))
    c.JupyterHub.services = services + page_services(settings)


def page_services(settings: Settings) -> list[dict]:
    """The services people use through pages: scheduled runs and reports (Docker only:
    a container per run or render)."""
    if not settings.in_containers:
        return []
    return ([scheduler_service(settings)] if settings.scheduled_runs else []) + (
        [reports_service(settings)] if settings.reports else [])


def hub_service(settings: Settings, name: str, port: int, module: str,
                environment: dict[str, str], description: str) -> dict:
    """A hub-managed service in the hub's container, with pages behind the hub's login
    (no consent page: it is the hub's own) in the hub's Services menu."""
    return {
        "name": name,
        # Where the proxy reaches it: in the hub's container, by the hub's name.
        "url": f"http://{settings.hub_connect_host}:{port}",
        "command": [sys.executable, "-m", module],
        "environment": environment,
        "display": True,
        "oauth_no_confirm": True,
        "info": {"description": description},
    }


def idle_culler_service(settings: Settings) -> dict:
    return {
        "name": IDLE_CULLER,
        "command": [
            sys.executable,
            "-m",
            "jupyterhub_idle_culler",
            f"--timeout={settings.idle_timeout_seconds}",
            f"--cull-every={culler_interval(settings.idle_timeout_seconds)}",
        ],
    }


def home_storage(settings: Settings) -> dict:
    """The home volumes' driver and options, for the services' own containers."""
    return {"driver": settings.home_volume_driver,
            "options": dict(settings.home_volume_options)}


def scheduler_service(settings: Settings) -> dict:
    """The scheduler (personal_hub.scheduler), a hub-managed service at
    /services/scheduler/, with what its run containers need."""
    from .scheduler import SETTINGS_VARIABLE
    from .spawner import server_environment

    run_settings = {
        "image": settings.singleuser_image,
        "network": settings.docker_network,
        "timezone": settings.timezone,
        "environment": server_environment(
            settings.timezone, dict(settings.ai_api_keys), dict(settings.data_connections),
            settings.assistant_model, settings.ai_base_url),
        "data_dir": settings.data_dir,
        "mem_limit": settings.mem_limit_bytes,
        "cpu_limit": settings.cpu_limit,
        "pids_limit": settings.pids_limit,
        "cap_add": list(settings.cap_add),
        "timeout_seconds": settings.scheduled_run_timeout_seconds,
        "home_storage": home_storage(settings),
    }
    return hub_service(settings, SCHEDULER, SCHEDULER_PORT, "personal_hub.scheduler",
                       {SETTINGS_VARIABLE: json.dumps(run_settings)},
                       "Run notebooks on a schedule")


def reports_service(settings: Settings) -> dict:
    """Published reports (personal_hub.reports) at /services/reports/."""
    from .reports import SETTINGS_VARIABLE

    render_settings = {
        "image": settings.singleuser_image,
        "data_dir": settings.data_dir,
        "network": settings.docker_network,
        "timezone": settings.timezone,
        "mem_limit": settings.mem_limit_bytes,
        "pids_limit": settings.pids_limit,
        "home_storage": home_storage(settings),
    }
    return hub_service(settings, REPORTS, REPORTS_PORT, "personal_hub.reports",
                       {SETTINGS_VARIABLE: json.dumps(render_settings)},
                       "Notebooks published as read-only reports")


def apply_roles(settings: Settings, c) -> None:
    """The admin role's users are exactly the configured admin: a renamed or removed
    JUPYTER_ADMIN_USER loses the role at the next start (the settings are the truth)."""
    roles = [{"name": "admin", "users": [settings.admin_user] if settings.admin_user else []}]
    if settings.idle_timeout_seconds:
        roles.append(
            {"name": IDLE_CULLER, "scopes": list(IDLE_CULLER_SCOPES), "services": [IDLE_CULLER]}
        )
    c.JupyterHub.load_roles = roles


def activity_interval(timeout_seconds: int) -> int:
    """How often the hub collects activity: a quarter of the idle timeout, between
    5 s and JupyterHub's default of 5 minutes."""
    return max(5, min(300, timeout_seconds // 4))


def culler_interval(timeout_seconds: int) -> int:
    """Check often enough to honour short timeouts, never more than every 10 minutes."""
    return max(10, min(600, timeout_seconds // 2))


def load_settings_or_exit(environ: Mapping[str, str] | None = None) -> Settings:
    """For the hub's config file: a user mistake is a clear message and exit 1, no traceback."""
    try:
        return load_settings(os.environ if environ is None else environ)
    except SettingsError as error:
        print(error.report(), file=sys.stderr)
        print("The hub was not started. Check again with `personal-hub check`.", file=sys.stderr)
        raise SystemExit(1) from None


def override_files(config_d: str) -> list[Path]:
    """`jupyterhub_config.d/*.py` in sorted order (none if the directory does not exist)."""
    directory = Path(config_d)
    if not directory.is_dir():
        return []
    return sorted(directory.glob("*.py"))


def load_overrides(config_d: str, load_subconfig: Callable[[str], None]) -> list[Path]:
    files = override_files(config_d)
    for path in files:
        load_subconfig(str(path))
    return files
