"""`personal_hub_guard`, the single-user server extension that closes the collaboration
connections of guests whose share was revoked (the browser test proves it in the image)."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest

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
