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
    Hub,
    Proxy,
    hub_environment,
    kill_leftover_servers,
    own_hub,
    stop_own_hub,
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
        database = "hub_" + name.replace("-", "_")
        hub = own_hub(tmp_path_factory.mktemp(name), postgres, database, **changes)
        started.append(hub)
        hub.start()
        return hub

    yield start
    for hub in started:
        stop_own_hub(hub)
