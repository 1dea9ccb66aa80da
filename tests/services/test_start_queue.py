"""A crowd logging in at once starts in turn: with HUB_START_CONCURRENCY=1 three people
who ask for their servers together all get them, one after another, and the ones who
wait see their place in the start queue on the start page, as a browser shows it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.helpers import login, login_error, progress_messages

pytestmark = pytest.mark.services

NAMES = ("quinn", "rosa", "sam")
WAITING = "Waiting for a free start slot: "


def test_a_crowd_starts_in_turn_and_those_waiting_see_their_place(start_hub):
    hub = start_hub("start-queue", HUB_START_CONCURRENCY="1")
    sessions = {}
    for name in NAMES:
        sessions[name], response = login(hub.url, name, hub.environ["JUPYTER_PASSWORD"])
        assert response.status_code == 302, login_error(response)

    def start_and_follow(name: str) -> tuple[str, list[str]]:
        session = sessions[name]
        spawn = session.get(f"{hub.url}/hub/spawn", allow_redirects=False, timeout=30)
        # Straight to the start page with its progress, not a spinning browser.
        assert spawn.status_code == 302, spawn.text[:300]
        assert spawn.headers["Location"].endswith(f"/hub/spawn-pending/{name}")
        return name, progress_messages(session, hub.url, name)

    with ThreadPoolExecutor(len(NAMES)) as pool:
        progress = dict(pool.map(start_and_follow, NAMES))

    # Everyone got their own server...
    for name, session in sessions.items():
        lab = session.get(f"{hub.url}/user/{name}/lab", timeout=30)
        assert lab.status_code == 200 and "JupyterLab" in lab.text, name
        assert lab.url.startswith(f"{hub.url}/user/{name}/")
    # ...one at a time: one started at once, the two others waited and saw their place.
    first_waits = sorted(
        next((m for m in messages if m.startswith(WAITING)), "").split(" ahead")[0]
        for messages in progress.values()
    )
    assert first_waits == ["", WAITING + "1 person", WAITING + "nobody"], progress
    log = hub.process.log()
    assert log.count("waits in the queue") == 2
    assert log.count("answered") >= 3
