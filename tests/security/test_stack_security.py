"""What an attacker must not be able to do against the running compose stack.

One stack of its own (independent of tests/docker), configured for these tests before its
first start. Tests run in file order; each one attacks from an address of its own, so a
lockout earned in one test cannot leak into the next:

- the host (the published 127.0.0.1 port) logs people in and stands in for a bystander;
- alice's user container attacks the proxy API and the login form (test 1, 2);
- the "hog" user's container exhausts its own memory and process limits (test 3);
- through Traefik (TLS), the host is a different address again, and a throwaway container
  on Traefik's network plays "another app beside Traefik" (test 4, last: it turns the
  hub's public URL into https, after which plain-http logins no longer keep cookies).
"""

from __future__ import annotations

import json
import secrets
import select
import subprocess
import sys
import time

import pytest
import requests
from urllib3.exceptions import InsecureRequestWarning

from tests.docker.conftest import (  # noqa: F401 - standins is a fixture used by name
    Stack,
    docker_json,
    managed,
    run,
    standins,
)
from tests.docker.test_stack import (
    SPAWN_TIMEOUT,
    api,
    container_exists,
    open_server,
    read_file,
    write_file,
)
from tests.helpers import free_port, login, login_error, wait_for

pytestmark = [pytest.mark.security, pytest.mark.docker]

MIB = 1024**2
# Small budgets and limits, so the attacks below reach them quickly.
MAX_FAILURES_PER_ADDRESS = 4
# The single-user image with its batteries needs about 300 MiB idle; at 256M the kernel
# kills the server itself while it starts. With 1G the hog below is the biggest process
# in the container, so it is the one the kernel stops.
MEM_LIMIT_MIB = 1024
PIDS_LIMIT = 256
LOCKED_TEXT = "Too many failed logins"

# A failed login from *any* address, for *any* username, also counts against the shared
# password's budget (HUB_LOGIN_MAX_FAILURES_SHARED, default 30), which pauses new
# shared-password logins for every address that has not logged in before. This module
# fails on purpose from several addresses, so that budget is set far out of reach here:
# the per-address limit is what these tests are about.
MAX_FAILURES_SHARED = 1000

# Runs inside containers (user image, stand-in python image): the standard library only.
# Logs in through the real login form (GET for the _xsrf field and cookie, then POST) and
# prints one JSON line per attempt. Each attempt may carry freshly forged forwarded headers.
LOGIN_SCRIPT = r"""
import http.cookiejar, json, random, re, sys, urllib.error, urllib.parse, urllib.request


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def forged_address():
    return ".".join(str(random.randint(1, 254)) for _ in range(4))


def attempt(base, username, password, forge):
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect)
    headers = {}
    if forge:
        headers = {
            "X-Real-Ip": forged_address(),
            "X-Forwarded-For": forged_address() + ", " + forged_address(),
        }
    page = opener.open(urllib.request.Request(base + "/hub/login", headers=headers), timeout=30)
    xsrf = re.search(r'name="_xsrf"\s+value="([^"]+)"', page.read().decode()).group(1)
    body = urllib.parse.urlencode(
        {"_xsrf": xsrf, "username": username, "password": password}
    ).encode()
    request = urllib.request.Request(base + "/hub/login", data=body, headers=headers)
    try:
        response = opener.open(request, timeout=30)
        status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read().decode()
    return {
        "url": base,
        "username": username,
        "forged": headers,
        "status": status,
        "locked": "Too many failed logins" in text,
    }


for spec in json.load(sys.stdin):  # on stdin: the password stays out of command lines
    print(json.dumps(attempt(*spec)), flush=True)
"""

# Tries a TCP connection to each host:port given; prints one JSON line per target.
CONNECT_SCRIPT = r"""
import json, socket, sys

for target in sys.argv[1:]:
    host, port = target.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
        outcome = "connected"
    except socket.gaierror as error:
        outcome = "no such name: " + str(error)
    except OSError as error:
        outcome = type(error).__name__ + ": " + str(error)
    print(json.dumps({"target": target, "outcome": outcome}), flush=True)
"""

# Allocates (and writes) 10 MiB after 10 MiB; exits 0 only if it got far past any limit.
MEMORY_HOG = r"""
import sys, time
chunks = []
print("hogging", flush=True)
for _ in range(300):  # 3 GiB at most, should no limit stop it
    chunks.append(b"x" * (10 * 1024 * 1024))
    time.sleep(0.02)
print("survived", len(chunks) * 10, "MiB", flush=True)
"""

# Forks sleeping children until the kernel refuses (or `most` are running), reports how
# many it got, holds them for `hold` seconds (the test checks the others meanwhile), then
# kills and reaps them and exits by itself.
FORK_BOMB = r"""
import os, signal, sys, time
most, hold = int(sys.argv[1]), float(sys.argv[2])
children, error = [], "none"
try:
    while len(children) < most:
        pid = os.fork()
        if pid == 0:
            try:
                time.sleep(hold + 60)
            finally:
                os._exit(0)
        children.append(pid)
except OSError as failure:
    error = type(failure).__name__
print(len(children), error, flush=True)
time.sleep(hold)
for pid in children:
    os.kill(pid, signal.SIGKILL)
for pid in children:
    os.waitpid(pid, 0)
print("cleaned up", flush=True)
"""


# ---------------------------------------------------------------- helpers


def exec_python(
    container: str, script: str, *args: str, stdin: str | None = None, timeout: float = 120
):
    attach = ["-i"] if stdin is not None else []
    return run(
        ["docker", "exec", *attach, container, "python", "-c", script, *args],
        input=stdin, timeout=timeout,
    )


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def login_attempts(container: str, specs: list[tuple[str, str, str, bool]]) -> list[dict]:
    """Logins from inside `container`: (base URL, username, password, forge headers)."""
    result = exec_python(container, LOGIN_SCRIPT, stdin=json.dumps(specs), timeout=300)
    attempts = json_lines(result.stdout)
    assert len(attempts) == len(specs), result.stdout + result.stderr
    return attempts


def hub_log_lines(stack: Stack, *needles: str) -> str:
    """The hub's log lines that mention any of `needles` (which address the hub saw)."""
    logs = run(["docker", "logs", stack.container("hub")], check=False)
    lines = (logs.stdout + logs.stderr).splitlines()
    return "\n".join(line for line in lines if any(needle in line for needle in needles))


def network_address(container: str, network_suffix: str) -> str:
    networks = docker_json("inspect", container)[0]["NetworkSettings"]["Networks"]
    for name, settings in networks.items():
        if name == network_suffix or name.endswith(f"_{network_suffix}"):
            return settings["IPAddress"]
    raise AssertionError(f"{container} is not on {network_suffix}: {sorted(networks)}")


def fresh_name(stack: Stack, role: str) -> str:
    """A valid username with the stack's prefix (so cleanup finds its container and volume)."""
    return f"{stack.prefix}{role}{secrets.token_hex(3)}"


def answers(session: requests.Session, url: str) -> bool:
    try:
        return session.get(url, timeout=10).status_code == 200
    except requests.RequestException:
        return False


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def sec_stack(standins):  # noqa: F811 - the fixture imported above
    """A stack of this module's own, started once with the settings below."""
    with managed(Stack(standins)) as stack:
        # `./hub up` creates stack.env with `personal_hub init` when it is missing; create it
        # the same way first, so the first start already has this module's settings.
        run(
            [sys.executable, "-m", "personal_hub", "init", "--env-file", "stack.env"],
            cwd=stack.repo,
            env={**stack.environ(), "PYTHONPATH": str(stack.repo)},
        )
        stack.set_env(
            HUB_LOGIN_MAX_FAILURES_PER_IP=str(MAX_FAILURES_PER_ADDRESS),
            HUB_LOGIN_MAX_FAILURES_SHARED=str(MAX_FAILURES_SHARED),
            HUB_MEM_LIMIT=f"{MEM_LIMIT_MIB}M",
            HUB_PIDS_LIMIT=str(PIDS_LIMIT),
        )
        stack.hub_up()
        yield stack


@pytest.fixture(scope="module")
def password(sec_stack) -> str:
    return sec_stack.env_file()["JUPYTER_PASSWORD"]


def start_server(session: requests.Session, url: str, name: str, tries: int = 3) -> None:
    """Start `name`'s server and open it like a browser. On a very busy machine a start
    may still fail (a freshly built image's first start is the slowest): then it is tried
    again, as a person would press Start again."""
    for attempt in range(1, tries + 1):
        response = api(session, "POST", f"{url}/hub/api/users/{name}/server")
        assert response.status_code in (201, 202, 400), response.text

        def settled():
            servers = api(session, "GET", f"{url}/hub/api/users/{name}").json()["servers"]
            server = servers.get("")
            if server is None:
                return "failed"
            return "ready" if server["ready"] else None

        outcome = wait_for(settled, timeout=SPAWN_TIMEOUT, what=f"{name}'s server to start")
        if outcome == "ready":
            open_server(session, url, name)
            return
        assert attempt < tries, f"{name}'s server failed to start {tries} times"


def logged_in_with_server(stack: Stack, password: str, role: str):
    """A user logged in from the host, with a running server; (name, session)."""
    name = fresh_name(stack, role)
    session, response = login(stack.url, name, password)
    assert response.status_code == 302, login_error(response)
    session.get(f"{stack.url}/hub/home", timeout=30)  # the XSRF cookie for the hub's API
    start_server(session, stack.url, name)
    return name, session


@pytest.fixture(scope="module")
def alice(sec_stack, password):
    """Her container is the attacker's seat in tests 1 and 2; her server, the bystander in 3."""
    return logged_in_with_server(sec_stack, password, "alice")


# ---------------------------------------------------------------- 1: proxy API


def test_user_container_cannot_reach_the_proxy_api(sec_stack, alice):
    stack = sec_stack
    name, _ = alice
    proxy = stack.container("proxy")
    api_address = network_address(proxy, "hub-proxy-net")
    result = exec_python(
        f"jupyter-{name}", CONNECT_SCRIPT,
        "proxy:8001", "proxy-api:8001", "proxy-public:8001", f"{api_address}:8001",
        "db:5432", "proxy:8000", "hub:8081",
    )
    outcomes = {line["target"]: line["outcome"] for line in json_lines(result.stdout)}
    # Controls: the container does reach what users need (so the refusals below are real).
    assert outcomes["proxy:8000"] == "connected", outcomes
    assert outcomes["hub:8081"] == "connected", outcomes
    for target in ("proxy:8001", "proxy-api:8001", "proxy-public:8001",
                   f"{api_address}:8001", "db:5432"):
        assert outcomes[target] != "connected", f"{target} is reachable: {outcomes}"
    # The API's name means nothing on the users' network.
    assert outcomes["proxy-api:8001"].startswith("no such name"), outcomes

    # ...while the hub still drives the proxy through its private network.
    routes = exec_python(
        stack.container("hub"),
        # The hub has the token in its environment (from stack.env).
        "import json, os, urllib.request\n"
        "request = urllib.request.Request('http://proxy-api:8001/api/routes',\n"
        "    headers={'Authorization': 'token ' + os.environ['CONFIGPROXY_AUTH_TOKEN']})\n"
        "with urllib.request.urlopen(request, timeout=10) as response:\n"
        "    print(response.status)\n"
        "    print(json.dumps(sorted(json.load(response))))\n",
    )
    status, listed = routes.stdout.splitlines()[:2]
    assert status == "200", routes.stdout
    assert f"/user/{name}" in json.loads(listed), listed


# ---------------------------------------------------------------- 2: forged headers


def test_forged_forwarded_headers_do_not_dodge_the_address_limit(sec_stack, alice, password):
    stack = sec_stack
    name, _ = alice
    container = f"jupyter-{name}"
    through_proxy, straight_to_hub = "http://proxy:8000", "http://hub:8081"
    # Every failure with a new username (no per-username limit applies) and new forged
    # X-Real-Ip / X-Forwarded-For, alternating the proxy's public port and the hub itself.
    failures = [
        ((through_proxy, straight_to_hub)[i % 2], fresh_name(stack, "x"), "wrong-password", True)
        for i in range(MAX_FAILURES_PER_ADDRESS)
    ]
    # Then the right password, still with forged headers, both ways.
    correct = [
        (through_proxy, fresh_name(stack, "y"), password, True),
        (straight_to_hub, fresh_name(stack, "y"), password, True),
    ]
    attempts = login_attempts(container, failures + correct)
    seen = hub_log_lines(stack, *(spec[1] for spec in failures + correct))
    failed, refused = attempts[: len(failures)], attempts[len(failures):]
    assert [a["status"] for a in failed] == [403] * len(failures), f"{attempts}\n{seen}"
    for attempt in refused:
        assert attempt["status"] == 429 and attempt["locked"], (
            f"a forged X-Real-Ip/X-Forwarded-For dodged the per-address limit:\n"
            f"{json.dumps(attempts, indent=1)}\nhub log:\n{seen}"
        )

    # The host is another address: the container's lockout does not touch it.
    _, response = login(stack.url, fresh_name(stack, "host"), password)
    assert response.status_code == 302, login_error(response)


# ---------------------------------------------------------------- 3: container limits


def test_user_containers_are_hardened_and_contain_their_own_abuse(sec_stack, alice, password):
    stack = sec_stack
    other, other_session = alice
    hog, session = logged_in_with_server(stack, password, "hog")
    container = f"jupyter-{hog}"

    host = docker_json("inspect", container)[0]["HostConfig"]
    assert host["CapDrop"] == ["ALL"] and not host["CapAdd"], host["CapDrop"]
    assert "no-new-privileges:true" in (host["SecurityOpt"] or []), host["SecurityOpt"]
    assert host["PidsLimit"] == PIDS_LIMIT
    assert host["Memory"] == MEM_LIMIT_MIB * MIB
    assert host["MemorySwap"] == MEM_LIMIT_MIB * MIB, "swap beyond the memory limit"
    # What a process in the container sees: no capabilities, no way to gain privileges.
    status = run(["docker", "exec", container, "cat", "/proc/self/status"]).stdout
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    assert int(fields["CapEff"], 16) == 0 and int(fields["CapBnd"], 16) == 0, status
    assert fields["NoNewPrivs"].strip() == "1", status

    write_file(session, stack.url, hog, "before-hog.txt", "written before the hog")
    hub_api = f"{stack.url}/hub/api/"
    others_server = f"{stack.url}/user/{other}/api/status"

    def others_keep_answering(what: str) -> None:
        assert answers(requests.Session(), hub_api), f"the hub stopped answering during {what}"
        assert answers(other_session, others_server), (
            f"{other}'s server stopped answering during {what}"
        )

    # A memory hog: the kernel stops it at the limit, soon.
    hog_process = subprocess.Popen(
        ["docker", "exec", container, "python", "-c", MEMORY_HOG],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    deadline = time.monotonic() + 60
    checks = 0
    try:
        while hog_process.poll() is None and time.monotonic() < deadline:
            others_keep_answering("the memory hog")
            checks += 1
            time.sleep(0.2)
    finally:
        if hog_process.poll() is None:
            hog_process.kill()
    output = hog_process.communicate(timeout=30)[0]
    assert hog_process.returncode == 137, (
        f"the memory hog was not killed within 60 s (exit {hog_process.returncode}): {output}"
    )
    assert "survived" not in output
    others_keep_answering("the memory hog's aftermath")

    # A fork bomb: the process limit stops it well before the host notices.
    hold = 6.0
    bomb = subprocess.Popen(
        ["docker", "exec", container, "python", "-c", FORK_BOMB, str(2 * PIDS_LIMIT), str(hold)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        ready, _, _ = select.select([bomb.stdout], [], [], 60)
        assert ready, "the fork bomb did not report within 60 s"
        count, error = bomb.stdout.readline().split()
        # Children are held now: everyone else must still be served meanwhile.
        until = time.monotonic() + hold - 1
        while time.monotonic() < until:
            others_keep_answering("the fork bomb")
            checks += 1
            time.sleep(0.5)
        rest, errors = bomb.communicate(timeout=60 + hold)
    finally:
        if bomb.poll() is None:
            bomb.kill()
            bomb.communicate(timeout=30)
    assert int(count) < PIDS_LIMIT and error in ("BlockingIOError", "OSError"), (count, error)
    assert bomb.returncode == 0 and "cleaned up" in rest, (bomb.returncode, rest, errors)
    assert checks >= 3, "too few checks happened while the attacks ran"

    # Afterwards: the hog's files are intact, and its server answers or starts again.
    def server_answers() -> bool:
        return answers(session, f"{stack.url}/user/{hog}/api/status")

    if not (container_exists(container) and server_answers()):
        wait_for(lambda: not container_exists(container), timeout=60,
                 what="the hog's dead server to be removed")
        start_server(session, stack.url, hog)
    assert read_file(session, stack.url, hog, "before-hog.txt") == "written before the hog"
    others_keep_answering("the aftermath")


# ---------------------------------------------------------------- 4: behind Traefik (TLS)


@pytest.fixture(scope="module")
def traefik(sec_stack, standins):  # noqa: F811 - the fixture imported above
    """Traefik with a TLS entrypoint (its default self-signed certificate) in front of the
    stack; the hub's public URL becomes https://<domain>/. Yields (https base, domain)."""
    stack = sec_stack
    assert "TRAEFIK_IMAGE" in standins, "build.sh did not report a Traefik stand-in"
    network, name = f"{stack.prefix}-traefik", f"{stack.prefix}-traefik"
    port = free_port()
    run(["docker", "network", "create", network])
    run([
        "docker", "run", "-d", "--name", name, "--network", network,
        "-p", f"127.0.0.1:{port}:443",
        "-v", "/var/run/docker.sock:/var/run/docker.sock:ro",
        standins["TRAEFIK_IMAGE"],
        "--providers.docker=true",
        "--providers.docker.exposedbydefault=false",
        "--entrypoints.websecure.address=:443",
        "--entrypoints.websecure.http.tls=true",
    ])

    domain = f"hub.{stack.prefix}.test"
    stack.set_env(
        JUPYTER_DOMAIN=domain,
        TRAEFIK_NETWORK=network,
        TRAEFIK_ENTRYPOINT="websecure",
        HUB_TRUSTED_PROXIES=name,
    )
    stack.hub_up()
    base = f"https://127.0.0.1:{port}"

    def login_page():
        page = https_session(domain).get(f"{base}/hub/login", timeout=5)
        return page.status_code == 200 and 'name="password"' in page.text

    wait_for(login_page, timeout=60, what="Traefik to route the domain over https")
    return base, domain


def https_session(domain: str) -> requests.Session:
    session = requests.Session()
    session.headers["Host"] = domain
    session.verify = False  # Traefik's default self-signed certificate
    # Or REQUESTS_CA_BUNDLE (set where the stand-ins are built) would win over verify=False.
    session.trust_env = False
    return session


def https_login(base: str, domain: str, username: str, password: str, forge: bool = False):
    """Log in through Traefik's TLS entrypoint (optionally with forged forwarded headers)."""
    headers = None
    if forge:
        fake = [".".join(str(secrets.randbelow(254) + 1) for _ in range(4)) for _ in range(2)]
        headers = {"X-Real-Ip": fake[0], "X-Forwarded-For": fake[1]}
    return login(base, username, password, session=https_session(domain), headers=headers)


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_behind_traefik_cookies_are_secure_and_forged_headers_count_for_nothing(
    sec_stack, traefik, password, standins  # noqa: F811 - the fixture imported above
):
    stack = sec_stack
    base, domain = traefik
    requests.packages.urllib3.disable_warnings(InsecureRequestWarning)

    # Login cookies only ever travel over TLS; redirects never point at plain http.
    session, response = https_login(base, domain, fresh_name(stack, "tls"), password)
    assert response.status_code == 302, login_error(response)
    set_cookies = response.raw.headers.getlist("Set-Cookie")
    login_cookies = [
        cookie for cookie in set_cookies
        if cookie.startswith(("jupyterhub-hub-login=", "jupyterhub-session-id="))
    ]
    assert len(login_cookies) == 2, set_cookies
    for cookie in login_cookies:
        attributes = [part.strip().lower() for part in cookie.split(";")[1:]]
        assert "secure" in attributes, f"login cookie without Secure: {cookie}"
    locations = [response.headers["Location"]]
    for path in ("/", "/hub/", "/hub/login"):
        redirect = session.get(f"{base}{path}", allow_redirects=False, timeout=15)
        if redirect.is_redirect:
            locations.append(redirect.headers["Location"])
    for location in locations:
        assert not location.lower().startswith("http://"), locations
    assert session.get(f"{base}/hub/home", timeout=15).status_code == 200, "cookie not kept"

    # Another app on Traefik's network, straight at the proxy's public port and at the
    # hub, with forged forwarded headers: it is locked out as its own address.
    network = f"{stack.prefix}-traefik"
    proxy, hub = stack.container("proxy"), stack.container("hub")
    proxy_address = network_address(proxy, network)
    targets = (f"http://{proxy}:8000", f"http://{hub}:8081")
    failures = [
        (targets[i % 2], fresh_name(stack, "app"), "wrong-password", True)
        for i in range(MAX_FAILURES_PER_ADDRESS)
    ]
    correct = [(target, fresh_name(stack, "app"), password, True) for target in targets]
    intruder = run([
        "docker", "run", "--rm", "-i", "--name", f"{stack.prefix}-intruder",
        "--network", network, standins["PYTHON_IMAGE"], "sh", "-c",
        'python -c "$1"; python -c "$2" "$3" "$4" "$5"', "sh",
        LOGIN_SCRIPT,
        CONNECT_SCRIPT, f"{proxy}:8001", f"{proxy_address}:8001", "proxy-api:8001",
    ], input=json.dumps(failures + correct), timeout=300)
    lines = json_lines(intruder.stdout)
    attempts = [line for line in lines if "status" in line]
    outcomes = {line["target"]: line["outcome"] for line in lines if "target" in line}
    seen = hub_log_lines(stack, *(spec[1] for spec in failures + correct))
    assert [a["status"] for a in attempts[: len(failures)]] == [403] * len(failures), (
        f"{attempts}\n{seen}"
    )
    for attempt in attempts[len(failures):]:
        assert attempt["status"] == 429 and attempt["locked"], (
            f"forged headers dodged the limit from Traefik's network:\n"
            f"{json.dumps(attempts, indent=1)}\nhub log:\n{seen}"
        )
    assert len(outcomes) == 3 and "connected" not in outcomes.values(), outcomes

    # Traefik's clients are told apart (not lumped together as Traefik or the proxy):
    # the app's lockout does not touch the host's logins through Traefik...
    _, response = https_login(base, domain, fresh_name(stack, "tls"), password)
    assert response.status_code == 302, (
        f"the app's lockout hit another client: {login_error(response)}"
    )
    # ...and the host's own forged headers through Traefik give it nothing either.
    statuses = []
    for _ in range(MAX_FAILURES_PER_ADDRESS):
        _, response = https_login(base, domain, fresh_name(stack, "tlsx"), "wrong", forge=True)
        statuses.append(response.status_code)
    assert statuses == [403] * MAX_FAILURES_PER_ADDRESS, statuses
    _, response = https_login(base, domain, fresh_name(stack, "tls"), password, forge=True)
    assert response.status_code == 429 and LOCKED_TEXT in response.text, (
        f"forged headers through Traefik dodged the limit ({response.status_code}):\n"
        f"{hub_log_lines(stack, 'Failed login', 'Refused login')}"
    )
