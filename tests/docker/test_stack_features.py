"""Server profiles, named servers and the AI assistant's model, on a stack of their own.

The stack is set up as an administrator would: HUB_PROFILES with two profiles (the
second with another image) and one for GPUs, two named servers per person, and the
assistant's model on a model server of the homelab's own (HUB_AI_MODEL,
HUB_AI_BASE_URL: a stub OpenAI-compatible server on the users' network). Then:

- the spawn page offers exactly the profiles; a crafted form value or REST API body
  starts nothing;
- a profile decides the container's memory, CPUs and image;
- one person runs two named servers with different profiles at once, on the same home
  volume, each reachable and each stoppable on its own;
- a GPU profile on a host without GPUs ends in a clear message, nothing left behind;
- in a real browser, a person picks a profile, opens a chat and Jupyternaut answers with
  the hub's model, without choosing anything.
"""

from __future__ import annotations

import re

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
from tests.docker.test_image_startup import STUB_MODEL
from tests.docker.test_stack import api, container_exists, hub_healthy, read_file, write_file
from tests.docker.test_stack_browser import (  # noqa: F401 - browser is a fixture
    CHROMIUM_ARGS,
    EXPOSE_JUPYTERLAB_APP,
    TIMEOUT_MS,
    browser,
    log_in,
)
from tests.helpers import login, login_error, wait_for

pytestmark = pytest.mark.docker

SPAWN_TIMEOUT = 240
GIB = 1024**3


@pytest.fixture(scope="module")
def stack(standins):  # noqa: F811 - the fixture imported above
    with managed(Stack(standins)) as stack:
        stack.hub_up()
        alternative = f"{stack.prefix}-alt:latest"
        model_server = f"{stack.prefix}-model"
        run(["docker", "tag", stack.singleuser_image, alternative])
        run(["docker", "run", "-d", "--name", model_server, "--network", stack.network,
             stack.singleuser_image, "python", "-c", STUB_MODEL])
        stack.set_env(
            HUB_PROFILES=(f"small: cpu=1 memory=1G; large: cpu=2 memory=1536M "
                          f"image={alternative}; gpu: gpus=1"),
            HUB_NAMED_SERVER_LIMIT="2",
            HUB_AI_MODEL="openai/stub-model",
            HUB_AI_BASE_URL=f"http://{model_server}:8000/v1",
        )
        stack.hub_up()
        stack.alternative_image = alternative
        stack.model_server = model_server
        try:
            yield stack
        finally:
            run(["docker", "image", "rm", "-f", "--no-prune", alternative], check=False)


def person(stack, role: str) -> tuple[str, requests.Session]:
    name = f"{stack.prefix}{role}"
    session, response = login(stack.url, name, stack.env_file()["JUPYTER_PASSWORD"])
    assert response.status_code == 302, login_error(response)
    session.get(f"{stack.url}/hub/home", timeout=30)  # a fresh XSRF cookie for the API
    return name, session


def spawn_page(stack, session, user: str, server: str = "") -> requests.Response:
    return session.get(f"{stack.url}/hub/spawn/{user}/{server}".rstrip("/"), timeout=30)


def submit_profile(stack, session, user: str, profile: str, server: str = ""):
    """Pick a profile on the spawn page and press Start, as a browser does."""
    page = spawn_page(stack, session, user, server)
    xsrf = re.search(r'name="_xsrf"\s+value="([^"]+)"', page.text).group(1)
    return session.post(page.url, data={"_xsrf": xsrf, "profile": profile},
                        allow_redirects=False, timeout=60)


def server_url(stack, user: str, server: str = "") -> str:
    return f"{stack.url}/user/{user}/{server}".rstrip("/")


def wait_for_lab(stack, session, user: str, server: str = "") -> None:
    def lab_ready():
        page = session.get(f"{server_url(stack, user, server)}/lab", timeout=15)
        return page.status_code == 200 and "JupyterLab" in page.text

    wait_for(lab_ready, timeout=SPAWN_TIMEOUT, what=f"{user}'s server {server!r}")


def container_of(user: str, server: str = "") -> str:
    return f"jupyter-{user}" + (f"--{server}" if server else "")


def test_the_spawn_page_offers_the_profiles_and_nothing_else_starts(stack):
    user, session = person(stack, "ann")
    page = spawn_page(stack, session, user)
    assert page.status_code == 200
    offered = re.findall(r'type="radio" name="profile" id="[^"]+" value="([^"]+)"', page.text)
    assert offered == ["small", "large", "gpu"]
    assert "1 CPU, 1G memory" in page.text and f"image {stack.alternative_image}" in page.text

    # A value the form never offered.
    refused = submit_profile(stack, session, user, "huge")
    assert refused.status_code == 400
    assert "There is no server profile &#39;huge&#39;" in refused.text or (
        "There is no server profile 'huge'" in refused.text), refused.text[-2000:]
    # The REST API takes user options as they come: an image, limits, an unknown profile.
    for options in ({"image": "attacker/miner:latest"}, {"profile": "small", "cpu": 64},
                    {"profile": "root"}):
        response = api(session, "POST", f"{stack.url}/hub/api/users/{user}/server",
                       json={"user_options": options})
        assert response.status_code == 400, (options, response.status_code, response.text)
    model = api(session, "GET", f"{stack.url}/hub/api/users/{user}").json()
    assert not model["servers"] or not any(s["ready"] for s in model["servers"].values())
    assert not container_exists(container_of(user))
    assert hub_healthy(stack)


def test_a_profile_decides_memory_cpus_and_image(stack):
    user, session = person(stack, "ben")
    assert submit_profile(stack, session, user, "large").status_code == 302
    wait_for_lab(stack, session, user)

    info = docker_json("inspect", container_of(user))[0]
    host = info["HostConfig"]
    assert host["Memory"] == host["MemorySwap"] == 1536 * 1024**2
    assert (host["CpuQuota"], host["CpuPeriod"]) == (200_000, 100_000)
    assert info["Config"]["Image"] == stack.alternative_image
    env = dict(item.split("=", 1) for item in info["Config"]["Env"])
    assert env["MEM_LIMIT"] == str(1536 * 1024**2)  # what the usage display compares to


def test_two_named_servers_with_two_profiles_share_the_home(stack):
    user, session = person(stack, "cat")
    assert submit_profile(stack, session, user, "small").status_code == 302
    assert submit_profile(stack, session, user, "large", server="big").status_code == 302
    wait_for_lab(stack, session, user)
    wait_for_lab(stack, session, user, "big")

    small = docker_json("inspect", container_of(user))[0]["HostConfig"]
    big = docker_json("inspect", container_of(user, "big"))[0]["HostConfig"]
    assert (small["Memory"], big["Memory"]) == (1 * GIB, 1536 * 1024**2)
    assert small["Binds"][0].split(":")[0] == big["Binds"][0].split(":")[0]

    # One home: a file written through one server is read through the other.
    write_file(session, stack.url, user, "both.txt", "written on the default server")
    assert read_file(session, stack.url, f"{user}/big", "both.txt") == (
        "written on the default server")

    # Each stops on its own: the named one goes, the default one keeps answering.
    response = api(session, "DELETE", f"{stack.url}/hub/api/users/{user}/servers/big")
    assert response.status_code in (202, 204), response.text
    wait_for(lambda: not container_exists(container_of(user, "big")), timeout=60,
             what="the named server's container to go")
    assert read_file(session, stack.url, user, "both.txt") == "written on the default server"
    servers = api(session, "GET", f"{stack.url}/hub/api/users/{user}").json()["servers"]
    assert servers[""]["ready"] and ("big" not in servers or not servers["big"]["ready"])


def test_a_gpu_profile_without_gpus_says_so(stack):
    user, session = person(stack, "dan")
    assert submit_profile(stack, session, user, "gpu").status_code == 302

    def failed():
        events = session.get(f"{stack.url}/hub/api/users/{user}/server/progress",
                             stream=True, timeout=SPAWN_TIMEOUT)
        return next((line for line in events.iter_lines(decode_unicode=True)
                     if '"failed": true' in line), None)

    message = wait_for(failed, timeout=SPAWN_TIMEOUT, what="the GPU start to end")
    assert "GPU" in message and "Traceback" not in message, message
    assert not container_exists(container_of(user))
    assert hub_healthy(stack)


def test_the_assistant_answers_with_the_hubs_model_in_the_browser(stack, browser):  # noqa: F811
    page = browser.new_person()
    user = f"{stack.prefix}eve"
    page.add_init_script(EXPOSE_JUPYTERLAB_APP)
    log_in(page, stack.url, user, stack.env_file()["JUPYTER_PASSWORD"])
    # The spawn page: the first profile is pre-selected; Start.
    page.wait_for_selector("input#profile-small:checked")
    page.click("input[type=submit], button[type=submit]")
    page.wait_for_url(f"**/user/{user}/lab**", timeout=TIMEOUT_MS)
    page.wait_for_function("() => window.jupyterapp !== undefined", timeout=TIMEOUT_MS)
    page.evaluate("() => window.jupyterapp.commands.execute('jupyterlab-chat:create',"
                  " {name: 'ask.chat'})")
    box = page.locator(".jp-chat-input-container textarea, .jp-chat-input-container "
                       "[contenteditable=true]").first
    box.wait_for(timeout=TIMEOUT_MS)
    box.click()
    page.keyboard.type("@Jupyternaut ping")
    page.keyboard.press("Enter")
    try:
        page.get_by_text("pong from the stub model").first.wait_for(timeout=TIMEOUT_MS)
    except Exception:
        print(container_logs(container_of(user), tail="all")[-6000:])
        print(container_logs(stack.model_server, tail=50))
        raise
    assert "POST /v1/chat/completions stub-model" in container_logs(stack.model_server)
