"""Settings that only a running hub can show: who may log in after the allowed list
changes, and the idle culler stopping a server. Each test runs a hub of its own
(`start_hub`), on real PostgreSQL behind a real external CHP, with local user servers.
"""

from __future__ import annotations

import time

import pytest
import requests

from tests.helpers import create_token, login, login_error, wait_for

pytestmark = pytest.mark.services


def test_a_name_removed_from_the_allowed_list_is_refused_after_a_restart(start_hub, postgres):
    hub = start_hub("allowed-users", HUB_ALLOWED_USERS="alice,bob")
    password = hub.environ["JUPYTER_PASSWORD"]
    for name in ("alice", "bob"):
        _, response = login(hub.url, name, password)
        assert response.status_code == 302, f"{name}: {login_error(response)}"
    _, response = login(hub.url, "carol", password)
    assert response.status_code == 403

    hub.environ["HUB_ALLOWED_USERS"] = "alice"
    assert hub.stop() == 0
    hub.start()

    # bob is still a user in the database, and still knows the password: refused all the same.
    database = hub.environ["POSTGRES_DB"]
    assert ("bob",) in postgres.query("SELECT name FROM users", database=database)
    _, response = login(hub.url, "bob", password)
    assert response.status_code == 403
    assert login_error(response) == "Invalid username or password"
    _, response = login(hub.url, "alice", password)
    assert response.status_code == 302, login_error(response)


IDLE_TIMEOUT = 20  # seconds; the culler then checks every 10 s


def test_the_idle_culler_stops_an_idle_server(start_hub):
    hub = start_hub("idle-culler", HUB_IDLE_TIMEOUT=str(IDLE_TIMEOUT))
    admin, response = login(hub.url, "admin", hub.environ["JUPYTER_ADMIN_PASSWORD"])
    assert response.status_code == 302, login_error(response)
    hub.admin_token = create_token(admin, hub.url, "admin", "culler test")
    headers = {"Authorization": f"token {hub.admin_token}"}
    session, response = login(hub.url, "idris", hub.environ["JUPYTER_PASSWORD"])
    assert response.status_code == 302, login_error(response)

    spawned_at = time.monotonic()
    session.get(f"{hub.url}/hub/spawn", timeout=90)

    def serving():
        # The page (not the API) completes the server's OAuth handshake, as a browser does.
        lab = session.get(f"{hub.url}/user/idris/lab", timeout=10)
        return lab.status_code == 200 and "JupyterLab" in lab.text

    wait_for(serving, timeout=90, what="idris's server to serve JupyterLab")
    assert session.get(f"{hub.url}/user/idris/api/status", timeout=10).status_code == 200

    def server_of_idris():
        user = requests.get(f"{hub.url}/hub/api/users/idris", headers=headers, timeout=10)
        user.raise_for_status()
        return user.json()["server"]

    assert server_of_idris(), "the server should be running before it is idle"
    # Left alone: idle past the timeout, then stopped at the culler's next check.
    wait_for(lambda: server_of_idris() is None, timeout=IDLE_TIMEOUT + 60,
             what="the idle culler to stop idris's server")
    assert time.monotonic() - spawned_at >= IDLE_TIMEOUT, "stopped before it was idle that long"
    assert "Culling server idris" in hub.process.log()
    after = session.get(f"{hub.url}/user/idris/api/status", timeout=10, allow_redirects=False)
    assert after.status_code != 200
