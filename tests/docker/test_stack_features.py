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
  the hub's model, without choosing anything;
- scheduled runs: a notebook scheduled every minute runs twice while its owner's server
  is stopped, with the owner's files; a failing one shows its error; nobody else sees
  or changes them;
- a published report (an interactive table and a plotly chart) opens for another person
  in a real browser while the owner's server is stopped, sandboxed; unpublished, it is
  gone.
"""

from __future__ import annotations

import html
import re
from urllib.parse import urljoin

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
    # The form posts to its own URL with the XSRF token in the query.
    action = html.unescape(re.search(r'<form[^>]*id="spawn_form"[^>]*action="([^"]+)"',
                                     page.text, re.S).group(1))
    return session.post(urljoin(page.url, action), data={"profile": profile},
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


def keep_waiting_while_it_loads(page, timeout: float = 180) -> None:
    """The first chat loads the assistant (several seconds, more on a busy machine), and
    JupyterLab may ask whether to keep waiting for the document: a person would."""

    def loaded():
        waiting = page.get_by_role("button", name="Continue waiting")
        if waiting.count():
            waiting.first.click()
        return (page.locator(".jp-Dialog").count() == 0
                and page.locator(".jp-Spinner:visible").count() == 0)

    wait_for(loaded, timeout=timeout, interval=1, what="the chat to load")


def test_the_assistant_answers_with_the_hubs_model_in_the_browser(stack, browser):  # noqa: F811
    page = browser.new_person()
    user = f"{stack.prefix}eve"
    log_in(page, stack.url, user, stack.env_file()["JUPYTER_PASSWORD"])
    # The spawn page: the first profile is pre-selected; Start.
    page.wait_for_selector("input#profile-small:checked")
    page.click("input[type=submit], button[type=submit]")
    page.wait_for_url(f"**/user/{user}/lab**", timeout=TIMEOUT_MS)
    page.wait_for_selector(".jp-LauncherCard", timeout=TIMEOUT_MS)
    # A new chat from the launcher, as a person opens one; Jupyternaut is the chat input's
    # chosen persona; nobody picked a model.
    page.locator(".jp-LauncherCard", has_text="Chat").first.click()
    box = page.locator(".jp-chat-input-container textarea").first
    box.wait_for(timeout=TIMEOUT_MS)
    keep_waiting_while_it_loads(page)
    # A moment before asking, as a person takes: a message sent in the first second or
    # two after the very first chat has loaded is not routed to Jupyternaut (jupyter-ai
    # 3.2's router; seen with a stand-alone server too, documented as a known issue).
    page.wait_for_timeout(3000)
    box.click()
    page.keyboard.type("ping")
    page.keyboard.press("Enter")
    try:
        page.get_by_text("pong from the stub model").first.wait_for(timeout=TIMEOUT_MS)
    except Exception:
        print(container_logs(container_of(user), tail="all")[-6000:])
        print(container_logs(stack.model_server, tail=50))
        raise
    assert "POST /v1/chat/completions stub-model" in container_logs(stack.model_server)


# --- scheduled runs ---------------------------------------------------------------------


def notebook(*sources: str) -> dict:
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        {"cell_type": "code", "id": f"c{n}", "metadata": {}, "source": source,
         "outputs": [], "execution_count": None} for n, source in enumerate(sources)]}


def put_notebook(stack, session, user: str, path: str, content: dict) -> None:
    xsrf = session.cookies.get("_xsrf", path=f"/user/{user}/") or ""
    response = session.put(f"{stack.url}/user/{user}/api/contents/{path}",
                           json={"type": "notebook", "format": "json", "content": content},
                           headers={"X-XSRFToken": xsrf}, timeout=30)
    assert response.status_code in (200, 201), response.text


def scheduler_page(stack, session) -> requests.Response:
    """The scheduler's page as a browser opens it: through the hub's OAuth (no consent
    page for the hub's own service) and back."""
    page = session.get(f"{stack.url}/services/scheduler/", timeout=30)
    assert page.status_code == 200 and "Scheduled runs of" in page.text, page.text[-2000:]
    return page


def schedule(stack, session, **form: str) -> requests.Response:
    page = scheduler_page(stack, session)
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1)
    return session.post(f"{stack.url}/services/scheduler/schedules",
                        data={"_xsrf": xsrf, **form}, allow_redirects=False, timeout=30)


def schedules_of(stack, session) -> dict[str, dict]:
    response = session.get(f"{stack.url}/services/scheduler/api/schedules", timeout=30)
    assert response.status_code == 200, response.text
    return {s["notebook"]: s for s in response.json()}


def test_scheduled_runs_while_the_server_is_stopped(stack):
    user, session = person(stack, "fay")
    assert submit_profile(stack, session, user, "small").status_code == 302
    wait_for_lab(stack, session, user)
    xsrf = session.cookies.get("_xsrf", path=f"/user/{user}/") or ""
    folder = session.put(f"{stack.url}/user/{user}/api/contents/reports",
                         json={"type": "directory"}, headers={"X-XSRFToken": xsrf}, timeout=30)
    assert folder.status_code in (200, 201), folder.text
    put_notebook(stack, session, user, "reports/tick.ipynb", notebook(
        "import pathlib\n"
        "ticks = pathlib.Path.home() / 'ticks.txt'\n"
        "ticks.write_text((ticks.read_text() if ticks.exists() else '') + 'tick\\n')\n"
        "print('ticked', len(ticks.read_text().splitlines()))"))
    put_notebook(stack, session, user, "broken.ipynb", notebook("1 / 0"))
    assert "services/scheduler" in session.get(f"{stack.url}/hub/home", timeout=30).text
    response = api(session, "DELETE", f"{stack.url}/hub/api/users/{user}/server")
    assert response.status_code in (202, 204), response.text
    wait_for(lambda: not container_exists(container_of(user)), timeout=60,
             what="the server to stop")

    # Bad input: a clear 400 on the page, nothing scheduled.
    refused = schedule(stack, session, notebook="../../etc/passwd.ipynb", every_minutes="1")
    assert refused.status_code == 400 and "in your home" in refused.text
    for form in ({"notebook": "reports/tick.ipynb", "every_minutes": "1"},
                 {"notebook": "broken.ipynb", "every_minutes": "60"}):
        assert schedule(stack, session, **form).status_code == 302

    def two_ticks():
        runs = schedules_of(stack, session)["reports/tick.ipynb"]["runs"]
        assert not container_exists(container_of(user)), "the server was started"
        return [r for r in runs if r["status"] == "succeeded"][:2] if len(
            [r for r in runs if r["status"] == "succeeded"]) >= 2 else None

    succeeded = wait_for(two_ticks, timeout=240, interval=2, what="two scheduled runs")
    broken = schedules_of(stack, session)["broken.ipynb"]["runs"]
    assert broken[0]["status"] == "failed" and "ZeroDivisionError" in broken[0]["message"]
    page = scheduler_page(stack, session).text
    assert 'class="run failed"' in page and "ZeroDivisionError" in page

    # Somebody else sees none of it and cannot change it.
    _, other = person(stack, "gus")
    assert schedules_of(stack, other) == {}
    tick_id = schedules_of(stack, session)["reports/tick.ipynb"]["id"]
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', scheduler_page(stack, other).text)
    response = other.post(f"{stack.url}/services/scheduler/schedules/{tick_id}/delete",
                          data={"_xsrf": xsrf.group(1)}, allow_redirects=False, timeout=30)
    assert response.status_code == 404
    assert "reports/tick.ipynb" in schedules_of(stack, session)

    # The runs worked on the owner's files: back in their server, it is all there.
    assert submit_profile(stack, session, user, "small").status_code == 302
    wait_for_lab(stack, session, user)
    assert read_file(session, stack.url, user, "ticks.txt").count("tick") >= 2
    first = succeeded[0]
    executed = session.get(f"{stack.url}/user/{user}/api/contents/{first['output']}",
                           timeout=30).json()["content"]
    assert executed["cells"][0]["outputs"][0]["text"].startswith("ticked ")
    assert "finished" in read_file(session, stack.url, user, first["log"])



# --- published reports --------------------------------------------------------------------

REPORT_CELLS = (
    "import pandas as pd\n"
    "import plotly.express as px\n"
    "cities = pd.DataFrame({'city': [f'city-{n:02d}' for n in range(25)],\n"
    "                       'value': [n % 7 for n in range(25)]})\n"
    "cities",
    "px.bar(cities, x='city', y='value', title='by city')",
)


def reports_form(stack, session, path: str, **form: str) -> requests.Response:
    page = session.get(f"{stack.url}/services/reports/", timeout=30)
    assert page.status_code == 200 and "Publish" in page.text, page.text[-2000:]
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1)
    return session.post(f"{stack.url}/services/reports/{path}", data={"_xsrf": xsrf, **form},
                        allow_redirects=False, timeout=120)


def test_a_published_report_for_everyone_without_the_owners_server(stack, browser):  # noqa: F811
    owner, session = person(stack, "hal")
    assert submit_profile(stack, session, owner, "small").status_code == 302
    wait_for_lab(stack, session, owner)
    put_notebook(stack, session, owner, "sales.ipynb", notebook(*REPORT_CELLS))
    # The owner runs it in their server, as they would in JupyterLab, and saves it.
    run(["docker", "exec", "-w", "/home/jovyan", container_of(owner), "jupyter", "nbconvert",
         "--to", "notebook", "--execute", "--inplace", "sales.ipynb"], timeout=300)

    refused = reports_form(stack, session, "publish", notebook="missing.ipynb", name="x")
    assert refused.status_code == 400 and "no notebook missing.ipynb" in refused.text
    published = reports_form(stack, session, "publish", notebook="sales.ipynb", name="q4",
                             hide_code="1")
    assert published.status_code == 302, published.text[-2000:]
    response = api(session, "DELETE", f"{stack.url}/hub/api/users/{owner}/server")
    assert response.status_code in (202, 204)

    # Somebody else, in a real browser, with no access to the owner's server.
    page = browser.new_person()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    viewer = f"{stack.prefix}ivy"
    log_in(page, stack.url, viewer, stack.env_file()["JUPYTER_PASSWORD"])
    page.wait_for_url(lambda address: "/hub/login" not in address)
    url = f"{stack.url}/services/reports/view/{owner}/q4/"
    answer = page.goto(url)
    assert answer.status == 200
    assert "sandbox allow-scripts" in answer.headers["content-security-policy"]
    # The table is interactive (DataTables' search box filters it), the chart is plotly's.
    search = page.locator("input[type=search]").first
    search.wait_for(timeout=TIMEOUT_MS)
    table = page.locator("table.dataTable tbody tr")
    assert table.count() == 10  # DataTables' first page of 25 rows
    search.fill("city-07")
    wait_for(lambda: table.count() == 1, timeout=10, what="the table to filter")
    page.locator(".js-plotly-plot .main-svg").first.wait_for(timeout=TIMEOUT_MS)
    assert "px.bar" not in page.content()  # published without its code
    # Everything it needs comes from the hub (nothing from a CDN: it works offline).
    assert all(url.startswith((stack.url, "data:", "blob:")) for url in requested), requested
    # Its scripts run in an origin of their own: no cookie of the hub for them.
    cookie = page.evaluate("() => { try { return document.cookie } "
                           "catch (error) { return 'blocked: ' + error.name } }")
    assert cookie.startswith("blocked"), cookie
    listing = page.goto(f"{stack.url}/services/reports/")
    assert f"{owner}/q4" in page.content() and listing.status == 200

    # Unpublished: gone for everyone.
    assert reports_form(stack, session, "unpublish/q4").status_code == 302
    assert page.goto(url).status == 404
