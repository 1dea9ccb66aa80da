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
