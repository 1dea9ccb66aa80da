"""A small login storm on the Docker stack with the batteries image: six people log in
and ask for their servers at the same moment. Nobody gets an error, everyone follows
their start on the start page, and everyone lands in their own JupyterLab. (How fast is
for bench/, not for a test.)"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.helpers import login, login_error, progress_messages

pytestmark = pytest.mark.docker

PEOPLE = 6


def test_six_people_starting_at_once_all_reach_their_own_server(running_stack):
    stack = running_stack
    password = stack.env_file()["JUPYTER_PASSWORD"]
    names = [f"{stack.prefix}storm{number}" for number in range(PEOPLE)]
    sessions = {}
    for name in names:
        sessions[name], response = login(stack.url, name, password)
        assert response.status_code == 302, login_error(response)

    def start(name: str) -> tuple[str, list[str]]:
        session = sessions[name]
        spawn = session.get(f"{stack.url}/hub/spawn", allow_redirects=False, timeout=60)
        assert spawn.status_code == 302, f"{name}: {spawn.status_code} {spawn.text[:300]}"
        assert spawn.headers["Location"].endswith(f"/hub/spawn-pending/{name}")
        return name, progress_messages(session, stack.url, name)

    with ThreadPoolExecutor(PEOPLE) as pool:
        progress = dict(pool.map(start, names))

    for name, session in sessions.items():
        assert progress[name][-1] == f"Server ready at /user/{name}/", progress[name]
        lab = session.get(f"{stack.url}/user/{name}/lab", timeout=60)
        assert lab.status_code == 200 and "JupyterLab" in lab.text, name
        assert lab.url.startswith(f"{stack.url}/user/{name}/"), lab.url
        # Their own server: it knows them, by the identity the hub gave it.
        me = session.get(f"{stack.url}/user/{name}/api/me", timeout=30)
        assert me.status_code == 200, me.text
        assert me.json()["identity"]["username"] == name
