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

from tests.helpers import free_port
from tests.services.servers import (
    DB_NAME,
    DB_USER,
    Hub,
    Postgres,
    Proxy,
    hub_environment,
    kill_leftover_servers,
    stop_user_servers,
)

# Non-ASCII on purpose: any character works in the shared password (it used to be a 500).
PASSWORD_PREFIX = "Grüße-Пароль-"


def create_database(server: Postgres, name: str) -> None:
    conn = server.connect("postgres")
    conn.autocommit = True
    try:
        with conn.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {name} OWNER {DB_USER}")
    finally:
        conn.close()


@pytest.fixture(scope="module")
def make_hub(services_dir, postgres, request):
    """`make_hub(**stack_env_changes)`: a started hub with its own database and proxy."""
    started: list[tuple[Hub, Proxy]] = []

    def make(**changes: str) -> Hub:
        name = f"{request.module.__name__.rpartition('.')[2]}_{len(started)}"
        base = services_dir / name
        base.mkdir()
        hub_port = free_port()
        proxy = Proxy(base, hub_port)
        database = f"{DB_NAME}_{name}".lower()
        create_database(postgres, database)
        environ = hub_environment(base, postgres, proxy, hub_port)
        environ.update(
            POSTGRES_DB=database,
            JUPYTER_PASSWORD=PASSWORD_PREFIX + secrets.token_urlsafe(12),
            **changes,
        )
        hub = Hub(base, environ, hub_port, proxy.url)
        hub.proxy = proxy
        hub.postgres = postgres
        hub.database = database
        started.append((hub, proxy))
        hub.start()
        return hub

    yield make
    for hub, proxy in started:
        stop_user_servers(hub)
        if hub.process and hub.process.running:
            hub.stop()
        proxy.stop()
        kill_leftover_servers(postgres, hub.database)

