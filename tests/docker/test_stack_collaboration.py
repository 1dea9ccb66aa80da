"""Two users editing one notebook live, through the running stack (runs after test_stack.py).

alice shares her server with bob through the hub's sharing API (what JupyterLab's Share
dialog calls); both join the notebook's collaboration room over the real Y-websocket
protocol and see each other's edits; carol, not shared, is refused; after revoking,
bob is refused.
"""

from __future__ import annotations

import re

import pytest
import requests
from websockets.exceptions import InvalidStatus

from tests.docker.test_stack import api, open_server
from tests.docker.ycollab import NotebookPeer, open_session
from tests.helpers import login, login_error

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def people(running_stack):
    stack = running_stack
    password = stack.env_file()["JUPYTER_PASSWORD"]
    names = {role: f"{stack.prefix}{role}" for role in ("ann", "ben", "cat")}
    sessions = {}
    for role, name in names.items():
        session, response = login(stack.url, name, password)
        assert response.status_code == 302, login_error(response)
        session.get(f"{stack.url}/hub/home", timeout=30)  # fresh XSRF cookie for the API
        sessions[role] = session
    open_server(sessions["ann"], stack.url, names["ann"])
    return names, sessions


def create_notebook(session: requests.Session, server_url: str, path: str, source: str) -> None:
    notebook = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {},
        "cells": [
            {"cell_type": "code", "id": "c1", "metadata": {}, "source": source,
             "outputs": [], "execution_count": None}
        ],
    }
    server_path = server_url.split("//", 1)[1].split("/", 1)[1]
    xsrf = session.cookies.get("_xsrf", path=f"/{server_path}/") or ""
    response = session.put(
        f"{server_url}/api/contents/{path}",
        json={"type": "notebook", "format": "json", "content": notebook},
        headers={"X-XSRFToken": xsrf},
        timeout=30,
    )
    assert response.status_code in (200, 201), response.text


def open_as_guest(session: requests.Session, server_url: str) -> requests.Response:
    """Open someone else's JupyterLab like a browser: the hub first asks the guest to
    authorize the owner's server (JupyterHub's consent page); click "Authorize"."""
    page = session.get(f"{server_url}/lab", timeout=30)
    if page.status_code == 200 and "/hub/api/oauth2/authorize" in page.url:
        form = dict(re.findall(r'<input type="hidden" name="(_xsrf)" value="([^"]*)"', page.text))
        scopes = re.findall(r'<input type="hidden" name="scopes" value="([^"]*)"', page.text)
        page = session.post(page.url, data={**form, "scopes": scopes}, timeout=30)
    return page


def share(stack, owner_session, owner: str, guest: str, method: str = "POST"):
    return api(owner_session, method, f"{stack.url}/hub/api/shares/{owner}/", json={"user": guest})


def test_owner_shares_and_both_edit_the_same_notebook_live(stack, people):
    names, sessions = people
    ann, ben = names["ann"], names["ben"]
    server = f"{stack.url}/user/{ann}"
    create_notebook(sessions["ann"], server, "shared.ipynb", "x = 1")

    # Before sharing, bob cannot open alice's server.
    assert sessions["ben"].get(f"{server}/lab", timeout=30).status_code == 403
    granted = share(stack, sessions["ann"], ann, ben)
    assert granted.status_code == 200, granted.text
    assert granted.json()["user"]["name"] == ben
    lab = open_as_guest(sessions["ben"], server)
    assert lab.status_code == 200 and lab.url.startswith(f"{server}/lab"), lab.url
    assert "JupyterLab" in lab.text

    owner = NotebookPeer(sessions["ann"], server, open_session(sessions["ann"], server,
                                                               "shared.ipynb"))
    guest = NotebookPeer(sessions["ben"], server, open_session(sessions["ben"], server,
                                                               "shared.ipynb"))
    try:
        assert owner.wait_for_source("x = 1") == "x = 1"
        assert guest.wait_for_source("x = 1") == "x = 1"
        owner.append_to_cell(" + 41")
        assert guest.wait_for_source("x = 1 + 41") == "x = 1 + 41"
        guest.append_to_cell("  # checked by ben")
        expected = "x = 1 + 41  # checked by ben"
        assert owner.wait_for_source(expected) == expected
    finally:
        owner.close()
        guest.close()


def test_a_user_it_was_not_shared_with_is_refused(stack, people):
    names, sessions = people
    server = f"{stack.url}/user/{names['ann']}"
    assert open_as_guest(sessions["cat"], server).status_code == 403
    assert sessions["cat"].get(f"{server}/api/contents", timeout=30).status_code == 403
    # Nor can carol join the notebook's live room, even knowing its id.
    room = open_session(sessions["ann"], server, "shared.ipynb")
    with pytest.raises(InvalidStatus) as refused:
        NotebookPeer(sessions["cat"], server, room)
    assert refused.value.response.status_code in (302, 401, 403)


def test_after_revoking_the_guest_is_refused(stack, people):
    names, sessions = people
    ann, ben = names["ann"], names["ben"]
    revoked = share(stack, sessions["ann"], ann, ben, method="PATCH")
    assert revoked.status_code == 200, revoked.text
    listed = api(sessions["ann"], "GET", f"{stack.url}/hub/api/shares/{ann}/")
    assert all(item["user"]["name"] != ben for item in listed.json()["items"])
    # A new visit by bob is refused at once. (A browser tab bob already had open keeps
    # its server cookie until the server's token cache expires: see README.)
    fresh, response = login(stack.url, ben, stack.env_file()["JUPYTER_PASSWORD"])
    assert response.status_code == 302
    assert open_as_guest(fresh, f"{stack.url}/user/{ann}").status_code == 403
