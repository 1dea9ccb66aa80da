"""Sharing, attacked through the real hub: what the token a shared server receives for a
visitor can do.

A user's server is the user's own code: the owner can read its API token (its OAuth
client secret) and so finish any OAuth login to it by hand. Here the test plays that
owner: it reads the token from the server process's environment, lets the admin visit
the shared server, and uses the visitor token the server receives.
"""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.helpers import login, login_error, xsrf_from
from tests.services.test_hub import spawn_and_open

pytestmark = pytest.mark.security


@pytest.fixture(scope="module")
def hub(make_hub):
    return make_hub()


def logged_in(hub, name: str, password: str) -> requests.Session:
    session, response = login(hub.url, name, password)
    assert response.status_code == 302, login_error(response)
    return session


@pytest.fixture(scope="module")
def alice(hub):
    session = logged_in(hub, "alice", hub.environ["JUPYTER_PASSWORD"])
    spawn_and_open(session, hub.url, "alice")
    return session


@pytest.fixture(scope="module")
def admin(hub):
    session = logged_in(hub, "admin", hub.environ["JUPYTER_ADMIN_PASSWORD"])
    spawn_and_open(session, hub.url, "admin")
    return session


def hub_api(session, method, hub, path, **kwargs):
    return session.request(
        method, f"{hub.url}/hub/api/{path}", headers={"X-XSRFToken": xsrf_from(session)},
        timeout=15, **kwargs,
    )


def server_environment(hub, user: str) -> dict[str, str]:
    """What the owner can read inside their own server: its process environment."""
    conn = hub.postgres.connect(hub.database)
    try:
        with conn.cursor() as cursor:
            cursor.execute(
                "SELECT s.state FROM spawners s JOIN users u ON s.user_id = u.id "
                "WHERE u.name = %s AND s.name = ''",
                (user,),
            )
            (state,) = cursor.fetchone()
    finally:
        conn.close()
    state = json.loads(state) if isinstance(state, str) else state
    with open(f"/proc/{state['pid']}/environ", "rb") as environ:
        pairs = environ.read().decode().split("\0")
    return dict(pair.split("=", 1) for pair in pairs if "=" in pair)


def token_the_server_receives(hub, visitor: requests.Session, owner: str) -> str:
    """The visitor logs in to the owner's server; the owner's server gets this token."""
    env = server_environment(hub, owner)
    callback = env["JUPYTERHUB_OAUTH_CALLBACK_URL"]
    params = {
        "client_id": env["JUPYTERHUB_CLIENT_ID"],
        "redirect_uri": callback,
        "response_type": "code",
        "state": "test",
    }
    page = visitor.get(
        f"{hub.url}/hub/api/oauth2/authorize", params=params, allow_redirects=False, timeout=15
    )
    if page.status_code == 200:  # the visitor is asked to authorize; they click it
        xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1)
        scopes = re.findall(r'type="hidden" name="scopes" value="([^"]+)"', page.text)
        page = visitor.post(
            page.url, data={"_xsrf": xsrf, "scopes": scopes}, allow_redirects=False, timeout=15
        )
    assert page.status_code == 302, page.text[:500]
    code = parse_qs(urlsplit(page.headers["Location"]).query)["code"][0]
    token = requests.post(
        f"{hub.url}/hub/api/oauth2/token",
        data={
            "client_id": env["JUPYTERHUB_CLIENT_ID"],
            "client_secret": env["JUPYTERHUB_API_TOKEN"],
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": callback,
        },
        timeout=15,
    )
    assert token.status_code == 200, token.text
    return token.json()["access_token"]


def with_token(token: str) -> dict[str, str]:
    return {"Authorization": f"token {token}"}


def test_a_shared_servers_visitor_token_cannot_touch_the_visitors_servers(hub, alice, admin):
    shared = hub_api(alice, "POST", hub, "shares/alice/", json={"user": "admin"})
    assert shared.status_code == 200, shared.text

    stolen = with_token(token_the_server_receives(hub, admin, "alice"))

    # What the share is for: the admin's visit to alice's server works.
    own = requests.get(f"{hub.url}/user/alice/api/status", headers=stolen, timeout=10)
    assert own.status_code == 200
    # What alice must not get: share the admin's server with herself, use it, or mint
    # the admin's tokens.
    share_back = requests.post(
        f"{hub.url}/hub/api/shares/admin/", json={"user": "alice"}, headers=stolen, timeout=10
    )
    assert share_back.status_code in (403, 404), share_back.text
    assert requests.get(f"{hub.url}/hub/api/shares/admin/", headers=stolen,
                        timeout=10).status_code in (403, 404)
    minted = requests.post(
        f"{hub.url}/hub/api/users/admin/tokens", json={"note": "x"}, headers=stolen, timeout=10
    )
    assert minted.status_code in (403, 404), minted.text
    server = requests.get(
        f"{hub.url}/user/admin/api/status", headers=stolen, timeout=10, allow_redirects=False
    )
    assert server.status_code != 200
    stop = requests.delete(f"{hub.url}/hub/api/users/admin/server", headers=stolen, timeout=10)
    assert stop.status_code in (403, 404)
    # And the admin's server was not shared with alice.
    shares = hub_api(admin, "GET", hub, "shares/admin/")
    assert shares.status_code == 200
    assert shares.json()["items"] == []


def test_the_owners_server_token_can_search_users_and_share_that_server(hub, alice, admin):
    """What JupyterLab's Share dialog does with the token of the server it runs in."""
    logged_in(hub, "bob", hub.environ["JUPYTER_PASSWORD"])
    token = with_token(token_the_server_receives(hub, alice, "alice"))

    found = requests.get(f"{hub.url}/hub/api/users", params={"name_filter": "bo"},
                         headers=token, timeout=10)
    assert found.status_code == 200
    assert [user["name"] for user in found.json()] == ["bob"]
    private = {"server", "servers", "last_activity", "created", "groups", "roles", "pending"}
    assert not private & set(found.json()[0]), "names, nothing about the user's servers"

    added = requests.post(f"{hub.url}/hub/api/shares/alice/", json={"user": "bob"},
                          headers=token, timeout=10)
    assert added.status_code == 200, added.text
    revoked = requests.patch(f"{hub.url}/hub/api/shares/alice/", json={"user": "bob"},
                             headers=token, timeout=10)
    assert revoked.status_code == 200, revoked.text
    # The same token cannot share the servers of anyone else.
    other = requests.post(f"{hub.url}/hub/api/shares/admin/", json={"user": "bob"},
                          headers=token, timeout=10)
    assert other.status_code in (403, 404)


def visit_lab(visitor: requests.Session, hub, owner: str) -> requests.Response:
    """Open the owner's JupyterLab the way a browser does: the owner's server sends the
    visitor to the hub's OAuth authorize page; the hub asks a visitor who may use the
    server to authorize it (they click it) and sends them back, logged in to it."""
    page = visitor.get(f"{hub.url}/user/{owner}/lab", timeout=15)
    assert page.history and "/hub/api/oauth2/authorize" in page.history[0].headers.get(
        "Location", ""), "the server did not send the visitor to the hub's OAuth flow"
    if page.status_code == 200 and "/hub/api/oauth2/authorize" in page.url:
        xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1)
        scopes = re.findall(r'type="hidden" name="scopes" value="([^"]+)"', page.text)
        page = visitor.post(page.url, data={"_xsrf": xsrf, "scopes": scopes}, timeout=15)
    return page


def test_a_revoked_guest_is_refused_on_a_fresh_visit(hub, alice, admin):
    """bob visits alice's server from a fresh login while it is shared with him, and again
    after alice revokes the share: the same visit, only the share differs."""
    password = hub.environ["JUPYTER_PASSWORD"]
    shared = hub_api(alice, "POST", hub, "shares/alice/", json={"user": "bob"})
    assert shared.status_code == 200, shared.text
    while_shared = logged_in(hub, "bob", password)
    lab = visit_lab(while_shared, hub, "alice")
    assert lab.status_code == 200 and lab.url.startswith(f"{hub.url}/user/alice/lab"), (
        lab.status_code, lab.url, lab.text[:500])
    assert while_shared.get(f"{hub.url}/user/alice/api/status", timeout=15).status_code == 200

    revoked = hub_api(alice, "PATCH", hub, "shares/alice/", json={"user": "bob"})
    assert revoked.status_code == 200, revoked.text
    fresh = logged_in(hub, "bob", password)
    refused = visit_lab(fresh, hub, "alice")
    # The hub refuses to log bob in to alice's server, so the server refuses him too.
    assert refused.status_code == 403, (refused.status_code, refused.url, refused.text[:500])
    assert "You do not have permission to access" in refused.text, refused.text[:1000]
    assert fresh.get(f"{hub.url}/user/alice/api/status", timeout=15).status_code == 403
