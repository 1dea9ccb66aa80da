"""The adversarial tier: what an attacker with the shared password (or less) must not do.

Tests here that need no Docker run a real hub from the packaged config behind a real
external configurable-http-proxy on real PostgreSQL, like the services tier, but each
module gets its own database, proxy and hub, configured for its attacks. Different
clients are different loopback source addresses (127.0.0.0/8), so the proxy and the hub
see them as different machines.
"""

from __future__ import annotations

import secrets

import pytest

from tests.services.servers import (
    DB_NAME,
    Hub,
    own_hub,
    stop_own_hub,
)

# Non-ASCII on purpose: any character works in the shared password (it used to be a 500).
PASSWORD_PREFIX = "Grüße-Пароль-"


@pytest.fixture(scope="module")
def make_hub(services_dir, postgres, request):
    """`make_hub(**stack_env_changes)`: a started hub with its own database and proxy."""
    started: list[Hub] = []

    def make(**changes: str) -> Hub:
        name = f"{request.module.__name__.rpartition('.')[2]}_{len(started)}"
        base = services_dir / name
        base.mkdir()
        password = PASSWORD_PREFIX + secrets.token_urlsafe(12)
        hub = own_hub(
            base, postgres, f"{DB_NAME}_{name}".lower(), JUPYTER_PASSWORD=password, **changes
        )
        started.append(hub)
        hub.start()
        return hub

    yield make
    for hub in started:
        stop_own_hub(hub)
