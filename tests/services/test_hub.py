"""A real hub from the packaged config, behind a real external CHP, on real PostgreSQL.

Everything goes through the proxy's public port, as a browser would.
"""

from __future__ import annotations

import html
import json
import os
import subprocess
import sys

import pytest
import requests

from personal_hub import config_path
from tests.helpers import create_token, login, login_error, wait_for

pytestmark = pytest.mark.services

SPAWN_TIMEOUT = 90


def server_status(session: requests.Session, base_url: str, user: str) -> requests.Response:
    return session.get(f"{base_url}/user/{user}/api/status", timeout=10)


def spawn_and_open(session: requests.Session, base_url: str, user: str) -> None:
    """Start the user's server the way the browser does, then finish the OAuth handshake."""
    session.get(f"{base_url}/hub/spawn", timeout=SPAWN_TIMEOUT)

    def ready():
        lab = session.get(f"{base_url}/user/{user}/lab", timeout=10)
        return lab.status_code == 200 and "JupyterLab" in lab.text or None

    wait_for(ready, timeout=SPAWN_TIMEOUT, what=f"{user}'s server to serve JupyterLab")


@pytest.fixture(scope="module")
def alice(hub):
    session, response = login(hub.url, "alice", hub.environ["JUPYTER_PASSWORD"])
    assert response.status_code == 302, login_error(response) or response.status_code
    spawn_and_open(session, hub.url, "alice")
    return session


@pytest.fixture(scope="module")
def admin_token(hub):
    session, response = login(hub.url, "admin", hub.environ["JUPYTER_ADMIN_PASSWORD"])
    assert response.status_code == 302, login_error(response)
    token = create_token(session, hub.url, "admin", "services test")
    hub.admin_token = token  # lets the fixture teardown stop user servers
    return token


def test_login_page_is_served_through_the_proxy(hub):
    page = requests.get(f"{hub.url}/hub/login", timeout=10)
    assert page.status_code == 200
    assert 'name="password"' in page.text


def test_wrong_password_is_refused(hub):
    _, response = login(hub.url, "walter", "not-the-password")
    assert response.status_code == 403
    assert login_error(response) == "Invalid username or password"


@pytest.mark.parametrize("username", ["bad/name", "Ünïcode", "x" * 40])
def test_invalid_username_gets_a_clear_message(hub, username):
    _, response = login(hub.url, username, hub.environ["JUPYTER_PASSWORD"])
    assert response.status_code == 403
    message = html.unescape(login_error(response))
    assert "username" in message.lower() and "lowercase letters" in message


def test_shared_password_does_not_make_anyone_admin(hub):
    _, response = login(hub.url, "admin", hub.environ["JUPYTER_PASSWORD"])
    assert response.status_code == 403


def test_lockout_after_repeated_failures(hub):
    for _ in range(5):
        _, response = login(hub.url, "mallory", "wrong-password-123")
        assert response.status_code == 403
    # Now even the right password is refused, with a message saying why and how long.
    _, response = login(hub.url, "mallory", hub.environ["JUPYTER_PASSWORD"])
    assert response.status_code == 429
    # The default HUB_LOGIN_LOCKOUT (5m), just begun: the whole wait, rounded up.
    assert login_error(response) == (
        "Too many failed logins. Please wait 5 minutes before trying again."
    )
    # Another user is not affected.
    _, response = login(hub.url, "trent", hub.environ["JUPYTER_PASSWORD"])
    assert response.status_code == 302


def test_failed_login_logs_never_contain_the_password(hub):
    secret_attempt = "hunter2-not-logged-" + "q" * 8
    _, response = login(hub.url, "eve", secret_attempt)
    assert response.status_code == 403
    log = hub.process.log()
    assert "Failed login for 'eve'" in log
    assert secret_attempt not in log
    assert hub.environ["JUPYTER_PASSWORD"] not in log
    assert hub.environ["POSTGRES_PASSWORD"] not in log


def test_spawned_server_answers_through_the_proxy(hub, alice):
    response = server_status(alice, hub.url, "alice")
    assert response.status_code == 200
    assert "started" in response.json()


def test_user_files_and_environment(hub, alice, postgres):
    xsrf = alice.cookies.get("_xsrf", path="/user/alice/")
    saved = alice.put(
        f"{hub.url}/user/alice/api/contents/hello.txt",
        json={"type": "file", "format": "text", "content": "hello from alice"},
        headers={"X-XSRFToken": xsrf} if xsrf else {},
        timeout=10,
    )
    assert saved.status_code == 201, saved.text  # a new file
    home = os.path.join(hub.environ["HUB_DATA_DIR"], "users", "alice")
    with open(os.path.join(home, "hello.txt")) as file:
        assert file.read() == "hello from alice"
    # The server process got TZ and the AI key that is set, and not the one that is not.
    (state,) = postgres.query(
        "SELECT s.state FROM spawners s JOIN users u ON s.user_id = u.id WHERE u.name = 'alice'"
    )[0]
    pid = (json.loads(state) if isinstance(state, str) else state)["pid"]
    with open(f"/proc/{pid}/environ", "rb") as file:
        environ = dict(
            item.split("=", 1) for item in file.read().decode().split("\0") if "=" in item
        )
    assert environ["TZ"] == "Europe/Berlin"
    assert environ["OPENAI_API_KEY"] == hub.environ["OPENAI_API_KEY"]
    assert "ANTHROPIC_API_KEY" not in environ
    assert "POSTGRES_PASSWORD" not in environ and "JUPYTER_PASSWORD" not in environ


def test_other_user_cannot_use_someone_elses_server(hub, alice):
    bob, response = login(hub.url, "bob", hub.environ["JUPYTER_PASSWORD"])
    assert response.status_code == 302
    assert server_status(bob, hub.url, "alice").status_code == 403
    assert bob.get(f"{hub.url}/user/alice/lab", timeout=10).status_code == 403


def test_admin_lists_users_through_the_rest_api(hub, alice, admin_token):
    response = requests.get(
        f"{hub.url}/hub/api/users",
        headers={"Authorization": f"token {admin_token}"},
        timeout=10,
    )
    assert response.status_code == 200
    users = {user["name"]: user for user in response.json()}
    assert {"alice", "bob", "admin"} <= set(users)
    assert users["admin"]["admin"] is True
    assert users["alice"]["admin"] is False
    assert users["alice"]["server"], "alice's server should be running"


@pytest.mark.parametrize("username", ["a" * 33, ".hidden", "alice$", "ålice"])
def test_admin_cannot_create_a_user_whose_name_breaks_the_rules(hub, admin_token, username):
    """The admin page and the REST API go through validate_username, not the login form."""
    response = requests.post(
        f"{hub.url}/hub/api/users",
        headers={"Authorization": f"token {admin_token}"},
        json={"usernames": [username]},
        timeout=10,
    )
    assert response.status_code == 400, response.text
    assert response.json()["message"] == f"Invalid username: {username}"


def test_admin_creates_a_user_within_the_rules(hub, admin_token):
    response = requests.post(
        f"{hub.url}/hub/api/users",
        headers={"Authorization": f"token {admin_token}"},
        json={"usernames": ["dora.k"]},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    assert [user["name"] for user in response.json()] == ["dora.k"]


def test_non_admin_sees_only_names_of_other_users(hub, alice):
    """Users may find each other by name (the Share dialog's search), nothing more."""
    session, _ = login(hub.url, "carol", hub.environ["JUPYTER_PASSWORD"])
    token = create_token(session, hub.url, "carol", "test")
    response = requests.get(
        f"{hub.url}/hub/api/users",
        headers={"Authorization": f"token {token}"},
        timeout=10,
    )
    assert response.status_code == 200
    users = {user["name"]: user for user in response.json()}
    assert "alice" in users
    assert not {"server", "servers", "last_activity"} & set(users["alice"])


def test_a_restarted_proxy_gets_every_route_back(hub, alice, proxy):
    proxy.stop()
    proxy.start()  # configurable-http-proxy starts empty: everything goes to the hub
    # The hub puts the route back within its check interval (5 s), without a restart.
    wait_for(lambda: "/user/alice" in proxy.routes(), timeout=20,
             what="the hub to restore alice's route in the new proxy")
    assert server_status(alice, hub.url, "alice").status_code == 200


def test_hub_restart_keeps_servers_and_logins(hub, alice, postgres, proxy):
    # A clean shutdown on SIGTERM (exit 0), not a kill after the stop timeout.
    assert hub.stop() == 0
    # While the hub is down, the proxy still routes alice to her running server.
    assert "/user/alice" in proxy.routes()
    assert server_status(alice, hub.url, "alice").status_code == 200
    hub.start()
    # Still logged in after the restart (persisted cookie secret, state in PostgreSQL).
    me = alice.get(f"{hub.url}/hub/home", timeout=10, allow_redirects=False)
    assert me.status_code == 200, f"expected the home page, got {me.status_code}"
    assert server_status(alice, hub.url, "alice").status_code == 200
    rows = postgres.query("SELECT name FROM users ORDER BY name")
    assert {"admin", "alice", "bob"} <= {name for (name,) in rows}


def test_bad_settings_stop_the_hub_with_a_clear_message(tmp_path):
    environ = {
        "PATH": os.environ["PATH"],
        "HUB_DATA_DIR": str(tmp_path),
        "JUPYTER_PASSWORD": "change-me",
        "JUPYTER_ADMIN_USER": "admin",
        "JUPYTER_ADMIN_PASSWORD": "short-secret-value",
        "HUB_MEM_LIMIT": "lots",
    }
    result = subprocess.run(
        [sys.executable, "-m", "jupyterhub", "-f", config_path()],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 1
    for variable in ("JUPYTER_PASSWORD", "JUPYTER_ADMIN_PASSWORD", "HUB_MEM_LIMIT"):
        assert variable in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert "short-secret-value" not in result.stderr + result.stdout
    assert not (tmp_path / "jupyterhub.sqlite").exists()
