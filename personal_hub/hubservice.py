"""What the hub's own page services (scheduler, reports) share: where JupyterHub says they
are, and serving their pages behind the hub's login."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

# Set by JupyterHub for every hub-managed service with a URL.
PREFIX_VARIABLE = "JUPYTERHUB_SERVICE_PREFIX"
URL_VARIABLE = "JUPYTERHUB_SERVICE_URL"
# The services' own pages: nothing from elsewhere, never in a frame.
PAGE_POLICY = "default-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'none'"


def logger(name: str) -> Callable[[str], None]:
    def log(message: str) -> None:
        print(f"personal-hub {name}: {message}", file=sys.stderr, flush=True)

    return log


def serve(app, background: Callable[[], Awaitable[None]] | None = None,
          environ=os.environ) -> None:
    """Listen where JupyterHub put the service (all interfaces of the hub's container, so
    the proxy reaches it) and run until stopped, with `background` beside it."""
    port = urlsplit(environ[URL_VARIABLE]).port

    async def run() -> None:
        app.listen(port, "0.0.0.0")
        await (background() if background else asyncio.Event().wait())

    asyncio.run(run())


def service_prefix(environ=os.environ) -> str:
    return environ[PREFIX_VARIABLE]


def application(handlers: list):
    """The service's tornado application: forms carry an XSRF token (HubOAuth makes it
    the hub's kind, scoped to the service's prefix)."""
    from tornado import web

    return web.Application(handlers, cookie_secret=os.urandom(32), xsrf_cookies=True)


def settings_from_environ(load: Callable, variable: str, log: Callable[[str], None]):
    """The settings the hub passed in `variable`, or None (said in the log) without them."""
    try:
        return load()
    except (KeyError, ValueError, TypeError) as error:
        log(f"no settings in {variable}: {type(error).__name__}")
        return None

