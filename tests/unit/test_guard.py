"""`personal_hub_guard`, the single-user server extension that closes the collaboration
connections of guests whose share was revoked (the browser test proves it in the image),
and keeps confirmed logins working while the hub restarts (against JupyterHub's own
HubOAuth and a hub on a real port; the Docker tier stops the real hub)."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from jupyterhub.services.auth import HubOAuth
from tornado.web import Application, HTTPError, RequestHandler

from tests.helpers import free_port

GUARD = Path(__file__).resolve().parents[2] / "docker/singleuser/personal_hub_guard.py"


@pytest.fixture
def guard():
    spec = importlib.util.spec_from_file_location("personal_hub_guard", GUARD)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Connection:
    def __init__(self, user: str, token: str):
        self.current_user = SimpleNamespace(username=user)
        self.token = token
        self.closed = None

    def close(self, code, reason):
        self.closed = (code, reason)


class HubAuth:
    """Answers like the hub: which tokens still carry access to this server."""

    access_scopes = {"access:servers!server=ann/"}

    def __init__(self, allowed_tokens):
        self.allowed_tokens = allowed_tokens
        self.asked = []

    def get_token(self, handler):
        return handler.token

    async def user_for_token(self, token, use_cache=True, sync=True):
        self.asked.append((token, use_cache))
        scopes = self.access_scopes if token in self.allowed_tokens else set()
        return {"name": token, "scopes": scopes}

    def check_scopes(self, required, user):
        return required & user["scopes"]


def server_with(connections, hub_auth):
    room = SimpleNamespace(clients=set(connections))
    ydoc = SimpleNamespace(ywebsocket_server=SimpleNamespace(rooms={"json:notebook:x": room}))
    return SimpleNamespace(
        extension_manager=SimpleNamespace(extension_apps={"jupyter_server_ydoc": [ydoc]}),
        identity_provider=SimpleNamespace(hub_auth=hub_auth),
        log=logging.getLogger("test-guard"),
    )


async def test_revoked_guests_are_closed_and_everyone_else_kept(guard, monkeypatch):
    monkeypatch.setenv("JUPYTERHUB_USER", "ann")
    owner, kept, revoked = Connection("ann", "t-ann"), Connection("ben", "t-ben"), \
        Connection("cat", "t-cat")
    hub_auth = HubAuth(allowed_tokens={"t-ben"})

    await guard.close_revoked(server_with([owner, kept, revoked], hub_auth))

    assert revoked.closed == (guard.CLOSE_CODE, "access revoked")
    assert kept.closed is None and owner.closed is None
    # Guests are asked about without the login cache; the owner is never asked about.
    assert sorted(hub_auth.asked) == [("t-ben", False), ("t-cat", False)]


async def test_without_a_hub_or_collaboration_nothing_happens(guard, monkeypatch):
    monkeypatch.delenv("JUPYTERHUB_USER", raising=False)
    guest = Connection("cat", "t-cat")
    await guard.close_revoked(server_with([guest], HubAuth(allowed_tokens=set())))
    assert guest.closed is None
    empty = SimpleNamespace(extension_manager=SimpleNamespace(extension_apps={}))
    assert guard.open_connections(empty) == []


class FakeHub:
    """The hub's `GET /hub/api/user` on a real port, for JupyterHub's own HubOAuth:
    it can refuse a token, fail, or be stopped and started again like a restart."""

    def __init__(self, users: dict[str, str]):
        self.users = users  # token -> user name
        self.failing = False
        self.hanging = False  # a stopped hub's address may swallow connections
        self.asked = 0
        self.port = free_port()
        self.server = None

    def start(self):
        hub = self

        class UserHandler(RequestHandler):
            async def get(self):
                hub.asked += 1
                if hub.hanging:
                    await asyncio.sleep(30)
                if hub.failing:
                    raise HTTPError(500)
                token = self.request.headers.get("Authorization", "").split()[-1]
                if token not in hub.users:
                    raise HTTPError(403)
                self.write({"name": hub.users[token], "scopes": ["access:servers"]})

        self.server = Application([(r"/hub/api/user", UserHandler)]).listen(
            self.port, "127.0.0.1")

    async def stop(self):
        self.server.stop()
        await self.server.close_all_connections()  # kept-alive ones too, as a restart does


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
async def hub_and_auth(guard):
    hub = FakeHub({"t-ann": "ann"})
    hub.start()
    hub_auth = HubOAuth(api_url=f"http://127.0.0.1:{hub.port}/hub/api", api_token="server",
                        cache_max_age=30)
    clock = Clock()
    guard.keep_logins_while_hub_restarts(hub_auth, logging.getLogger("test-guard"),
                                         grace=300, clock=clock)
    yield hub, hub_auth, clock
    if hub.server is not None:
        await hub.stop()


async def ask(hub_auth, token):
    return await hub_auth.user_for_token(token, sync=False)


async def test_a_login_the_hub_confirmed_keeps_working_while_the_hub_restarts(hub_and_auth):
    hub, hub_auth, clock = hub_and_auth
    assert (await ask(hub_auth, "t-ann"))["name"] == "ann"
    await hub.stop()
    hub_auth.cache.clear()  # the server's 30 s cache ran out while the hub was down
    clock.now += 299
    assert (await ask(hub_auth, "t-ann"))["name"] == "ann"
    hub.failing = True
    hub.start()  # up again but failing with 500s: still a hub that cannot answer
    assert (await ask(hub_auth, "t-ann"))["name"] == "ann"


async def test_nothing_older_than_the_grace_and_no_unknown_login_gets_in(hub_and_auth):
    hub, hub_auth, clock = hub_and_auth
    assert (await ask(hub_auth, "t-ann"))["name"] == "ann"
    await hub.stop()
    hub_auth.cache.clear()
    with pytest.raises(HTTPError) as unknown:
        await ask(hub_auth, "t-ben")  # never confirmed: refused, as upstream does
    assert unknown.value.status_code == 500
    clock.now += 301
    with pytest.raises(HTTPError):
        await ask(hub_auth, "t-ann")


async def test_a_login_the_hub_refuses_is_refused_even_if_it_was_fine_before(hub_and_auth):
    hub, hub_auth, clock = hub_and_auth
    assert (await ask(hub_auth, "t-ann"))["name"] == "ann"
    del hub.users["t-ann"]  # revoked at the hub
    hub_auth.cache.clear()
    assert await ask(hub_auth, "t-ann") is None
    await hub.stop()  # and then the hub goes down: the revoked login stays out
    hub_auth.cache.clear()
    with pytest.raises(HTTPError):
        await ask(hub_auth, "t-ann")


async def test_checks_that_skip_the_cache_never_get_an_old_answer(hub_and_auth):
    hub, hub_auth, clock = hub_and_auth
    assert (await ask(hub_auth, "t-ann"))["name"] == "ann"
    await hub.stop()
    with pytest.raises(HTTPError):  # the guard's re-check: it keeps the connection
        await hub_auth.user_for_token("t-ann", use_cache=False, sync=False)


async def test_a_hub_that_does_not_answer_is_not_waited_for(hub_and_auth, guard, monkeypatch):
    hub, hub_auth, clock = hub_and_auth
    monkeypatch.setattr(guard, "ASK_SECONDS", 0.5)
    assert (await ask(hub_auth, "t-ann"))["name"] == "ann"
    hub_auth.cache.clear()
    hub.hanging = True
    began = time.monotonic()
    assert (await ask(hub_auth, "t-ann"))["name"] == "ann"
    assert time.monotonic() - began < 5
    # While it is known to be down, requests do not ask it again at once.
    asked = hub.asked
    hub_auth.cache.clear()
    assert (await ask(hub_auth, "t-ann"))["name"] == "ann"
    assert hub.asked == asked
    # Later it is asked again, and answers again.
    clock.now += guard.RETRY_SECONDS + 1
    hub.hanging = False
    hub_auth.cache.clear()
    assert (await ask(hub_auth, "t-ann"))["name"] == "ann"
    assert hub.asked == asked + 1
