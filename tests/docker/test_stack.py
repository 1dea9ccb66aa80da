"""The compose stack end to end: `./hub up` from a fresh copy, then what users notice.

Tests run in file order against one stack; the ones that restart or reconfigure it
come last.
"""

from __future__ import annotations

import json
import os
import re
import stat
import sys
import time
from collections import Counter

import pytest
import requests

from tests.docker.conftest import REPO, container_logs, docker_json, run
from tests.helpers import free_port, login, login_error, wait_for, xsrf_from

pytestmark = pytest.mark.docker

SPAWN_TIMEOUT = 180
GIB = 1024**3


def open_server(session: requests.Session, url: str, user: str) -> None:
    """Spawn like a browser (GET /hub/spawn), then finish the OAuth handshake with the server."""
    session.get(f"{url}/hub/spawn", timeout=SPAWN_TIMEOUT)

    def lab_ready():
        page = session.get(f"{url}/user/{user}/lab", timeout=15)
        return page.status_code == 200 and "JupyterLab" in page.text

    wait_for(lab_ready, timeout=SPAWN_TIMEOUT, what=f"{user}'s server through the proxy")


def api(session: requests.Session, method: str, url: str, **kwargs) -> requests.Response:
    """A hub API call with the browser's cookie and XSRF token, like the hub's own pages."""
    headers = {"X-XSRFToken": xsrf_from(session)}
    return session.request(method, url, headers=headers, timeout=30, **kwargs)


def write_file(session: requests.Session, url: str, user: str, name: str, text: str) -> None:
    xsrf = session.cookies.get("_xsrf", path=f"/user/{user}/")
    response = session.put(
        f"{url}/user/{user}/api/contents/{name}",
        json={"type": "file", "format": "text", "content": text},
        headers={"X-XSRFToken": xsrf} if xsrf else {},
        timeout=15,
    )
    assert response.status_code in (200, 201), response.text


def read_file(session: requests.Session, url: str, user: str, name: str) -> str:
    response = session.get(f"{url}/user/{user}/api/contents/{name}", timeout=15)
    assert response.status_code == 200, response.text
    return response.json()["content"]


def container_exists(name: str) -> bool:
    return run(["docker", "inspect", name], check=False).returncode == 0


def hub_healthy(stack) -> bool:
    state = docker_json("inspect", stack.container("hub"))[0]["State"]
    return state.get("Health", {}).get("Status") == "healthy"


@pytest.fixture(scope="module")
def started(stack):
    """The README's one command on a fresh copy with no stack.env yet."""
    assert not (stack.repo / "stack.env").exists()
    result = stack.hub_up()
    return result


@pytest.fixture(scope="module")
def configured(stack, started):
    """Settings a user adds to stack.env, applied by running `./hub up` again."""
    stack.set_env(
        TZ="Europe/Berlin",
        OPENAI_API_KEY="sk-e2e-" + os.urandom(6).hex(),
        HUB_MEM_LIMIT="1G",
        HUB_CPU_LIMIT="1.5",
    )
    stack.hub_up()
    return stack.env_file()


@pytest.fixture(scope="module")
def alice(stack, configured):
    name = f"{stack.prefix}alice"
    session, response = login(stack.url, name, configured["JUPYTER_PASSWORD"])
    assert response.status_code == 302, login_error(response)
    open_server(session, stack.url, name)
    return name, session


def test_one_command_start_from_a_fresh_copy(stack, started):
    env_path = stack.repo / "stack.env"
    assert stat.S_IMODE(env_path.stat().st_mode) == 0o600
    assert f"http://127.0.0.1:{stack.port}/" in started.stderr
    for service in ("hub", "db", "proxy"):
        state = docker_json("inspect", stack.container(service))[0]["State"]
        assert state["Status"] == "running", service
    assert hub_healthy(stack)
    page = requests.get(f"{stack.url}/hub/login", timeout=10)
    assert page.status_code == 200 and 'name="password"' in page.text


# jsonschema builds these parsers at import when the package is there: 1-2 s of each start.
SLOW_IMPORT = "rfc3987_syntax"


def loads_at_start(container: str, modules: str) -> bool:
    probe = f"import sys, {modules}; print({SLOW_IMPORT!r} in sys.modules)"
    return run(["docker", "exec", container, "python", "-c", probe]).stdout.strip() == "True"


def test_compose_build_profile_builds_the_singleuser_image(stack, started):
    image = f"{stack.prefix}-profile-singleuser:latest"
    result = stack.compose(
        "--profile", "build", "build", "singleuser", timeout=900,
        env_overrides={"HUB_SINGLEUSER_IMAGE": image},
    )
    try:
        info = docker_json("image", "inspect", image)[0]
        assert info["Config"]["User"] in ("1000", "jovyan"), result.stdout
        version = run(["docker", "run", "--rm", image, "jupyterhub", "--version"]).stdout
        assert version.strip() == "6.1.1"
    finally:
        run(["docker", "image", "rm", "-f", "--no-prune", image], check=False)


def test_login_with_the_generated_password(stack, started):
    password = stack.env_file()["JUPYTER_PASSWORD"]
    _, response = login(stack.url, f"{stack.prefix}zoe", password)
    assert response.status_code == 302
    _, response = login(stack.url, f"{stack.prefix}zoe", password + "x")
    assert response.status_code == 403


def test_proxy_api_and_database_are_not_published(stack, started):
    ports = docker_json("inspect", stack.container("proxy"))[0]["NetworkSettings"]["Ports"]
    published = {port for port, bindings in ports.items() if bindings}
    assert published == {"8000/tcp"}
    assert ports["8000/tcp"][0]["HostIp"] == "127.0.0.1"
    db_ports = docker_json("inspect", stack.container("db"))[0]["NetworkSettings"]["Ports"]
    assert not any(db_ports.values())


def test_spawned_container_follows_the_policy(stack, alice, configured):
    name, _ = alice
    info = docker_json("inspect", f"jupyter-{name}")[0]
    assert info["Config"]["Image"] == stack.singleuser_image
    assert set(info["NetworkSettings"]["Networks"]) == {stack.network}
    mounts = {mount["Destination"]: mount for mount in info["Mounts"]}
    home = mounts["/home/jovyan"]
    assert home["Type"] == "volume" and home["Name"] == f"jupyterhub-user-{name}"
    env = dict(item.split("=", 1) for item in info["Config"]["Env"])
    assert env["TZ"] == "Europe/Berlin"
    assert env["OPENAI_API_KEY"] == configured["OPENAI_API_KEY"]
    assert "ANTHROPIC_API_KEY" not in env
    for secret in ("JUPYTER_PASSWORD", "POSTGRES_PASSWORD", "CONFIGPROXY_AUTH_TOKEN"):
        assert secret not in env
    host = info["HostConfig"]
    assert host["Memory"] == GIB
    assert host["CpuQuota"] == 150_000 and host["CpuPeriod"] == 100_000
    assert host["AutoRemove"] is True


def test_the_hub_and_user_servers_start_without_the_slow_format_parsers(stack, alice):
    assert not loads_at_start(stack.container("hub"), "jupyterhub.app")
    assert not loads_at_start(f"jupyter-{alice[0]}", "jupyter_server.serverapp, jupyterlab")


def test_hub_logs_hold_no_secrets(stack, alice, configured):
    logs = run(["docker", "logs", stack.container("hub")]).stderr
    logs += run(["docker", "logs", stack.container("hub")]).stdout
    for name in ("JUPYTER_PASSWORD", "JUPYTER_ADMIN_PASSWORD", "POSTGRES_PASSWORD",
                 "CONFIGPROXY_AUTH_TOKEN", "OPENAI_API_KEY"):
        assert configured[name] not in logs, f"{name} appears in the hub log"


def test_database_is_not_reachable_from_a_user_container(stack, alice):
    name, _ = alice
    db_ip = next(iter(docker_json("inspect", stack.container("db"))[0]["NetworkSettings"]
                      ["Networks"].values()))["IPAddress"]
    probe = (
        "import socket, sys\n"
        "for host in sys.argv[1:]:\n"
        "    try:\n"
        "        socket.create_connection((host, 5432), timeout=3).close()\n"
        "        print('reachable', host)\n"
        "    except OSError as error:\n"
        "        print('unreachable', host, type(error).__name__)\n"
    )
    result = run(["docker", "exec", f"jupyter-{name}", "python", "-c", probe, "db", db_ip])
    assert "reachable db" not in result.stdout.replace("unreachable", "")
    assert result.stdout.count("unreachable") == 2, result.stdout
    # ...while the hub itself reaches it (it keeps its state there).
    hub = run(["docker", "exec", stack.container("hub"), "python", "-c", probe, "db"])
    assert "reachable db" in hub.stdout and "unreachable" not in hub.stdout


def test_benchmark_script_reports_spawn_times(stack, alice):
    result = run(
        [sys.executable, "bench/spawn_time.py", "--runs", "1", "--url", stack.url],
        cwd=stack.repo,
        timeout=600,
    )
    assert re.search(r"first spawn .*median \d+\.\d+ s", result.stdout), result.stdout
    assert re.search(r"respawn .*median \d+\.\d+ s", result.stdout), result.stdout
    leftovers = run(["docker", "volume", "ls", "--format", "{{.Name}}"]).stdout
    assert "jupyterhub-user-bench" not in leftovers


def test_files_survive_stopping_and_starting_the_server(stack, alice):
    name, session = alice
    write_file(session, stack.url, name, "keep.txt", "still here")
    stopped = api(session, "DELETE", f"{stack.url}/hub/api/users/{name}/server")
    assert stopped.status_code in (202, 204), stopped.text
    wait_for(lambda: not container_exists(f"jupyter-{name}"), timeout=60,
             what="the stopped container to be removed")
    assert run(["docker", "volume", "inspect", f"jupyterhub-user-{name}"]).returncode == 0
    started = api(session, "POST", f"{stack.url}/hub/api/users/{name}/server")
    assert started.status_code in (201, 202), started.text
    open_server(session, stack.url, name)
    assert read_file(session, stack.url, name, "keep.txt") == "still here"


def login_cache_seconds() -> int:
    """How long the single-user image trusts the hub's answer about a login."""
    config = json.loads((REPO / "docker/singleuser/jupyter_server_config.json").read_text())
    return config["HubOAuth"]["cache_max_age"]


def test_hub_restart_does_not_interrupt_a_running_server(stack, alice):
    name, session = alice
    status = f"{stack.url}/user/{name}/api/status"
    assert session.get(status, timeout=10).status_code == 200  # the server knows this login
    run(["docker", "stop", stack.container("hub")], timeout=60)
    # The hub stays down for longer than the server's cache of the hub's answer about the
    # login; the external proxy still routes, and the server keeps letting its user in.
    codes = []
    deadline = time.monotonic() + login_cache_seconds() + 5
    while time.monotonic() < deadline:
        codes.append(session.get(status, timeout=10).status_code)
        time.sleep(1)
    assert set(codes) == {200}, (Counter(codes), container_logs(f"jupyter-{name}", tail=40))
    run(["docker", "start", stack.container("hub")], timeout=60)
    wait_for(lambda: hub_healthy(stack), timeout=120, what="the hub to be healthy again")
    home = session.get(f"{stack.url}/hub/home", timeout=10, allow_redirects=False)
    assert home.status_code == 200, "the user should still be logged in"
    assert session.get(f"{stack.url}/user/{name}/api/status", timeout=10).status_code == 200


def test_down_and_up_keep_users_and_files(stack, alice, configured):
    name, session = alice
    write_file(session, stack.url, name, "across-down.txt", "kept across down/up")
    # `./hub down` with the user's server still running: it stops that too (the
    # container goes, the volume stays) and removes the stack's network.
    result = run(["sh", "./hub", "down"], cwd=stack.repo, env=stack.environ(), timeout=300)
    assert not container_exists(stack.container("hub"))
    wait_for(lambda: not container_exists(f"jupyter-{name}"), timeout=60,
             what="./hub down to stop the user's server")
    networks = run(["docker", "network", "ls", "--format", "{{.Name}}"]).stdout.split()
    assert stack.network not in networks
    stack.hub_up()
    session, response = login(stack.url, name, configured["JUPYTER_PASSWORD"])
    assert response.status_code == 302
    open_server(session, stack.url, name)
    assert read_file(session, stack.url, name, "across-down.txt") == "kept across down/up"
    admin, response = login(stack.url, "admin", configured["JUPYTER_ADMIN_PASSWORD"])
    assert response.status_code == 302
    users = api(admin, "GET", f"{stack.url}/hub/api/users")
    assert users.status_code == 200
    names = {user["name"] for user in users.json()}
    assert {name, f"{stack.prefix}zoe"} <= names, result.stdout


def test_traefik_routes_the_domain_to_the_hub(stack, alice, standins):
    assert "TRAEFIK_IMAGE" in standins, "build.sh did not report a Traefik stand-in"
    network = f"{stack.prefix}-traefik"
    port = free_port()
    run(["docker", "network", "create", network])
    run([
        "docker", "run", "-d", "--name", f"{stack.prefix}-traefik",
        "--network", network,
        "-p", f"127.0.0.1:{port}:80",
        "-v", "/var/run/docker.sock:/var/run/docker.sock:ro",
        standins["TRAEFIK_IMAGE"],
        "--providers.docker=true",
        "--providers.docker.exposedbydefault=false",
        "--entrypoints.web.address=:80",
    ])
    domain = f"hub.{stack.prefix}.test"
    stack.set_env(JUPYTER_DOMAIN=domain, TRAEFIK_NETWORK=network, TRAEFIK_ENTRYPOINT="web")
    stack.hub_up()

    def login_page_through_traefik():
        page = requests.get(
            f"http://127.0.0.1:{port}/hub/login", headers={"Host": domain}, timeout=5
        )
        return page.status_code == 200 and 'name="password"' in page.text

    try:
        wait_for(login_page_through_traefik, timeout=60, what="Traefik to route the domain")
        other = requests.get(
            f"http://127.0.0.1:{port}/hub/login", headers={"Host": "other.test"}, timeout=5
        )
        assert other.status_code == 404
    finally:
        # (A failing test's report has Traefik's logs: the stack's live logs include it.)
        # Back to plain http on 127.0.0.1 for the modules after this one: with
        # JUPYTER_DOMAIN the hub's cookies are Secure (https only).
        stack.set_env(JUPYTER_DOMAIN="")
        stack.hub_up()


def test_hub_rotate_logs_everyone_out_and_keeps_files(stack, alice):
    name, _ = alice
    old_password = stack.env_file()["JUPYTER_PASSWORD"]
    session, response = login(stack.url, name, old_password)
    assert response.status_code == 302, login_error(response)
    open_server(session, stack.url, name)
    write_file(session, stack.url, name, "before-rotate.txt", "kept across rotation")

    result = run(["sh", "./hub", "rotate"], cwd=stack.repo, env=stack.environ(), timeout=600)

    new_password = stack.env_file()["JUPYTER_PASSWORD"]
    assert new_password != old_password
    assert result.stdout.count(new_password) == 1, "printed once"
    assert new_password not in result.stderr
    assert not container_exists(f"jupyter-{name}"), "its token was revoked: it was stopped"
    home = session.get(f"{stack.url}/hub/home", timeout=10, allow_redirects=False)
    assert home.status_code == 302 and "/hub/login" in home.headers["Location"]
    assert login(stack.url, name, old_password)[1].status_code == 403
    session, response = login(stack.url, name, new_password)
    assert response.status_code == 302, login_error(response)
    open_server(session, stack.url, name)
    assert read_file(session, stack.url, name, "before-rotate.txt") == "kept across rotation"
