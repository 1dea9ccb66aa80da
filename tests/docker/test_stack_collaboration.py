"""Two users editing one notebook live, through the running stack (runs after test_stack.py).

alice shares her server with bob through the hub's sharing API (what JupyterLab's Share
dialog calls); both join the notebook's collaboration room over the real Y-websocket
protocol and see each other's edits; carol, not shared, is refused where bob, doing
the same, gets in; after revoking, bob is refused.
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
    if page.history:  # a visitor not logged in to the server yet: the hub's OAuth flow
        assert "/hub/api/oauth2/authorize" in page.history[0].headers.get("Location", ""), (
            "the server did not send the visitor to the hub's OAuth flow", page.history)
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
    """ben (shared with) and cat (not) do exactly the same thing, each from a fresh hub
    login, the way a browser does: open ann's JupyterLab (the server sends them to the
    hub's OAuth authorize page, they click "Authorize"), use its API, join a notebook's
    live room. Only the share differs, so the share is what lets ben in; cat is refused
    at every step with 403."""
    names, sessions = people
    ann, ben, cat = names["ann"], names["ben"], names["cat"]
    server = f"{stack.url}/user/{ann}"
    password = stack.env_file()["JUPYTER_PASSWORD"]
    granted = share(stack, sessions["ann"], ann, ben)  # as the first test left it
    assert granted.status_code == 200, granted.text
    create_notebook(sessions["ann"], server, "refusal.ipynb", "y = 2")
    room = open_session(sessions["ann"], server, "refusal.ipynb")

    visitors = {}
    for name in (ben, cat):
        session, response = login(stack.url, name, password)
        assert response.status_code == 302, login_error(response)
        visitors[name] = session
    # Both go through the hub's OAuth flow (open_as_guest checks it).
    lab = {name: open_as_guest(session, server) for name, session in visitors.items()}

    # The control: the guest's visit gets JupyterLab, its API and the live room.
    assert lab[ben].status_code == 200 and lab[ben].url.startswith(f"{server}/lab"), (
        lab[ben].status_code, lab[ben].url, lab[ben].text[:500])
    contents = visitors[ben].get(f"{server}/api/contents", timeout=30)
    assert contents.status_code == 200, contents.text[:500]
    guest = NotebookPeer(visitors[ben], server, room)
    try:
        assert guest.wait_for_source("y = 2") == "y = 2"
    finally:
        guest.close()

    # The same visit by cat: the hub refuses to log cat in to ann's server (JupyterHub's
    # authorize step checks the visitor's access:servers scope), so cat gets no login
    # for it, and the server itself refuses its API and the live room.
    refused = lab[cat]
    assert refused.status_code == 403, (refused.status_code, refused.url, refused.text[:500])
    assert "/hub/api/oauth2/authorize" in refused.url, refused.url
    assert "You do not have permission to access" in refused.text, refused.text[:1000]
    contents = visitors[cat].get(f"{server}/api/contents", timeout=30)
    assert contents.status_code == 403, (contents.status_code, contents.text[:500])
    with pytest.raises(InvalidStatus) as refused_room:
        NotebookPeer(visitors[cat], server, room).close()
    assert refused_room.value.response.status_code == 403


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
