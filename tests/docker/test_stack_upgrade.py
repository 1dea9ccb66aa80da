"""An upgrade from the previous JupyterHub major keeps everything.

The stack first runs a hub of JupyterHub 5 (the last 5.x release, with DockerSpawner,
built here on the stand-in Python base, configured like stock JupyterHub:
bench/stock_jupyterhub_config.py) on the stack's own PostgreSQL, proxy and volumes.
People log in, one makes an API token, one starts a server and writes a file. Then
`./hub up` replaces that hub with personal-hub's (JupyterHub 6, `upgrade-db` on start):
the users, the token, the running server's record (the server itself keeps running and
answers), the login and the file are all still there.
"""

from __future__ import annotations

import json
import re
import sys

import pytest
import requests

from tests.docker.conftest import (
    REPO,
    Stack,
    compose_command,
    container_logs,
    managed,
    run,
)
from tests.docker.test_stack import api, hub_healthy, open_server, read_file, write_file
from tests.helpers import create_token, login, login_error, wait_for

pytestmark = pytest.mark.docker

PREVIOUS_MAJOR = "5.5.4"
STOCK_CONFIG = "bench/stock_jupyterhub_config.py"
STOCK_CONFIG_IN_HUB = "/etc/jupyterhub-previous/jupyterhub_config.py"


def pin(name: str) -> str:
    """The hub image's pin of `name` (the older hub gets the same driver and spawner)."""
    text = (REPO / "docker/hub-constraints.txt").read_text()
    return re.search(rf"^{re.escape(name)}==\S+$", text, re.M).group(0)


@pytest.fixture(scope="module")
def stack(standins):
    with managed(Stack(standins)) as stack:
        yield stack


@pytest.fixture(scope="module")
def previous_hub(stack):
    """The stack with a JupyterHub 5 hub, started from a fresh copy of the checkout."""
    image = f"{stack.prefix}-hub-previous:latest"
    context = stack.dir / "previous-hub"
    context.mkdir()
    (context / "Dockerfile").write_text(
        "ARG PYTHON_IMAGE\nFROM ${PYTHON_IMAGE}\n"
        f'RUN pip install --no-cache-dir "jupyterhub=={PREVIOUS_MAJOR}" '
        f'"{pin("dockerspawner")}" "{pin("psycopg2-binary")}"\n'
        "WORKDIR /srv/jupyterhub\n")
    run(["docker", "build", "--build-arg", f"PYTHON_IMAGE={stack.standins['PYTHON_IMAGE']}",
         "--tag", image, str(context)], timeout=1200)
    env = {**stack.environ(), "PYTHONPATH": str(stack.repo)}
    run([sys.executable, "-m", "personal_hub", "init", "--env-file", "stack.env"],
        cwd=stack.repo, env=env)
    run(["sh", "./hub", "build", "all"], cwd=stack.repo, env=stack.environ(), timeout=1800)
    override = stack.dir / "previous-hub.json"
    override.write_text(json.dumps({"services": {"hub": {
        "image": image,
        "command": ["jupyterhub", "-f", STOCK_CONFIG_IN_HUB],
        "volumes": [f"{stack.repo / STOCK_CONFIG}:{STOCK_CONFIG_IN_HUB}:ro"],
    }}}))
    run([*compose_command(), "--env-file", "stack.env", "-f", "compose/docker-compose.yml",
         "-f", str(override), "up", "-d", "--no-build", "--wait", "--wait-timeout", "300"],
        cwd=stack.repo, env=stack.environ(), timeout=600)
    version = run(["docker", "exec", stack.container("hub"), "jupyterhub", "--version"])
    assert version.stdout.strip() == PREVIOUS_MAJOR

    def answers():
        try:
            return requests.get(f"{stack.url}/hub/api/", timeout=5).status_code == 200
        except requests.RequestException:
            return False

    wait_for(answers, timeout=180, what="the JupyterHub 5 hub to answer")
    return stack


@pytest.fixture(scope="module")
def before(previous_hub):
    stack = previous_hub
    password = stack.env_file()["JUPYTER_PASSWORD"]
    people = {}
    for role in ("ann", "ben"):
        name = f"{stack.prefix}{role}"
        session, response = login(stack.url, name, password)
        assert response.status_code == 302, login_error(response)
        people[role] = (name, session)
    ann, session = people["ann"]
    token = create_token(session, stack.url, ann, "kept across the upgrade")
    open_server(session, stack.url, ann)
    write_file(session, stack.url, ann, "before-upgrade.txt", "written under JupyterHub 5")
    return {"people": people, "token": token,
            "container": f"jupyter-{ann}", "password": password}


def test_upgrading_the_hub_keeps_users_tokens_servers_and_files(previous_hub, before):
    stack = previous_hub
    stack.compose("stop", "hub")
    stack.hub_up()  # personal-hub's hub on the same database and volumes
    wait_for(lambda: hub_healthy(stack), timeout=180, what="the upgraded hub")
    version = run(["docker", "exec", stack.container("hub"), "jupyterhub", "--version"])
    assert version.stdout.strip() != PREVIOUS_MAJOR
    ann, session = before["people"]["ann"]
    # The token made under JupyterHub 5 still identifies ann.
    me = requests.get(f"{stack.url}/hub/api/user", timeout=10,
                      headers={"Authorization": f"token {before['token']}"})
    assert me.status_code == 200 and me.json()["name"] == ann, me.text
    # The server started under JupyterHub 5 is still running and known to the new hub.
    assert "" in me.json()["servers"], (me.json(), container_logs(stack.container("hub")))
    status = session.get(f"{stack.url}/user/{ann}/api/status", timeout=30)
    assert status.status_code == 200, status.text
    assert read_file(session, stack.url, ann, "before-upgrade.txt") == \
        "written under JupyterHub 5"
    # Still logged in (the same cookie secret), and both users are there.
    home = session.get(f"{stack.url}/hub/home", timeout=30, allow_redirects=False)
    assert home.status_code == 200
    env = stack.env_file()
    admin, response = login(stack.url, env["JUPYTER_ADMIN_USER"], env["JUPYTER_ADMIN_PASSWORD"])
    assert response.status_code == 302, login_error(response)
    users = api(admin, "GET", f"{stack.url}/hub/api/users")
    names = {user["name"] for user in users.json()}
    assert {name for name, _ in before["people"].values()} <= names
    # ben, who never started a server, starts one under the new hub.
    ben, ben_session = before["people"]["ben"]
    open_server(ben_session, stack.url, ben)


def image_id(image: str) -> str:
    return run(["docker", "image", "inspect", "--format", "{{.Id}}", image]).stdout.strip()


def test_hub_upgrade_backs_up_rebuilds_and_keeps_everything(previous_hub, before):
    stack = previous_hub
    backup = stack.dir / "before-upgrade.tar.gz"
    result = run(["sh", "./hub", "upgrade", "--backup", str(backup)], cwd=stack.repo,
                 env=stack.environ(), timeout=1800)
    assert "upgraded:" in result.stderr, result.stderr
    assert backup.exists() and f"saved {backup}" in result.stderr
    assert image_id(f"{stack.hub_image.rsplit(':', 1)[0]}:before-upgrade")
    ann, session = before["people"]["ann"]
    open_server(session, stack.url, ann)
    assert read_file(session, stack.url, ann, "before-upgrade.txt") == \
        "written under JupyterHub 5"


def test_a_hub_that_fails_after_an_upgrade_is_rolled_back(previous_hub, before):
    stack = previous_hub
    ann, session = before["people"]["ann"]
    write_file(session, stack.url, ann, "before-broken-upgrade.txt", "still here")
    running = image_id(stack.hub_image)
    # The checkout's next version is broken: its hub stops as it loads its config.
    config = stack.repo / "personal_hub/jupyterhub_config.py"
    config.write_text(config.read_text() + '\nraise SystemExit("broken on purpose")\n')
    result = run(["sh", "./hub", "upgrade", "--backup", str(stack.dir / "broken.tar.gz")],
                 cwd=stack.repo, env={**stack.environ(), "HUB_WAIT_TIMEOUT": "60"},
                 timeout=1800, check=False)
    assert result.returncode == 1, result.stderr
    assert "previous images and database are back" in result.stderr
    assert "Traceback" not in result.stderr
    # The hub runs the image it ran before, and everything is as it was.
    wait_for(lambda: hub_healthy(stack), timeout=180, what="the rolled-back hub")
    assert image_id(stack.hub_image) == running
    home = session.get(f"{stack.url}/hub/home", timeout=30, allow_redirects=False)
    assert home.status_code == 200, "logged out by the rollback"
    open_server(session, stack.url, ann)
    assert read_file(session, stack.url, ann, "before-broken-upgrade.txt") == "still here"
    me = requests.get(f"{stack.url}/hub/api/user", timeout=10,
                      headers={"Authorization": f"token {before['token']}"})
    assert me.status_code == 200 and me.json()["name"] == ann
