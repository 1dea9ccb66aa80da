"""Shared-password login with a separate admin password, username rules and lockout.

Built on JupyterHub's own `SharedPasswordAuthenticator` (its configuration checks: admin
password >= 32 characters and different from the user password; admins *must* use the
admin password). Added here: passwords compared as UTF-8 bytes in constant time (any
character works, and none makes the hub answer 500), username normalisation and
validation with a clear message on the login page, failure budgets per username, per
client address and for the shared password as a whole with growing back-off, kept in the
hub's database (`lockout`), client addresses taken from forwarded headers only when a
trusted proxy sent them (`addresses`), and admin rights that follow the settings.
"""

from __future__ import annotations

import asyncio
import math
import socket
import time
from hmac import compare_digest

from jupyterhub import orm
from jupyterhub.authenticators.shared import SharedPasswordAuthenticator
from jupyterhub.handlers.login import LoginHandler
from jupyterhub.utils import maybe_future
from traitlets import Integer, List, Unicode

from . import variables
from .addresses import client_address, normalize_address, parse_networks, peer_address
from .lockout import Budget, LoginLimiter, MemoryStore, SqlStore
from .usernames import normalize_username, username_problem

# How long a resolved trusted-proxy host name is believed (a proxy may restart elsewhere).
RESOLVE_TTL_SECONDS = 30


class LoginRefused(Exception):
    """A login refused before the password is checked; `message` is shown to the user."""

    def __init__(self, message: str, status: int = 403):
        super().__init__(message)
        self.message = message
        self.status = status


def describe_wait(seconds: float) -> str:
    """'1 second', '45 seconds', '5 minutes': rounded up, so the user never retries too early."""
    if seconds < 60:
        count, unit = max(1, math.ceil(seconds)), "second"
    elif seconds < 3600 * 2:
        count, unit = math.ceil(seconds / 60), "minute"
    else:
        count, unit = math.ceil(seconds / 3600), "hour"
    return f"{count} {unit}{'s' if count != 1 else ''}"


def same_secret(typed: str, expected: str | None) -> bool:
    """Constant-time compare of any text (compare_digest on str accepts ASCII only)."""
    if not expected:
        return False
    return compare_digest(
        typed.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )


class PersonalLoginHandler(LoginHandler):
    """JupyterHub's login page, showing *why* a login was refused when we know it."""

    async def prepare(self):
        # The real client address for this request's log lines and for the lockout.
        self.request.remote_ip = await self.authenticator.client_address(self.request)
        await maybe_future(super().prepare())

    async def post(self):
        try:
            await super().post()
        except LoginRefused as refused:
            self.set_status(refused.status)
            username = self.get_argument("username", default="", strip=True)[:64]
            html = await self._render(login_error=refused.message, username=username)
            self.finish(html)


class PersonalAuthenticator(SharedPasswordAuthenticator):
    """Log in with the shared password; the admin with the separate admin password."""

    max_failures_per_user = Integer(
        variables.default_value("HUB_LOGIN_MAX_FAILURES"),
        config=True,
        help="""Failed logins for one username within `lockout_seconds` before that username
        is locked, for addresses that have failed themselves (a person logging in from an
        address without failures is never locked out by someone else's failures).""",
    )
    max_failures_per_ip = Integer(
        variables.default_value("HUB_LOGIN_MAX_FAILURES_PER_IP"),
        config=True,
        help="""Failed logins from one client address within `lockout_seconds` before
        further attempts from that address are refused.""",
    )
    max_failures_shared = Integer(
        variables.default_value("HUB_LOGIN_MAX_FAILURES_SHARED"),
        config=True,
        help="""Failed logins with the shared password, over all usernames and addresses,
        within `lockout_seconds` before new shared-password logins pause (addresses that
        logged in successfully within `known_address_days` are not paused).""",
    )
    lockout_seconds = Integer(
        variables.default_value("HUB_LOGIN_LOCKOUT"),
        config=True,
        help="""Window in which failed logins are counted, and how long a first lockout
        lasts. Each further lockout of the same key lasts twice as long.""",
    )
    max_lockout_seconds = Integer(
        variables.MAX_LOCKOUT_SECONDS,
        config=True,
        help="The longest a lockout grows to.",
    )
    known_address_days = Integer(
        variables.KNOWN_ADDRESS_DAYS,
        config=True,
        help="""Days an address that logged in successfully stays exempt from the pause of
        the shared-password budget.""",
    )
    trusted_proxies = List(
        Unicode(),
        config=True,
        help="""Proxies whose X-Forwarded-For is believed: IP addresses, networks (CIDR) or
        host names (resolved by the hub, again every 30 seconds). The hub's own
        configurable-http-proxy and a reverse proxy in front of it (Traefik) belong here;
        nothing else. A request from anyone else counts as from its TCP peer.""",
    )
    lockout_db_url = Unicode(
        "",
        config=True,
        help="""SQLAlchemy URL of the database that keeps failure counters. Empty: the hub's
        own database (JupyterHub.db_url); in memory when there is no hub.""",
    )

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._resolved: dict[str, tuple[float, list]] = {}
        self._limiter: LoginLimiter | None = None

    # ------------------------------------------------------------ usernames

    def normalize_username(self, username: str) -> str:
        return super().normalize_username(normalize_username(username))

    def validate_username(self, username: str) -> bool:
        return username_problem(username) is None and super().validate_username(username)

    def get_handlers(self, app):
        return [("/login", PersonalLoginHandler)]

    # ------------------------------------------------------------ admin rights

    def add_user(self, user):
        """At start-up JupyterHub passes every user's database row here (and commits after):
        the settings are the truth for who is admin, so a renamed or removed admin loses
        the rights. (Admin rights given in the admin panel last until the next restart.)"""
        if isinstance(user, orm.User) and user.admin and user.name not in self.admin_users:
            self.log.warning("Removing admin rights from %r: not the configured admin", user.name)
            user.admin = False
        return super().add_user(user)

    # ------------------------------------------------------------ addresses

    async def client_address(self, request) -> str:
        networks, hosts = parse_networks(self.trusted_proxies)
        for host in hosts:
            networks += await self._cached_addresses(host)
        return client_address(
            peer_address(request), request.headers.get("X-Forwarded-For"), networks
        )

    async def _cached_addresses(self, host: str) -> list:
        now = time.monotonic()
        cached = self._resolved.get(host)
        if cached and now - cached[0] < RESOLVE_TTL_SECONDS:
            return cached[1]
        try:
            # Resolved without blocking the hub: a name that does not resolve may take
            # seconds to fail (and is then not asked again for RESOLVE_TTL_SECONDS).
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, None, proto=socket.IPPROTO_TCP
            )
        except OSError as error:
            self.log.warning("Cannot resolve trusted proxy %r: %s", host, error)
            infos = []
        addresses = {normalize_address(info[4][0]) for info in infos} - {None}
        networks, _ = parse_networks(sorted(addresses))
        self._resolved[host] = (now, networks)
        return networks

    # ------------------------------------------------------------ lockout

    @property
    def limiter(self) -> LoginLimiter:
        if self._limiter is None:
            url = self.lockout_db_url or getattr(self.parent, "db_url", "")
            store = SqlStore(url) if url else MemoryStore()
            window = self.lockout_seconds
            longest = max(self.max_lockout_seconds, window)
            self._limiter = LoginLimiter(
                store,
                per_user=Budget(self.max_failures_per_user, window, longest),
                per_address=Budget(self.max_failures_per_ip, window, longest),
                shared=Budget(self.max_failures_shared, window, longest),
                known_address_seconds=self.known_address_days * 86400,
            )
        return self._limiter

    def check_password(self, username: str, password: str) -> dict | None:
        if username in self.admin_users:
            if same_secret(password, self.admin_password):
                return {"name": username, "admin": True, "groups": []}
            return None
        if same_secret(password, self.user_password):
            # Anyone logging in with the shared password is *never* admin.
            return {"name": username, "admin": False, "groups": []}
        return None

    async def authenticate(self, handler, data):
        username = self.normalize_username(str(data.get("username") or ""))
        password = data.get("password")
        password = password if isinstance(password, str) else ""
        ip = await self.client_address(handler.request) if handler is not None else "unknown"
        problem = username_problem(username)
        if problem:
            raise LoginRefused(problem)
        shared = username not in self.admin_users
        now = time.time()
        limiter = self.limiter
        wait = limiter.wait_before_try(username, ip, shared, now)
        if wait is not None:
            self.log.warning("Refused login for %r from %s: locked out", username, ip)
            raise LoginRefused(
                f"Too many failed logins. Please wait {describe_wait(wait)} before trying again.",
                status=429,
            )
        result = self.check_password(username, password)
        if result is None:
            strikes = limiter.failed(username, ip, shared, now)
            # Never log the password, only who failed and how often.
            self.log.warning(
                "Failed login for %r from %s (lockouts so far: %s)",
                username,
                ip,
                ", ".join(f"{key} {count}" for key, count in strikes.items()),
            )
        else:
            limiter.succeeded(username, ip, now)
        return result
