"""The faults tier: the compose stack survives what a homelab box goes through, and loses
nothing.

One stack of its own. Before the faults, people are logged in, servers run, files are
written, a share is made and a username is locked out; after each fault every test
checks the same things (`assert_nothing_lost`): the users, their files, their servers
(running, or cleanly stopped and startable), the share, the lockout, and a hub that
answers without 5xx. Tests run in file order; each leaves the stack healthy.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import requests

from tests.docker.conftest import (  # noqa: F401 - standins is a fixture used by name
    Stack,
    container_logs,
    docker_json,
    managed,
    run,
    standins,
)
from tests.docker.test_stack import (
    api,
    container_exists,
    hub_healthy,
    open_server,
    read_file,
    write_file,
)
from tests.helpers import login, login_error, require, wait_for

pytestmark = pytest.mark.docker

RECOVERY_TIMEOUT = 180
LOCKED_TEXT = "Too many failed logins"


@pytest.fixture(scope="module")
def stack(standins):  # noqa: F811 - the fixture imported above
    with managed(Stack(standins)) as stack:
        stack.hub_up()
        yield stack


class World:
    """What exists before the faults, and how to check it is all still there."""

    def __init__(self, stack: Stack):
        self.stack = stack
        env = stack.env_file()
        self.password = env["JUPYTER_PASSWORD"]
        self.admin = (env["JUPYTER_ADMIN_USER"], env["JUPYTER_ADMIN_PASSWORD"])
        self.people: dict[str, tuple[str, requests.Session]] = {}
        self.locked = f"{stack.prefix}locked"

    def name(self, role: str) -> str:
        return f"{self.stack.prefix}{role}"

    def log_in(self, role: str) -> requests.Session:
        session, response = login(self.stack.url, self.name(role), self.password)
        assert response.status_code == 302, login_error(response)
        self.people[role] = (self.name(role), session)
        return session

    def admin_session(self) -> requests.Session:
        session, response = login(self.stack.url, *self.admin)
        assert response.status_code == 302, login_error(response)
        return session

    def users(self) -> set[str]:
        listed = api(self.admin_session(), "GET", f"{self.stack.url}/hub/api/users")
        assert listed.status_code == 200, listed.text
        return {user["name"] for user in listed.json()}

    def lockout_recorded(self) -> bool:
        """The username's lockout, as the hub's database holds it (still running)."""
        query = ("SELECT count(*) FROM personal_hub_login_counters WHERE key LIKE "
                 f"'%{self.locked}%' AND locked_until > extract(epoch from now())")
        counted = run(["docker", "exec", self.stack.container("db"), "sh", "-c",
                       f'psql -U "$POSTGRES_USER" -d "$POSTGRES_DB" -At -c "{query}"'])
        return int(counted.stdout.strip() or 0) > 0

    def is_locked(self) -> bool:
        _, response = login(self.stack.url, self.locked, self.password)
        return response.status_code != 302 and LOCKED_TEXT in response.text

    def server_running(self, role: str) -> bool:
        name, session = self.people[role]
        model = api(self.admin_session(), "GET", f"{self.stack.url}/hub/api/users/{name}")
        return "" in model.json().get("servers", {})

    def open(self, role: str) -> None:
        """The person's server, started again if a fault stopped it."""
        name, session = self.people[role]
        home = session.get(f"{self.stack.url}/hub/home", timeout=30, allow_redirects=False)
        assert home.status_code == 200, f"{name} is no longer logged in ({home.status_code})"
        open_server(session, self.stack.url, name)


@pytest.fixture(scope="module")
def world(stack):
    world = World(stack)
    for role in ("ann", "ben"):
        session = world.log_in(role)
        open_server(session, stack.url, world.name(role))
        write_file(session, stack.url, world.name(role), "kept.txt", f"{role}'s notes")
    ann, ann_session = world.people["ann"]
    shared = api(ann_session, "POST", f"{stack.url}/hub/api/shares/{ann}/",
                 json={"user": world.name("ben")})
    assert shared.status_code == 200, shared.text
    for _ in range(6):  # HUB_LOGIN_MAX_FAILURES (5) wrong passwords: that username locks
        login(stack.url, world.locked, world.password + "-wrong")
    assert world.is_locked()
    world.before = world.users()
    return world


def assert_nothing_lost(world: World, *, same_networks: bool = True) -> None:
    """Everything of `world` is there. The lockout holds for the addresses that failed:
    with recreated networks, this host reaches the hub from another address, so the
    lockout is then checked in the database."""
    stack = world.stack
    wait_for(lambda: hub_healthy(stack), timeout=RECOVERY_TIMEOUT, what="a healthy hub")
    assert world.users() == world.before
    for role in ("ann", "ben"):
        name, session = world.people[role]
        world.open(role)
        assert read_file(session, stack.url, name, "kept.txt") == f"{role}'s notes"
    ann, ann_session = world.people["ann"]
    shares = api(ann_session, "GET", f"{stack.url}/hub/api/shares/{ann}/")
    assert shares.status_code == 200, shares.text
    assert [item["user"]["name"] for item in shares.json()["items"]] == [world.name("ben")]
    assert world.lockout_recorded(), "the lockout was lost"
    if same_networks:
        assert world.is_locked(), "the lockout no longer holds"
    assert api(world.admin_session(), "GET", f"{stack.url}/hub/api/").status_code == 200


class Poller:
    """Proxied requests of a person, back to back, while a fault happens."""

    def __init__(self, session: requests.Session, url: str):
        self.session, self.url = session, url
        self.codes: list[tuple[float, str]] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                code = str(self.session.get(self.url, timeout=15).status_code)
            except requests.RequestException as error:
                code = type(error).__name__
            self.codes.append((time.monotonic(), code))
            time.sleep(0.3)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.thread.join()

    def after(self, moment: float) -> Counter:
        return Counter(code for when, code in self.codes if when >= moment)


def crash(container: str) -> None:
    """kill -9 of the container's main process from the host, as the kernel's
    out-of-memory killer or a crash ends it. (`docker kill` would count as stopping it
    by hand, and Docker would not apply the restart policy.)"""
    os.kill(docker_json("inspect", container)[0]["State"]["Pid"], signal.SIGKILL)


def started_at(container: str) -> str:
    return docker_json("inspect", container)[0]["State"]["StartedAt"]


def test_hub_killed_during_use_comes_back_by_itself(stack, world):
    ann, session = world.people["ann"]
    status = f"{stack.url}/user/{ann}/api/status"
    server_started = started_at(f"jupyter-{ann}")
    with Poller(session, status) as poller:
        crash(stack.container("hub"))
        wait_for(lambda: hub_healthy(stack), timeout=RECOVERY_TIMEOUT,
                 what="the restart policy to bring the hub back")
        back = time.monotonic()
        time.sleep(3)
    # The user's server answered throughout: the proxy routes, the server keeps its logins.
    codes = Counter(code for _, code in poller.codes)
    assert set(codes) == {"200"}, (codes, container_logs(f"jupyter-{ann}", tail=30))
    assert poller.after(back)
    assert started_at(f"jupyter-{ann}") == server_started  # not restarted
    assert_nothing_lost(world)


def test_hub_killed_during_a_spawn_leaves_no_server_nobody_can_reach(stack, world):
    session = world.log_in("cat")
    cat = world.name("cat")
    world.before.add(cat)
    started = api(session, "POST", f"{stack.url}/hub/api/users/{cat}/server")
    assert started.status_code in (201, 202), started.text
    wait_for(lambda: container_exists(f"jupyter-{cat}"), timeout=60,
             what="the spawn to create cat's container")
    crash(stack.container("hub"))
    wait_for(lambda: hub_healthy(stack), timeout=RECOVERY_TIMEOUT, what="the hub back")

    def settled():
        # Either the hub knows the server, or it knows none and no container of cat's
        # is left running where nobody can reach it.
        return world.server_running("cat") or not running_container(f"jupyter-{cat}")

    wait_for(settled, timeout=RECOVERY_TIMEOUT, what="cat's server to be running or gone")
    world.open("cat")  # the next visit starts (or opens) it
    assert running_container(f"jupyter-{cat}")
    assert_nothing_lost(world)


def running_container(name: str) -> bool:
    listed = run(["docker", "ps", "--filter", f"name=^{name}$", "--format", "{{.Names}}"])
    return name in listed.stdout.split()


def test_database_restart_under_use_needs_nothing_from_anyone(stack, world):
    token_session = world.admin_session()
    api_url = f"{stack.url}/hub/api/users"
    run(["docker", "restart", stack.container("db")], timeout=120)
    wait_for(lambda: docker_json("inspect", stack.container("db"))[0]["State"]
             .get("Health", {}).get("Status") == "healthy",
             timeout=RECOVERY_TIMEOUT, what="the database to be healthy again")
    # The first requests after the database is back already work: no connection the
    # pool held across the restart is handed out broken.
    codes = [api(token_session, "GET", api_url).status_code for _ in range(10)]
    assert set(codes) == {200}, (codes, container_logs(stack.container("hub"), tail=40))
    assert_nothing_lost(world)


def test_proxy_killed_comes_back_empty_and_gets_every_route_within_seconds(stack, world):
    ann, session = world.people["ann"]
    server_started = started_at(f"jupyter-{ann}")
    crash(stack.container("proxy"))
    killed = time.monotonic()

    def answers():
        try:
            return session.get(f"{stack.url}/user/{ann}/api/status", timeout=5,
                               allow_redirects=False).status_code == 200
        except requests.RequestException:
            return False

    wait_for(answers, timeout=60, what="ann's server through the restarted proxy")
    # Bound: Docker's restart of the proxy plus the hub's 5 s route check.
    assert time.monotonic() - killed < 30
    assert started_at(f"jupyter-{ann}") == server_started  # the server was not restarted
    assert_nothing_lost(world)


def test_user_server_killed_shows_stopped_and_starts_again(stack, world):
    ben, session = world.people["ben"]
    crash(f"jupyter-{ben}")  # as the kernel's out-of-memory killer would
    wait_for(lambda: not world.server_running("ben"), timeout=RECOVERY_TIMEOUT,
             what="the hub to see ben's server stopped")
    assert_nothing_lost(world)  # opening it starts it again, files intact


ENGINE_CONFIG = ".personal-hub/dockerd/daemon.json"  # where ./hub test starts its engine from


def engine_started_by_hub_test() -> tuple[int, list[str], str, dict[str, str]]:
    """(pid, command line, working directory, environment) of the Docker engine, which
    must be one `./hub test` started (its config file under .personal-hub/dockerd): only
    that one may be restarted by a test."""
    found = [pid for pid in run(["pgrep", "-x", "dockerd"], check=False).stdout.split()
             if not process_gone(int(pid))]
    require(len(found) == 1, "exactly one dockerd process")
    pid = int(found[0])
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]
    cwd = os.readlink(f"/proc/{pid}/cwd")
    config = argv[argv.index("--config-file") + 1] if "--config-file" in argv else ""
    require(str(Path(cwd, config)).endswith(ENGINE_CONFIG),
            f"the Docker engine was started by ./hub test (config {ENGINE_CONFIG}), not {argv}")
    entries = Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0")
    environ = dict(entry.split("=", 1) for entry in entries if "=" in entry)
    return pid, argv, cwd, environ


def docker_answers() -> bool:
    return run(["docker", "info"], check=False).returncode == 0


def process_gone(pid: int) -> bool:
    """True once `pid` has exited: a zombie counts, as its parent (the shell that
    started the engine) may never reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def start_engine(argv: list[str], cwd: str, environ: dict[str, str]) -> None:
    """The engine as it was started: same command, directory and environment (./hub
    test gives it settings there, e.g. DOCKER_SERVICE_PREFER_OFFLINE_IMAGE)."""
    log = Path(cwd, Path(argv[argv.index("--config-file") + 1]).parent, "dockerd.log")
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as out:
        subprocess.Popen(argv, cwd=cwd, env=environ, stdout=out, stderr=subprocess.STDOUT,
                         start_new_session=True)
    wait_for(docker_answers, timeout=120, what="the Docker engine to answer again")


def test_engine_restart_as_a_host_reboot_brings_everything_back(stack, world):
    pid, argv, cwd, environ = engine_started_by_hub_test()
    # Everything stops, as when the host shuts down; then the engine starts again.
    os.kill(pid, signal.SIGTERM)
    try:
        wait_for(lambda: process_gone(pid), timeout=180, what="the Docker engine to stop")
    finally:
        # Whatever happened, the later tiers get an engine.
        if not process_gone(pid):
            os.kill(pid, signal.SIGKILL)
            wait_for(lambda: process_gone(pid), timeout=30, what="the engine killed")
        start_engine(argv, cwd, environ)
    # The stack comes back by its restart policies; user servers do not (they are
    # removed when they stop), and the hub's view matches: both shown stopped.
    wait_for(lambda: hub_healthy(stack), timeout=RECOVERY_TIMEOUT, what="the hub back")
    for role in ("ann", "ben"):
        wait_for(lambda role=role: not world.server_running(role), timeout=RECOVERY_TIMEOUT,
                 what=f"the hub to show {role}'s server stopped")
        assert not running_container(f"jupyter-{world.people[role][0]}")
    assert_nothing_lost(world)  # their next visit starts them again, files intact


def test_down_and_up_bring_everything_back(stack, world):
    run(["sh", "./hub", "down"], cwd=stack.repo, env=stack.environ(), timeout=300)
    stack.hub_up()
    # `./hub down` stopped the servers cleanly: the hub knows they are stopped.
    assert not world.server_running("ann") and not world.server_running("ben")
    assert_nothing_lost(world, same_networks=False)


def test_idle_servers_are_culled_busy_ones_kept_and_files_stay(stack, world):
    """Last: the hub restarts with a short HUB_IDLE_TIMEOUT (20 s, the shortest)."""
    stack.set_env(HUB_IDLE_TIMEOUT="20")
    stack.hub_up()
    for role in ("ann", "ben"):
        world.open(role)
    ann, ann_session = world.people["ann"]
    ben, _ = world.people["ben"]
    with Poller(ann_session, f"{stack.url}/user/{ann}/api/contents") as busy:
        wait_for(lambda: not world.server_running("ben"), timeout=180,
                 what="the idle culler to stop ben's idle server")
        assert world.server_running("ann"), "ann was working and her server was stopped"
    assert set(code for _, code in busy.codes) == {"200"}, Counter(busy.codes)
    assert "Culling server" in container_logs(stack.container("hub"), tail=400)
    run(["docker", "volume", "inspect", f"jupyterhub-user-{ben}"])  # the files' volume stays
    world.open("ben")
    assert read_file(world.people["ben"][1], stack.url, ben, "kept.txt") == "ben's notes"
