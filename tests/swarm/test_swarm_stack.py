"""The stack on Docker Swarm end to end: `./hub up` with HUB_SPAWNER=swarm from a fresh
copy, then what users notice: a server is a Swarm service with the hub's policy, files
follow the user to a volume made afresh, a hub restart leaves the server answering,
placement by constraints, the internal users' network, and `./hub down` keeping files.

One stack for the module; tests run in file order.
"""

from __future__ import annotations

import json
import threading
import time

import pytest
import requests

from tests.docker.conftest import docker_json, run
from tests.docker.test_stack import api, open_server, read_file, write_file
from tests.helpers import free_port, login, login_error, wait_for, xsrf_from
from tests.swarm.conftest import node_label

pytestmark = [pytest.mark.docker, pytest.mark.swarm]

SPAWN_TIMEOUT = 180
GIB = 1024**3


@pytest.fixture(scope="module")
def deployed(swarm_stack):
    swarm_stack.write_settings(HUB_MEM_LIMIT="1G", HUB_PIDS_LIMIT="512")
    return swarm_stack.hub_up()


@pytest.fixture(scope="module")
def password(swarm_stack, deployed) -> str:
    return swarm_stack.env_file()["JUPYTER_PASSWORD"]


@pytest.fixture(scope="module")
def alice(swarm_stack, password):
    name = f"{swarm_stack.prefix}alice"
    session, response = login(swarm_stack.url, name, password)
    assert response.status_code == 302, login_error(response)
    open_server(session, swarm_stack.url, name)
    return name, session


def service_spec(name: str) -> dict:
    return docker_json("service", "inspect", name)[0]["Spec"]


def running_task_container(service: str) -> str:
    """The container of the service's running task (on this node: a single-node swarm)."""
    found = run(["docker", "ps", "-q", "--filter",
                 f"label=com.docker.swarm.service.name={service}"])
    ids = found.stdout.split()
    assert len(ids) == 1, f"{service} has {len(ids)} running containers here"
    return ids[0]


def start_outcome(session: requests.Session, url: str, name: str) -> dict:
    """Ask for the user's server and follow the start page's progress to its end: the
    last event (`ready` or `failed`, with the message a person sees)."""
    started = api(session, "POST", f"{url}/hub/api/users/{name}/server")
    assert started.status_code in (201, 202), started.text
    stream = session.get(f"{url}/hub/api/users/{name}/server/progress",
                         headers={"X-XSRFToken": xsrf_from(session)}, stream=True,
                         timeout=SPAWN_TIMEOUT)
    event = {}
    for line in stream.iter_lines(decode_unicode=True):
        if line.startswith("data:"):
            event = json.loads(line.removeprefix("data:"))
            if event.get("ready") or event.get("failed"):
                break
    stream.close()
    return event


def test_up_deploys_the_stack_to_swarm(swarm_stack, deployed, swarm_node):
    assert f"http://127.0.0.1:{swarm_stack.port}/" in deployed.stderr
    services = {name: spec for name in swarm_stack.services()
                if (spec := service_spec(name))}
    assert set(services) >= {swarm_stack.service(s) for s in ("hub", "proxy", "db")}
    hub = services[swarm_stack.service("hub")]["TaskTemplate"]["Placement"]["Constraints"]
    assert set(hub) == {"node.role == manager", "node.labels.personal-hub.state == true"}
    db = services[swarm_stack.service("db")]["TaskTemplate"]["Placement"]["Constraints"]
    assert db == ["node.labels.personal-hub.state == true"]
    # ./hub up labelled this node, which had no such label: state stays here.
    labels = docker_json("node", "inspect", swarm_node)[0]["Spec"]["Labels"]
    assert labels.get("personal-hub.state") == "true"
    network = docker_json("network", "inspect", swarm_stack.network)[0]
    assert (network["Driver"], network["Scope"], network["Internal"]) == (
        "overlay", "swarm", True)  # HUB_EGRESS=none
    page = requests.get(f"{swarm_stack.url}/hub/login", timeout=10)
    assert page.status_code == 200 and 'name="password"' in page.text


def test_a_users_server_is_a_swarm_service_with_the_hubs_policy(swarm_stack, alice):
    name, _ = alice
    spec = service_spec(f"jupyter-{name}")
    task = spec["TaskTemplate"]
    container = task["ContainerSpec"]
    assert container["Image"] == swarm_stack.singleuser_image
    assert container["CapabilityDrop"] == ["ALL"]
    assert container["Labels"]["personal-hub.server"] == name
    assert task["Resources"]["Limits"]["MemoryBytes"] == GIB
    assert task["Resources"]["Limits"]["Pids"] == 512
    network_id = docker_json("network", "inspect", swarm_stack.network)[0]["Id"]
    assert [n["Target"] for n in task["Networks"]] == [network_id]
    assert spec["EndpointSpec"]["Mode"] == "dnsrr"
    [home] = container["Mounts"]
    assert (home["Type"], home["Source"], home["Target"]) == (
        "volume", f"jupyterhub-user-{name}", "/home/jovyan")
    options = home["VolumeOptions"]["DriverConfig"]
    assert options["Name"] == "local"
    assert options["Options"]["device"] == f"{swarm_stack.homes}/{name}"
    # Inside, the limits hold: the kernel reports the memory and process limits (cgroup
    # v2's files, else v1's).
    inside = running_task_container(f"jupyter-{name}")
    limits = run(["docker", "exec", inside, "sh", "-c",
                  "cat /sys/fs/cgroup/memory.max 2>/dev/null"
                  " || cat /sys/fs/cgroup/memory/memory.limit_in_bytes;"
                  " cat /sys/fs/cgroup/pids.max 2>/dev/null"
                  " || cat /sys/fs/cgroup/pids/pids.max"]).stdout.split()
    assert limits == [str(GIB), "512"]


def test_files_follow_the_user_to_a_volume_made_afresh(swarm_stack, alice):
    name, session = alice
    url = swarm_stack.url
    write_file(session, url, name, "notes.txt", "kept on the shared storage")
    # The file is on the storage, in the directory the hub made for this user.
    on_storage = swarm_stack.homes / name / "notes.txt"
    assert on_storage.read_text() == "kept on the shared storage"
    assert (on_storage.parent.stat().st_uid, on_storage.parent.stat().st_gid) == (1000, 100)
    assert api(session, "DELETE", f"{url}/hub/api/users/{name}/server").status_code in (202, 204)
    wait_for(lambda: not [s for s in swarm_stack.services() if s == f"jupyter-{name}"],
             timeout=60, what="the server's service to be removed")
    # As on a node that never ran this server: no home volume there yet.
    wait_for(lambda: run(["docker", "volume", "rm", f"jupyterhub-user-{name}"],
                         check=False).returncode == 0, timeout=60, what="the volume to be free")
    open_server(session, url, name)
    assert read_file(session, url, name, "notes.txt") == "kept on the shared storage"


def test_a_hub_restart_leaves_the_server_answering(swarm_stack, alice):
    name, session = alice
    url = swarm_stack.url
    before = service_spec(f"jupyter-{name}")
    answers, stop = [], threading.Event()

    def keep_asking():
        while not stop.is_set():
            try:
                answers.append(session.get(f"{url}/user/{name}/api/status", timeout=10)
                               .status_code)
            except requests.RequestException as error:
                answers.append(repr(error))
            time.sleep(0.5)

    asker = threading.Thread(target=keep_asking)
    asker.start()
    try:
        old_task = running_task_container(swarm_stack.service("hub"))
        run(["docker", "service", "update", "--force", "--detach",
             swarm_stack.service("hub")], timeout=120)
        wait_for(lambda: run(["docker", "ps", "-q", "--filter",
                              f"label=com.docker.swarm.service.name={swarm_stack.service('hub')}",
                              "--filter", "health=healthy"]).stdout.split() not in ([], [old_task]),
                 timeout=180, what="a new healthy hub task")
    finally:
        stop.set()
        asker.join()
    assert answers and set(answers) == {200}, answers
    assert service_spec(f"jupyter-{name}") == before
    # The restarted hub knows the server: its API says it runs.
    user = api(session, "GET", f"{url}/hub/api/users/{name}").json()
    assert user["servers"][""]["ready"] is True


def test_servers_are_placed_by_constraints(swarm_stack, swarm_node, password):
    label = f"{swarm_stack.prefix}-servers"
    swarm_stack.set_env(HUB_SWARM_CONSTRAINTS=f"node.labels.{label}==true")
    swarm_stack.hub_up()
    try:
        placed_by_constraints(swarm_stack, swarm_node, password, label)
    finally:
        # Servers may run anywhere again from the next deploy on (the next test's).
        swarm_stack.set_env(HUB_SWARM_CONSTRAINTS="")


def placed_by_constraints(swarm_stack, swarm_node, password, label):
    name = f"{swarm_stack.prefix}bob"
    session, response = login(swarm_stack.url, name, password)
    assert response.status_code == 302, login_error(response)
    # No node has the label: the start ends at once, saying why, and leaves nothing.
    began = time.monotonic()
    failed = start_outcome(session, swarm_stack.url, name)
    assert failed.get("failed"), failed
    assert "No node of the swarm can run your server" in failed["message"], failed
    assert time.monotonic() - began < 60
    wait_for(lambda: f"jupyter-{name}" not in swarm_stack.services(), timeout=60,
             what="the unplaceable service to be removed")
    with node_label(swarm_node, label):
        ready = start_outcome(session, swarm_stack.url, name)
        assert ready.get("ready"), ready
        constraints = service_spec(f"jupyter-{name}")["TaskTemplate"]["Placement"]
        assert constraints["Constraints"] == [f"node.labels.{label} == true"]
        node = run(["docker", "service", "ps", "--filter", "desired-state=running",
                    "--format", "{{.Node}}", f"jupyter-{name}"]).stdout.split()
        hostname = run(["docker", "node", "inspect", "--format", "{{.Description.Hostname}}",
                        swarm_node]).stdout.strip()
        assert node == [hostname]
        assert api(session, "DELETE",
                   f"{swarm_stack.url}/hub/api/users/{name}/server").status_code in (202, 204)


def test_traefiks_swarm_provider_routes_the_domain_to_the_hub(swarm_stack, alice, standins):
    network, port = f"{swarm_stack.prefix}-traefik", free_port()
    run(["docker", "network", "create", "--driver", "overlay", "--attachable", network])
    run(["docker", "run", "-d", "--name", f"{swarm_stack.prefix}-traefik", "--network", network,
         "-p", f"127.0.0.1:{port}:80", "-v", "/var/run/docker.sock:/var/run/docker.sock:ro",
         standins["TRAEFIK_IMAGE"], "--providers.swarm=true",
         "--providers.swarm.exposedbydefault=false", "--entrypoints.web.address=:80"])
    domain = f"hub.{swarm_stack.prefix}.test"
    swarm_stack.set_env(JUPYTER_DOMAIN=domain, TRAEFIK_NETWORK=network, TRAEFIK_ENTRYPOINT="web")
    swarm_stack.hub_up()

    def login_page_through_traefik():
        page = requests.get(f"http://127.0.0.1:{port}/hub/login", headers={"Host": domain},
                            timeout=5)
        return page.status_code == 200 and 'name="password"' in page.text

    try:
        wait_for(login_page_through_traefik, timeout=90, what="Traefik to route the domain")
        other = requests.get(f"http://127.0.0.1:{port}/hub/login",
                             headers={"Host": "other.test"}, timeout=5)
        assert other.status_code == 404
    finally:
        # Back to plain http on 127.0.0.1 (with JUPYTER_DOMAIN, new cookies are Secure).
        swarm_stack.set_env(JUPYTER_DOMAIN="")
        swarm_stack.hub_up()
    assert "traefik.enable" not in service_spec(swarm_stack.service("proxy"))["Labels"]


def test_user_servers_reach_the_hub_but_nothing_outside_their_network(swarm_stack, alice):
    name, _ = alice
    inside = running_task_container(f"jupyter-{name}")
    probe = ("import socket, sys\n"
             "def reach(host, port):\n"
             "    try:\n"
             "        socket.create_connection((host, port), timeout=3).close()\n"
             "        return 'open'\n"
             "    except OSError as error:\n"
             "        return type(error).__name__\n"
             "print(reach('hub', 8081), reach(sys.argv[1], int(sys.argv[2])))\n")
    # The engine's own bridge address (made by the test engine), where the proxy's port is
    # published on the host: reachable from any ordinary container, not from this one.
    gateway = docker_json("network", "inspect", "bridge")[0]["IPAM"]["Config"][0]["Gateway"]
    hub, host = run(["docker", "exec", inside, "python", "-c", probe, gateway,
                     str(swarm_stack.port)]).stdout.split()
    assert hub == "open"
    assert host != "open", f"a user server reached {gateway}:{swarm_stack.port}"


def test_rotate_on_swarm_logs_everyone_out_and_keeps_the_files(swarm_stack, alice, password):
    name, old_session = alice
    url = swarm_stack.url
    result = run(["sh", "./hub", "rotate"], cwd=swarm_stack.repo, env=swarm_stack.environ(),
                 timeout=600)
    new_password = swarm_stack.env_file()["JUPYTER_PASSWORD"]
    assert new_password != password
    assert result.stdout.count(new_password) == 1 and new_password not in result.stderr
    # The old login and the old password are refused; the server was stopped.
    home = old_session.get(f"{url}/hub/home", timeout=10, allow_redirects=False)
    assert home.status_code == 302 and "/hub/login" in home.headers["Location"]
    assert login(url, name, password)[1].status_code == 403
    assert f"jupyter-{name}" not in swarm_stack.services()
    session, response = login(url, name, new_password)
    assert response.status_code == 302, login_error(response)
    open_server(session, url, name)
    assert read_file(session, url, name, "notes.txt") == "kept on the shared storage"


def test_down_removes_the_stack_and_keeps_the_files(swarm_stack, alice):
    name, _ = alice
    result = run(["sh", "./hub", "down"], cwd=swarm_stack.repo, env=swarm_stack.environ(),
                 timeout=300)
    assert "removing user servers" in result.stderr
    wait_for(lambda: not swarm_stack.services(), timeout=120, what="every service to go")
    assert run(["docker", "network", "inspect", swarm_stack.network],
               check=False).returncode != 0, "./hub down returned before the network went"
    volumes = run(["docker", "volume", "ls", "--format", "{{.Name}}"]).stdout.split()
    assert {f"{swarm_stack.prefix}_jupyterhub_db", f"{swarm_stack.prefix}_jupyterhub_data"} <= \
        set(volumes)
    assert (swarm_stack.homes / name / "notes.txt").read_text() == "kept on the shared storage"
