"""Turn the environment (the variables of stack.env) into typed, validated settings.

`load_settings(environ)` validates every variable and raises one `SettingsError`
listing *all* problems: the variable, what is wrong, how to fix it. Secret values are
never echoed (at most their length). Standard library only, so `personal-hub check`
runs anywhere, and importing this module reads nothing.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from urllib.parse import quote, urlsplit

from .egress import DEFAULT_POLICY as DEFAULT_EGRESS
from .egress import POLICIES as EGRESS_POLICIES
from .usernames import USERNAME_RULE, normalize_username, username_problem
from .variables import BY_NAME, PLACEHOLDER, VARIABLES

GENERATE_HINT = (
    "generate one with `python3 -c 'import secrets; print(secrets.token_urlsafe(32))'` "
    "or create a fresh stack.env with `personal-hub init`"
)
# Values people put in by hand that are as good as no secret at all.
WEAK_SECRETS = frozenset(
    {PLACEHOLDER, "changeme", "change_me", "password", "secret", "admin", "jupyter", "123456"}
)
SPAWNER_MODES = ("docker", "local")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
AI_KEY_VARIABLES = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")
EGRESS_SUMMARY = {
    "internet": "internet (not private or link-local addresses, not the Docker host)",
    "none": "none (the hub and the proxy only)",
    "all": "all (not filtered)",
}
# Our own prefix: an unknown HUB_* variable is almost certainly a typo.
OWN_PREFIX = "HUB_"

_BYTE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_BYTES_PATTERN = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?", re.IGNORECASE)
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION_PATTERN = re.compile(r"(\d+)\s*([smhd]?)", re.IGNORECASE)
_DOCKER_NAME_PATTERN = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")
_HOSTNAME_PATTERN = re.compile(
    r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*",
    re.IGNORECASE,
)
_IMAGE_PATTERN = re.compile(r"[a-z0-9][a-z0-9._/:@-]*", re.IGNORECASE)
MIN_MEM_LIMIT = 64 * 1024**2
MAX_MEM_LIMIT = 1024**5
MIN_PIDS_LIMIT = 64
MAX_LOCKOUT_SECONDS = 86400
MAX_IDLE_TIMEOUT_SECONDS = 365 * 86400
# Written for "no limit" where a limit is the default.
UNLIMITED = ("unlimited",)
# Linux capabilities Docker knows (without the CAP_ prefix).
CAPABILITIES = frozenset(
    """AUDIT_CONTROL AUDIT_READ AUDIT_WRITE BLOCK_SUSPEND BPF CHECKPOINT_RESTORE CHOWN
    DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID IPC_LOCK IPC_OWNER KILL LEASE
    LINUX_IMMUTABLE MAC_ADMIN MAC_OVERRIDE MKNOD NET_ADMIN NET_BIND_SERVICE NET_BROADCAST
    NET_RAW PERFMON SETFCAP SETGID SETPCAP SETUID SYS_ADMIN SYS_BOOT SYS_CHROOT
    SYS_MODULE SYS_NICE SYS_PACCT SYS_PTRACE SYS_RAWIO SYS_RESOURCE SYS_TIME
    SYS_TTY_CONFIG SYSLOG WAKE_ALARM""".split()
)


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
    mem_limit_bytes: int | None
    cpu_limit: float | None
    pids_limit: int | None
    cap_add: tuple[str, ...]
    idle_timeout_seconds: int
    named_server_limit: int
    sharing: bool
    egress: str
    timezone: str
    ai_api_keys: Mapping[str, str] = field(repr=False)
    data_dir: str
    config_d: str
    log_level: str

    @property
    def external_proxy(self) -> bool:
        return self.proxy_api_url is not None

    @property
    def public_url(self) -> str | None:
        """The hub's public https URL behind Traefik (TLS ends there), or None."""
        return f"https://{self.domain}/" if self.domain else None

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
        servers = (
            f"Docker containers from {self.singleuser_image} on network {self.docker_network}"
            if self.spawner == "docker"
            else "local processes (no isolation; for trying the hub)"
        )
        egress = (
            EGRESS_SUMMARY[self.egress]
            if self.spawner == "docker"
            else "not filtered (local processes)"
        )
        ai = ", ".join(sorted(self.ai_api_keys)) or "none"
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
            f"limits:         {limits}",
            f"user egress:    {egress}",
            f"idle culling:   {idle}",
            f"server sharing: {'on' if self.sharing else 'off'}",
            f"time zone:      {self.timezone}",
            f"AI keys set:    {ai}",
            f"data directory: {self.data_dir}",
        ]


def format_bytes(value: int) -> str:
    for unit in ("T", "G", "M", "K"):
        size = _BYTE_UNITS[unit]
        if value % size == 0:
            return f"{value // size}{unit}"
    return str(value)


# ---------------------------------------------------------------- small parsers
# Each returns the parsed value or raises ValueError with a message that never
# contains the raw value of a secret.


def parse_bytes(text: str) -> int:
    from decimal import Decimal

    match = _BYTES_PATTERN.fullmatch(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a size.")
    number, unit = match.groups()
    if len(number) > 20:
        raise ValueError("is far too large a size.")
    value = int(Decimal(number) * _BYTE_UNITS[unit.upper()])
    if value > MAX_MEM_LIMIT:
        raise ValueError(f"{format_bytes(value)} is more than {format_bytes(MAX_MEM_LIMIT)}.")
    return value


def parse_limit(parse):
    """`parse`, but 'unlimited' (or 0) means no limit: None."""

    def parse_or_unlimited(text: str):
        if text.strip().lower() in UNLIMITED:
            return None
        return parse(text)

    return parse_or_unlimited


def parse_capabilities(text: str) -> tuple[str, ...]:
    names = [name.strip().upper().removeprefix("CAP_") for name in text.split(",")]
    names = [name for name in names if name]
    unknown = [name for name in names if name not in CAPABILITIES]
    if unknown:
        raise ValueError(f"{', '.join(unknown)} {'is' if len(unknown) == 1 else 'are'} not a "
                         "Linux capability.")
    return tuple(sorted(set(names)))


def parse_trusted_proxies(text: str) -> tuple[str, ...]:
    import ipaddress

    entries = tuple(entry.strip() for entry in text.split(",") if entry.strip())
    for entry in entries:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            if not _HOSTNAME_PATTERN.fullmatch(entry):
                raise ValueError(
                    f"{entry!r} is neither an IP address, a network nor a host name."
                ) from None
    return entries


def parse_duration(text: str, maximum: int | None = None) -> int:
    match = _DURATION_PATTERN.fullmatch(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a duration.")
    number, unit = match.groups()
    if len(number) > 12:
        raise ValueError("is far too long a duration.")
    seconds = int(number) * _DURATION_UNITS[unit.lower()]
    if maximum is not None and seconds > maximum:
        raise ValueError(f"{seconds} seconds is longer than the most allowed, {maximum}.")
    return seconds


def parse_int(text: str, minimum: int, maximum: int | None = None) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a whole number.") from None
    if value < minimum or (maximum is not None and value > maximum):
        upper = f" and {maximum}" if maximum is not None else " or more"
        bound = f"between {minimum}{upper}" if maximum is not None else f"{minimum}{upper}"
        raise ValueError(f"{value} is out of range; it must be {bound}.")
    return value


_BOOLEANS = {"true": True, "yes": True, "1": True, "on": True,
             "false": False, "no": False, "0": False, "off": False}


def parse_bool(text: str) -> bool:
    try:
        return _BOOLEANS[text.strip().lower()]
    except KeyError:
        raise ValueError(f"{text!r} is not true or false.") from None


def parse_user_list(text: str) -> list[str]:
    return [normalize_username(name) for name in text.split(",") if name.strip()]


def timezone_problem(name: str) -> str | None:
    """None if `name` is a known IANA zone (or no zone database exists to check against)."""
    import zoneinfo

    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        try:
            zoneinfo.ZoneInfo("UTC")
        except zoneinfo.ZoneInfoNotFoundError:
            return None  # no zone database here at all: nothing to check against
        return f"{name!r} is not a known time zone."
    return None


# ---------------------------------------------------------------- the loader


class _Reader:
    """Reads variables with defaults and collects problems instead of raising."""

    def __init__(self, environ: Mapping[str, str]):
        self.environ = environ
        self.problems: list[Problem] = []

    def raw(self, name: str) -> str:
        value = self.environ.get(name)
        if value is None:
            value = BY_NAME[name].default
        return value.strip()

    def problem(self, name: str, message: str, fix: str) -> None:
        self.problems.append(Problem(name, message, fix))

    def parsed(self, name: str, parse, fix: str, *, empty=None):
        text = self.raw(name)
        if not text:
            return empty
        try:
            return parse(text)
        except ValueError as error:
            self.problem(name, str(error), fix)
            return empty

    def secret(self, name: str, *, required: bool, why_required: str = "") -> str | None:
        value = self.environ.get(name, "")
        variable = BY_NAME[name]
        if not value:
            if required:
                self.problem(name, f"is not set{why_required}.", f"set it; {GENERATE_HINT}.")
            return None
        if value != value.strip():
            self.problem(
                name,
                "has leading or trailing whitespace (a copy-paste accident?).",
                "remove the spaces around the value.",
            )
            return None
        if value.lower() in WEAK_SECRETS:
            self.problem(
                name,
                "is a placeholder or a well-known weak value.",
                f"replace it; {GENERATE_HINT}.",
            )
            return None
        if len(value) < variable.min_length:
            self.problem(
                name,
                f"is {len(value)} characters long; at least {variable.min_length} are needed.",
                f"use a longer value; {GENERATE_HINT}.",
            )
            return None
        return value


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Validate every variable in `environ`; raise SettingsError listing all problems."""
    read = _Reader(environ)
    _check_unknown_variables(read)

    user_password = read.secret("JUPYTER_PASSWORD", required=True)
    admin_user = _read_admin_user(read)
    admin_password = read.secret(
        "JUPYTER_ADMIN_PASSWORD",
        required=admin_user is not None,
        why_required=" but JUPYTER_ADMIN_USER is (the admin logs in with this password)",
    )
    if admin_password and admin_password == user_password:
        read.problem(
            "JUPYTER_ADMIN_PASSWORD",
            "is the same as JUPYTER_PASSWORD, so every user could log in as admin.",
            "use a different value; " + GENERATE_HINT + ".",
        )
    allowed_users = _read_allowed_users(read)

    proxy_api_url = read.parsed(
        "HUB_PROXY_API_URL",
        lambda text: _parse_http_url(text, need_port=True),
        "use the proxy's API address with a port, e.g. http://proxy:8001.",
    )
    proxy_auth_token = read.secret(
        "CONFIGPROXY_AUTH_TOKEN",
        required=proxy_api_url is not None,
        why_required=" but HUB_PROXY_API_URL is (the proxy API needs it)",
    )
    bind_url = read.parsed(
        "HUB_BIND_URL",
        lambda text: _parse_http_url(text, need_port=False),
        "use a URL like http://127.0.0.1:8000 or https://jupyter.example.com/.",
        empty="",
    )
    if not read.raw("HUB_BIND_URL"):
        read.problem("HUB_BIND_URL", "is empty.", "set it, e.g. http://127.0.0.1:8000.")

    postgres_host = read.raw("POSTGRES_HOST") or None
    if postgres_host and not _HOSTNAME_PATTERN.fullmatch(postgres_host):
        read.problem(
            "POSTGRES_HOST", f"{postgres_host!r} is not a host name.", "use e.g. db or 127.0.0.1."
        )
    postgres_password = read.secret(
        "POSTGRES_PASSWORD",
        required=postgres_host is not None,
        why_required=" but POSTGRES_HOST is",
    )
    postgres_port = read.parsed(
        "POSTGRES_PORT", lambda t: parse_int(t, 1, 65535), "use a port number such as 5432.",
        empty=5432,
    )
    if postgres_host:
        for name in ("POSTGRES_DB", "POSTGRES_USER"):
            if not read.raw(name):
                read.problem(name, "is empty but POSTGRES_HOST is set.", "set it, e.g. jupyterhub.")

    spawner = read.raw("HUB_SPAWNER").lower()
    if spawner not in SPAWNER_MODES:
        read.problem(
            "HUB_SPAWNER", f"{spawner!r} is not a spawner mode.", "use docker or local."
        )
    image = read.raw("HUB_SINGLEUSER_IMAGE")
    if not _IMAGE_PATTERN.fullmatch(image):
        read.problem(
            "HUB_SINGLEUSER_IMAGE",
            f"{image!r} is not a Docker image name.",
            "use e.g. personal-jupyter-singleuser:latest.",
        )
    network = read.raw("HUB_DOCKER_NETWORK")
    if not _DOCKER_NAME_PATTERN.fullmatch(network):
        read.problem(
            "HUB_DOCKER_NETWORK",
            f"{network!r} is not a Docker network name.",
            "use letters, digits, '_', '.', '-', e.g. jupyterhub-net.",
        )
    connect_host = read.raw("HUB_CONNECT_HOST")
    if not _HOSTNAME_PATTERN.fullmatch(connect_host):
        read.problem(
            "HUB_CONNECT_HOST",
            f"{connect_host!r} is not a host name.",
            "use the hub's service name, e.g. hub.",
        )
    mem_limit = read.parsed(
        "HUB_MEM_LIMIT",
        parse_limit(parse_bytes),
        "use a size such as 2G or 512M, or unlimited.",
        empty=parse_bytes(BY_NAME["HUB_MEM_LIMIT"].default),
    )
    if mem_limit is not None and mem_limit < MIN_MEM_LIMIT:
        read.problem(
            "HUB_MEM_LIMIT",
            f"{format_bytes(mem_limit)} is too small to run a Jupyter server.",
            "use at least 64M (1G or more is comfortable), or unlimited.",
        )
        mem_limit = None
    cpu_limit = read.parsed("HUB_CPU_LIMIT", _parse_cpus, "use a number of cores such as 1.5.")
    pids_limit = read.parsed(
        "HUB_PIDS_LIMIT",
        parse_limit(lambda t: parse_int(t, MIN_PIDS_LIMIT, 4_194_304)),
        "use a number such as 1024, or unlimited.",
        empty=int(BY_NAME["HUB_PIDS_LIMIT"].default),
    )
    cap_add = read.parsed(
        "HUB_CAP_ADD",
        parse_capabilities,
        "use capability names such as CHOWN,SETUID, or leave it empty.",
        empty=(),
    )
    trusted_proxies = read.parsed(
        "HUB_TRUSTED_PROXIES",
        parse_trusted_proxies,
        "use IP addresses, networks such as 172.18.0.0/16, or host names, comma-separated.",
        empty=(),
    )
    idle_timeout = read.parsed(
        "HUB_IDLE_TIMEOUT",
        lambda t: parse_duration(t, MAX_IDLE_TIMEOUT_SECONDS),
        "use seconds or e.g. 30m, 2h (at most 365d); 0 turns culling off.",
        empty=0,
    )
    named_limit = read.parsed(
        "HUB_NAMED_SERVER_LIMIT", lambda t: parse_int(t, 0, 100), "use a number from 0 to 100.",
        empty=0,
    )
    sharing = read.parsed("HUB_SHARING", parse_bool, "use true or false.", empty=True)
    egress = read.raw("HUB_EGRESS").lower() or DEFAULT_EGRESS
    if egress not in EGRESS_POLICIES:
        read.problem(
            "HUB_EGRESS",
            f"{egress!r} is not an egress policy.",
            "use internet (the default: no LAN, no Docker host), none or all.",
        )
    timezone = read.raw("TZ") or "Etc/UTC"
    zone_problem = timezone_problem(timezone)
    if zone_problem:
        read.problem("TZ", zone_problem, "use an IANA name such as Europe/Berlin or Etc/UTC.")

    ai_api_keys = {}
    for name in AI_KEY_VARIABLES:
        key = read.secret(name, required=False)
        if key:
            ai_api_keys[name] = key

    domain = read.raw("JUPYTER_DOMAIN") or None
    if domain and not _HOSTNAME_PATTERN.fullmatch(domain):
        read.problem(
            "JUPYTER_DOMAIN",
            f"{domain!r} is not a host name.",
            "use a bare host name such as jupyter.example.com (no scheme, no path).",
        )

    data_dir = read.raw("HUB_DATA_DIR")
    if not data_dir:
        read.problem("HUB_DATA_DIR", "is empty.", "set it to a directory, e.g. /srv/jupyterhub.")
    config_d = read.raw("HUB_CONFIG_D") or str(PurePosixPath(data_dir) / "jupyterhub_config.d")
    log_level = read.raw("HUB_LOG_LEVEL").upper()
    if log_level not in LOG_LEVELS:
        read.problem("HUB_LOG_LEVEL", f"{log_level!r} is not a log level.", "use INFO or DEBUG.")

    read.parsed(
        "HUB_PUBLISH_PORT", lambda t: parse_int(t, 1, 65535), "use a port number such as 8000."
    )
    read.parsed(
        "HUB_PUBLISH_ADDRESS",
        _parse_ip_address,
        "use an IP address of this host, e.g. 127.0.0.1 or 0.0.0.0.",
    )
    lockout = read.parsed(
        "HUB_LOGIN_LOCKOUT",
        lambda t: parse_duration(t, MAX_LOCKOUT_SECONDS),
        "use seconds or e.g. 5m, 1h (at most 1d).",
        empty=None,
    )
    if lockout == 0 or not read.raw("HUB_LOGIN_LOCKOUT"):
        read.problem(
            "HUB_LOGIN_LOCKOUT",
            "is zero or empty, which would turn brute-force protection off.",
            "use a window such as 5m.",
        )
    max_failures = read.parsed(
        "HUB_LOGIN_MAX_FAILURES", lambda t: parse_int(t, 1, 1000), "use a number such as 5.",
        empty=5,
    )
    max_failures_ip = read.parsed(
        "HUB_LOGIN_MAX_FAILURES_PER_IP",
        lambda t: parse_int(t, 1, 100000),
        "use a number such as 20.",
        empty=20,
    )
    max_failures_shared = read.parsed(
        "HUB_LOGIN_MAX_FAILURES_SHARED",
        lambda t: parse_int(t, 1, 100000),
        "use a number such as 30.",
        empty=int(BY_NAME["HUB_LOGIN_MAX_FAILURES_SHARED"].default),
    )

    if read.problems:
        raise SettingsError(read.problems)
    return Settings(
        user_password=user_password,
        admin_user=admin_user,
        admin_password=admin_password,
        allowed_users=frozenset(allowed_users),
        login_max_failures=max_failures,
        login_max_failures_per_ip=max_failures_ip,
        login_max_failures_shared=max_failures_shared,
        login_lockout_seconds=lockout,
        trusted_proxies=trusted_proxies,
        domain=domain,
        proxy_api_url=proxy_api_url,
        proxy_auth_token=proxy_auth_token,
        bind_url=bind_url,
        postgres_host=postgres_host,
        postgres_port=postgres_port,
        postgres_db=read.raw("POSTGRES_DB"),
        postgres_user=read.raw("POSTGRES_USER"),
        postgres_password=postgres_password,
        spawner=spawner,
        singleuser_image=image,
        docker_network=network,
        hub_connect_host=connect_host,
        mem_limit_bytes=mem_limit,
        cpu_limit=cpu_limit,
        pids_limit=pids_limit,
        cap_add=cap_add,
        idle_timeout_seconds=idle_timeout,
        named_server_limit=named_limit,
        sharing=sharing,
        egress=egress,
        timezone=timezone,
        ai_api_keys=ai_api_keys,
        data_dir=data_dir,
        config_d=config_d,
        log_level=log_level,
    )


def _check_unknown_variables(read: _Reader) -> None:
    known = [variable.name for variable in VARIABLES]
    for name in sorted(read.environ):
        if name.startswith(OWN_PREFIX) and name not in BY_NAME:
            close = difflib.get_close_matches(name, known, n=1)
            fix = f"did you mean {close[0]}?" if close else "remove it (see example-stack.env)."
            read.problem(name, "is not a personal-hub setting.", fix)


def _read_admin_user(read: _Reader) -> str | None:
    admin_user = normalize_username(read.raw("JUPYTER_ADMIN_USER"))
    if not admin_user:
        return None
    problem = username_problem(admin_user)
    if problem:
        read.problem("JUPYTER_ADMIN_USER", problem, f"use a username of {USERNAME_RULE}.")
        return None
    return admin_user


def _read_allowed_users(read: _Reader) -> list[str]:
    names = parse_user_list(read.raw("HUB_ALLOWED_USERS"))
    bad = [name for name in names if username_problem(name)]
    if bad:
        read.problem(
            "HUB_ALLOWED_USERS",
            f"{', '.join(repr(name) for name in bad)} {'is' if len(bad) == 1 else 'are'} "
            "not a valid username.",
            f"usernames are {USERNAME_RULE}; separate them with commas.",
        )
    return [name for name in names if not username_problem(name)]


def _parse_http_url(text: str, *, need_port: bool) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{text!r} is not an http(s) URL.")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{text!r} has an invalid port.") from None
    if need_port and port is None:
        raise ValueError(f"{text!r} has no port.")
    return text.rstrip("/") if need_port else text


def _parse_cpus(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number of cores.") from None
    if not 0.01 <= value <= 1024:
        raise ValueError(f"{value:g} cores is out of range.")
    return value


def _parse_ip_address(text: str) -> str:
    import ipaddress

    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise ValueError(f"{text!r} is not an IP address.") from None
