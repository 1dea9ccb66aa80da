"""Close the live connections of people who lost access to this server.

A collaboration websocket is authorized once, when it opens; after that it keeps
editing. When an owner revokes a share, the guest's open tab must stop too: every
`INTERVAL_SECONDS` this server extension asks the hub (bypassing the server's login
cache) whether each guest's open collaboration connection still has access, and closes
the ones that do not. The tab reconnects at once, and the server lets it in for as long
as its login cache (`HubOAuth.cache_max_age`) still holds the old answer; after that the
reconnection is refused. So a revoked guest's open tab is cut off within
cache_max_age + INTERVAL_SECONDS. The owner's own connections are never checked.
"""

from __future__ import annotations

import asyncio
import os

from tornado.ioloop import PeriodicCallback

INTERVAL_SECONDS = 10
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


def _load_jupyter_server_extension(serverapp):
    def check():
        asyncio.ensure_future(close_revoked(serverapp))

    PeriodicCallback(check, INTERVAL_SECONDS * 1000).start()
