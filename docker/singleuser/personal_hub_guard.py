"""How this server treats logins: revoked guests lose their connections, and a hub
restart does not log anyone out.

Revoked guests:

A collaboration websocket is authorized once, when it opens; after that it keeps
editing. When an owner revokes a share, the guest's open tab must stop too: every
`INTERVAL_SECONDS` this server extension asks the hub (bypassing the server's login
cache) whether each guest's open collaboration connection still has access, and closes
the ones that do not. The tab reconnects at once, and the server lets it in for as long
as its login cache (`HubOAuth.cache_max_age`) still holds the old answer; after that the
reconnection is refused. So a revoked guest's open tab is cut off within
cache_max_age + INTERVAL_SECONDS. The owner's own connections are never checked.

Hub restarts: the server asks the hub about a login once its cached answer is older
than cache_max_age; while the hub restarts or upgrades it cannot answer, and upstream
then fails the request with a 500. Instead, a login the hub confirmed at most
`HUB_DOWN_GRACE_SECONDS` ago keeps working until the hub answers again. Nothing can be
revoked meanwhile (revoking happens at the hub), and only the hub being unreachable
counts: an answer that refuses the login is never overridden.
"""

from __future__ import annotations

import asyncio
import os
import time

from tornado.ioloop import PeriodicCallback
from tornado.web import HTTPError

INTERVAL_SECONDS = 10
# JupyterHub's own default login cache age: long enough for a restart or an upgrade.
HUB_DOWN_GRACE_SECONDS = 300
# The hub answers in milliseconds; when it does not, asking again soon does not help.
ASK_SECONDS = 3
RETRY_SECONDS = 5
# Websocket close code "policy violation": the client does not silently reconnect.
CLOSE_CODE = 1008


def _jupyter_server_extension_points():
    return [{"module": "personal_hub_guard"}]


def open_connections(serverapp) -> list:
    """The collaboration websockets open on this server (none without collaboration)."""
    ydoc = serverapp.extension_manager.extension_apps.get("jupyter_server_ydoc", set())
    connections = []
    for app in ydoc:
        server = getattr(app, "ywebsocket_server", None)
        for room in getattr(server, "rooms", {}).values():
            connections.extend(getattr(room, "clients", ()))
    return connections


async def still_allowed(hub_auth, handler) -> bool:
    token = hub_auth.get_token(handler)
    if not token:
        return False
    user = await hub_auth.user_for_token(token, use_cache=False, sync=False)
    return bool(user) and bool(hub_auth.check_scopes(hub_auth.access_scopes, user))


def is_guest(handler, owner: str) -> bool:
    user = getattr(handler, "current_user", None)
    return getattr(user, "username", owner) != owner


async def close_revoked(serverapp) -> None:
    hub_auth = getattr(serverapp.identity_provider, "hub_auth", None)
    owner = os.environ.get("JUPYTERHUB_USER")
    if hub_auth is None or not owner:
        return  # not behind a JupyterHub
    for handler in open_connections(serverapp):
        if not is_guest(handler, owner):
            continue
        try:
            allowed = await still_allowed(hub_auth, handler)
        except Exception:  # the hub is restarting: keep the connection, ask again later
            serverapp.log.debug("Could not re-check a connection's access", exc_info=True)
            continue
        if not allowed:
            serverapp.log.warning("Closing a collaboration connection: its access was revoked")
            handler.close(CLOSE_CODE, "access revoked")


def hub_unreachable(error: Exception) -> bool:
    """Whether a failed login check means the hub could not answer (down, restarting,
    failing) rather than that it refused: HubAuth raises 500 "Failed to connect" when
    it cannot reach the hub and 502 when the hub answers with a server error."""
    if not isinstance(error, HTTPError):
        return False
    message = error.log_message or ""
    return error.status_code == 502 or (
        error.status_code == 500 and message.startswith("Failed to connect"))


class Outage:
    """Whether the hub is known to be unreachable, and since when."""

    def __init__(self, log, grace: float, clock):
        self.log, self.grace, self.clock = log, grace, clock
        self.began: float | None = None
        self.last_try = 0.0

    def failed(self) -> None:
        self.last_try = self.clock()
        if self.began is None:
            self.began = self.last_try
            self.log.warning("The hub cannot be reached; logins it confirmed in the last "
                             "%.0f s keep working until it answers again", self.grace)

    def ended(self) -> None:
        if self.began is not None:
            self.log.info("The hub answers again after %.0f s", self.clock() - self.began)
            self.began = None

    def recently_failed(self) -> bool:
        return self.began is not None and self.clock() - self.last_try < RETRY_SECONDS


def keep_logins_while_hub_restarts(hub_auth, log, grace: float = HUB_DOWN_GRACE_SECONDS,
                                   clock=time.monotonic) -> None:
    """Make `hub_auth` answer with the hub's last answer about a login, at most `grace`
    seconds old, when the hub cannot be reached.

    A stopped hub's address may swallow connections instead of refusing them, so a
    login with an answer to fall back on asks the hub for at most `ASK_SECONDS`, and
    while the hub is down it is asked again only every `RETRY_SECONDS`: the user's
    requests do not wait on it. A login without such an answer waits as upstream does.
    """
    ask_hub = hub_auth._check_hub_authorization
    confirmed: dict[str, tuple[float, dict]] = {}  # cache key -> (when the hub said, what)
    outage = Outage(log, grace, clock)

    def fallback(cache_key, use_cache: bool):
        when, answer = confirmed.get(cache_key, (None, None))
        if not use_cache or when is None or clock() - when > grace:
            return None
        return answer

    def remember(cache_key: str, answer: dict) -> None:
        now = clock()
        for key in [key for key, (when, _) in confirmed.items() if now - when > grace]:
            del confirmed[key]
        confirmed[cache_key] = (now, answer)

    async def check(url, api_token, cache_key=None, use_cache=True):
        cached = use_cache and cache_key in hub_auth.cache
        old = None if cached else fallback(cache_key, use_cache)
        if old is not None and outage.recently_failed():
            return old
        asking = ask_hub(url, api_token, cache_key=cache_key, use_cache=use_cache)
        try:
            answer = await (asyncio.wait_for(asking, ASK_SECONDS) if old else asking)
        except (TimeoutError, HTTPError) as error:
            unreachable = not isinstance(error, HTTPError) or hub_unreachable(error)
            if unreachable:
                outage.failed()
            if old is None or not unreachable:
                if isinstance(error, HTTPError):
                    raise
                raise HTTPError(502, "The hub did not answer in time") from None
            return old
        outage.ended()
        if not cached:  # the hub itself answered: that is the answer to fall back on
            if answer:
                remember(cache_key, answer)
            else:
                confirmed.pop(cache_key, None)
        return answer

    hub_auth._check_hub_authorization = check


def _load_jupyter_server_extension(serverapp):
    hub_auth = getattr(serverapp.identity_provider, "hub_auth", None)
    if hub_auth is not None:
        keep_logins_while_hub_restarts(hub_auth, serverapp.log)

    def check():
        asyncio.ensure_future(close_revoked(serverapp))

    PeriodicCallback(check, INTERVAL_SECONDS * 1000).start()
