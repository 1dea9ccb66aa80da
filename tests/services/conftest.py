"""Real services without Docker: PostgreSQL, configurable-http-proxy and JupyterHub.

Each is a real server process (`tests/services/servers.py`); the hub runs from the
packaged config with the local-process spawner, behind CHP started as an *external*
proxy, exactly as the compose stack wires them. The PostgreSQL server is the session's
(`tests/conftest.py`).
"""

from __future__ import annotations

import pytest

from tests.helpers import free_port
from tests.services.servers import (
    DB_USER,
    Hub,
    Proxy,
    hub_environment,
    kill_leftover_servers,
    stop_user_servers,
)

pytestmark = pytest.mark.services


@pytest.fixture(scope="session")
def hub_port():
    return free_port()


@pytest.fixture(scope="session")
def proxy(services_dir, hub_port):
    server = Proxy(services_dir, hub_port)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def hub(services_dir, postgres, proxy, hub_port):
    environ = hub_environment(services_dir, postgres, proxy, hub_port)
    server = Hub(services_dir, environ, hub_port, proxy.url)
    server.start()
    yield server
    stop_user_servers(server)
    if server.process and server.process.running:
        server.stop()
    kill_leftover_servers(postgres)



@pytest.fixture
def start_hub(tmp_path_factory, postgres):
    """`start_hub(name, **stack_env_changes)`: a hub of its own (database, proxy, data
    directory), for a test whose settings differ from the session's hub. Stopped after
    the test, with its user servers."""
    started = []

    def start(name: str, **changes: str) -> Hub:
        base = tmp_path_factory.mktemp(name)
        database = "hub_" + name.replace("-", "_")
        conn = postgres.connect("postgres")
        conn.autocommit = True
        try:
            with conn.cursor() as cursor:
                cursor.execute(f"CREATE DATABASE {database} OWNER {DB_USER}")
        finally:
            conn.close()
        hub_port = free_port()
        proxy = Proxy(base, hub_port)
        environ = hub_environment(base, postgres, proxy, hub_port)
        environ.update(POSTGRES_DB=database, **changes)
        hub = Hub(base, environ, hub_port, proxy.url)
        started.append((hub, proxy, database))
        hub.start()
        return hub

    yield start
    for hub, proxy, database in started:
        stop_user_servers(hub)
        if hub.process and hub.process.running:
            hub.stop()
        proxy.stop()
        kill_leftover_servers(postgres, database)
