"""The "batteries" single-user image, built from docker/singleuser.Dockerfile on the stand-in
data-science notebook base, proven inside the image itself:

- its pins are what is installed, `pip check` is clean, and the base's data stack is untouched;
- the single-user server starts offline (an `--internal` network) with no API key, with the
  collaboration, SQL and AI server extensions loaded (the AI's heavy ones on first use, see
  test_image_startup.py), and keeps collaboration state out of the home volume;
- a real notebook, executed headlessly in the image, runs SQL on DuckDB and on a PostgreSQL
  server over the network, renders the interactive table and the summary report, builds a
  plotly figure and imports the AI extension and API clients; every cell's output is checked.

Everything this module creates is named with one random prefix (`phimg<hex>`) and removed by
that prefix afterwards.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import nbformat
import pytest

from personal_hub.spawner import DATA_CONNECTIONS_VARIABLE
from tests.docker.conftest import (
    REPO,
    build_singleuser,
    container_logs,
    docker_json,
    prefixed,
    run,
)
from tests.helpers import wait_for

pytestmark = pytest.mark.docker

PREFIX = "phimg" + secrets.token_hex(3)
REQUIREMENTS = REPO / "docker/singleuser-requirements.txt"
# The base's data stack: the batteries must not replace it (the Dockerfile's constraints).
BASE_STACK = ("numpy", "pandas", "scipy", "scikit-learn", "matplotlib", "seaborn",
              "sqlalchemy", "ipywidgets", "statsmodels")
TOKEN = secrets.token_hex(16)
SERVER_TIMEOUT = 120


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned_versions() -> dict[str, str]:
    """{canonical name: version} of every `name[extras]==version` line of the requirements."""
    pins = {}
    for line in REQUIREMENTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]+\])?==([^\s;]+)", line)
        assert match, f"not an exact pin in {REQUIREMENTS.name}: {line!r}"
        pins[canonical(match.group(1))] = match.group(3)
    return pins


def installed_versions(image: str) -> dict[str, str]:
    listing = run(["docker", "run", "--rm", image, "pip", "list", "--format=json"]).stdout
    return {canonical(item["name"]): item["version"] for item in json.loads(listing)}


@pytest.fixture(scope="module")
def built(standins):
    """The image built from docker/singleuser.Dockerfile on the stand-in notebook base."""
    base = standins["SINGLEUSER_BASE_IMAGE"]
    tag = f"{PREFIX}-singleuser:test"
    with prefixed(PREFIX):
        started = time.monotonic()
        result = build_singleuser(base, tag)
        seconds = time.monotonic() - started
        sizes = {name: docker_json("image", "inspect", name)[0]["Size"] for name in (tag, base)}
        print(f"\nsingle-user image built in {seconds:.0f} s (seconds when Docker has the layers): "
              f"{sizes[tag] / 1e9:.2f} GB, base {sizes[base] / 1e9:.2f} GB, "
              f"batteries +{(sizes[tag] - sizes[base]) / 1e6:.0f} MB")
        yield {"tag": tag, "base": base, "build_log": result.stdout}


@pytest.fixture(scope="module")
def offline_network(built):
    """A network without a route to anywhere: no internet for the containers on it."""
    name = f"{PREFIX}-offline"
    run(["docker", "network", "create", "--internal", name])
    return name


# --- a. what is installed ------------------------------------------------------------


def test_pip_check_is_clean_and_jupyterhub_matches_the_hub(built):
    check = run(["docker", "run", "--rm", built["tag"], "pip", "check"], check=False)
    assert check.returncode == 0 and "No broken requirements found" in check.stdout, (
        check.stdout + check.stderr)
    version = run(["docker", "run", "--rm", built["tag"], "jupyterhub", "--version"]).stdout
    hub_pin = re.search(r"^jupyterhub==(\S+)$", (REPO / "docker/hub-constraints.txt").read_text(),
                        re.M)
    assert version.strip() == "6.1.1" == hub_pin.group(1)
    # The build itself runs `pip check` right after installing, so a broken set fails the
    # build (a cached build prints nothing, hence the image's history).
    history = run(["docker", "history", "--no-trunc", "--format", "{{.CreatedBy}}",
                   built["tag"]]).stdout
    assert re.search(r"pip install [^\n]*--requirement[^\n]*&& pip check", history), history


def test_every_pin_is_what_is_installed(built):
    pins = pinned_versions()
    assert {"jupyterhub", "jupyterlab", "jupyter-collaboration", "jupysql", "jupysql-plugin",
            "duckdb", "jupyter-ai", "itables", "skrub", "buckaroo", "plotly"} <= set(pins)
    installed = installed_versions(built["tag"])
    wrong = {name: (pin, installed.get(name)) for name, pin in pins.items()
             if installed.get(name) != pin}
    assert not wrong, f"pinned vs installed: {wrong}"
    assert not installed["duckdb"].startswith("2."), "jupysql needs duckdb < 2"
    assert "ydata-profiling" not in installed and "ypy-websocket" not in installed
    assert "pycrdt-websocket" in installed  # ypy-websocket's successor, via collaboration


def test_the_base_data_stack_is_kept_not_reinstalled(built):
    base = installed_versions(built["base"])
    image = installed_versions(built["tag"])
    for name in BASE_STACK:
        assert name in base, f"the stand-in base should ship {name}"
        assert image[name] == base[name], f"{name}: base {base[name]}, image {image[name]}"
    assert int(image["pandas"].split(".")[0]) >= 3


def test_image_contract_start_command_user_and_no_leftovers(built):
    image = docker_json("image", "inspect", built["tag"])[0]["Config"]
    base = docker_json("image", "inspect", built["base"])[0]["Config"]
    assert image["User"] in ("1000", "jovyan")
    assert image["Cmd"] == base["Cmd"] and image["Entrypoint"] == base["Entrypoint"]
    assert image["WorkingDir"] == base["WorkingDir"] == "/home/jovyan"
    env = dict(item.split("=", 1) for item in image["Env"])
    assert env["LITELLM_LOCAL_MODEL_COST_MAP"] == "True"
    assert not any(key.endswith("_API_KEY") for key in env), "no API key baked into the image"
    # The home directory (copied into every new user volume) is exactly the base's;
    # no pip cache anywhere; bytecode is kept (no compile step at every container start).
    script = (
        "find /home/jovyan | sort; echo ---; "
        "ls -d /root/.cache/pip /home/jovyan/.cache/pip /tmp/base-stack.txt 2>/dev/null; echo ---; "
        "ls /opt/conda/lib/python3*/site-packages/jupyter_server_ydoc/__pycache__ "
        "/opt/conda/lib/python3*/site-packages/litellm/__pycache__ | grep -c '[.]pyc$'"
    )
    home, leftovers, pycs = run(["docker", "run", "--rm", "--user", "root", built["tag"], "sh",
                                 "-c", script]).stdout.split("---\n")
    base_home = run(["docker", "run", "--rm", built["base"], "sh", "-c",
                     "find /home/jovyan | sort"]).stdout
    assert home.strip() == base_home.strip()
    assert leftovers.strip() == ""
    assert int(pycs) > 10


# --- b. the server, offline and keyless --------------------------------------------------


@pytest.fixture(scope="module")
def server(built, offline_network):
    """The image's start command (start-notebook.py -> jupyter lab), offline, no API key."""
    name = f"{PREFIX}-server"
    started = time.monotonic()
    run(["docker", "run", "-d", "--name", name, "--network", offline_network, built["tag"],
         "start-notebook.py", f"--IdentityProvider.token={TOKEN}"])

    def status_ok():
        state = docker_json("inspect", name)[0]["State"]
        assert state["Running"], f"the server exited:\n{container_logs(name, tail='all')[-4000:]}"
        probe = run(["docker", "exec", name, "python", "-c",
                     "import urllib.request; urllib.request.urlopen("
                     f"'http://127.0.0.1:8888/api/status?token={TOKEN}', timeout=5)"],
                    check=False, timeout=30)
        return probe.returncode == 0

    wait_for(status_ok, timeout=SERVER_TIMEOUT, what="the single-user server's /api/status",
             interval=0.5)
    print(f"\nsingle-user server (batteries) answered /api/status "
          f"{time.monotonic() - started:.1f} s after `docker run`")
    return name


def server_get(server: str, path: str) -> str:
    """GET a path of the server from inside its container (the network has no way in)."""
    code = (
        "import sys, urllib.request\n"
        "with urllib.request.urlopen('http://127.0.0.1:8888' + sys.argv[1], timeout=30) as r:\n"
        "    sys.stdout.write(r.read().decode())\n"
    )
    return run(["docker", "exec", server, "python", "-c", code, path]).stdout


def test_server_starts_offline_with_the_batteries_loaded(server, offline_network):
    info = docker_json("inspect", server)[0]
    assert list(info["NetworkSettings"]["Networks"]) == [offline_network]
    assert docker_json("network", "inspect", offline_network)[0]["Internal"] is True
    env = dict(item.split("=", 1) for item in info["Config"]["Env"])
    assert not any(key.endswith("_API_KEY") for key in env)
    # jupyter-ai's heavy extensions load on first use (personal_hub_deferred; see
    # test_image_startup.py): use the assistant's API once, then check everything.
    config = json.loads(server_get(server, f"/api/jupyternaut/config?token={TOKEN}"))
    assert "model_provider_id" in config
    # Give late starters (the MCP server runs in a background task) a moment to report.
    wait_for(lambda: "MCP server started" in container_logs(server, tail="all"), timeout=30,
             what="jupyter-ai's MCP server to start")
    logs = container_logs(server, tail="all")
    for extension in (
        "jupyter_server_ydoc",          # jupyter-collaboration's server side
        "jupyter_server_fileid",
        "jupysql_plugin",
        "jupyter_ai_jupyternaut",       # jupyter-ai 3: Jupyternaut ...
        "jupyter_ai_litellm",           # ... through LiteLLM
        "jupyter_ai_router",
        "jupyter_ai_persona_manager",
        "jupyterlab_chat",
        "jupyter_server_mcp",
        "jupyterlab",
        "jupyterlab_git",               # git in JupyterLab
        "jupyter_resource_usage",       # memory and CPU against the container's limits
    ):
        assert f"{extension} | extension was successfully loaded" in logs, extension
    assert "Traceback" not in logs
    assert "extension failed" not in logs
    assert not re.search(r"^\[E ", logs, re.M), "the server logged an error"
    assert "Configured database path: /tmp/" in logs  # the file-ID database, not in $HOME
    assert "Extension Manager is 'readonly'" in logs  # its PyPI listing hangs offline

    listing = run(["docker", "exec", server, "jupyter", "server", "extension", "list"])
    text = re.sub(r"\x1b\[[0-9;]*m", "", listing.stdout + listing.stderr)
    for extension, state in (("jupyter_server_ydoc", "enabled"), ("jupysql_plugin", "enabled"),
                             ("personal_hub_deferred", "enabled"),
                             # off at start, loaded on first use by personal_hub_deferred
                             ("jupyter_ai_jupyternaut", "disabled"),
                             ("jupyter_ai_litellm", "disabled")):
        assert re.search(rf"^\s+{extension} {state}$", text, re.M), text
        if state == "enabled":
            assert re.search(rf"^\s+{extension} \S* ?OK$", text, re.M), text


def test_lab_offers_the_collaboration_sql_and_ai_frontends(server):
    extensions = json.loads(server_get(server, f"/lab/api/extensions?token={TOKEN}"))
    found = {item["name"]: item for item in extensions}
    for name in ("@jupyter/collaboration-extension", "@jupyter/docprovider-extension",
                 "jupysql-plugin", "@jupyter-ai/jupyternaut", "jupyterlab-chat-extension",
                 "jupyterlab-plotly", "anywidget", "@jupyterlab/git",
                 "@jupyter-server/resource-usage"):
        assert name in found and found[name]["enabled"] and found[name]["installed"], name
    # (Its status is not checked: jupysql-plugin 0.4.5, the newest, declares react ^17 where
    # Lab 4.6 shares react 18, so Lab's list flags it; Lab still serves it, see below.)
    page = server_get(server, f"/lab?token={TOKEN}")
    config = json.loads(re.search(
        r'<script id="jupyter-config-data" type="application/json">(.*?)</script>', page, re.S
    ).group(1))
    served = {item["name"] for item in config["federated_extensions"]}
    assert {"@jupyter/collaboration-extension", "jupysql-plugin",
            "@jupyter-ai/jupyternaut"} <= served
    # No requests to the internet from the lab: news feed and update checks are off.
    settings = json.loads(server_get(
        server, f"/lab/api/settings/@jupyterlab/apputils-extension:notification?token={TOKEN}"))
    defaults = {key: value.get("default") for key, value in
                settings["schema"]["properties"].items()}
    assert defaults["fetchNews"] == "false" and defaults["checkForUpdates"] is False


# Inside a container: git through jupyterlab-git's API (as its JupyterLab panel calls it),
# and the resource-usage metrics, both with the server's token.
GIT_AND_USAGE = r"""
import json, os, sys, urllib.request
token = sys.argv[1]

def call(method, path, body=None):
    request = urllib.request.Request(
        f"http://127.0.0.1:8888{path}?token={token}", method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read() or b"{}")

os.makedirs("/home/jovyan/project", exist_ok=True)
with open("/home/jovyan/project/analysis.py", "w") as file:
    file.write("print(42)\n")
init = call("POST", "/git/project/init", {})
status = call("POST", "/git/project/status", {})
print(json.dumps({"status": status, "metrics": call("GET", "/api/metrics/v1")}))
"""


def test_git_and_the_containers_limits_in_the_lab(built, offline_network):
    """The git panel's server side works on a folder of the home, and the status bar's
    memory figure is measured against the container's limit as the hub sets it (MEM_LIMIT
    and CPU_LIMIT, from HUB_MEM_LIMIT / HUB_CPU_LIMIT or the profile), not the host's."""
    name = f"{PREFIX}-tools"
    limit = 1536 * 1024**2
    run(["docker", "run", "-d", "--name", name, "--network", offline_network,
         "--memory", str(limit), "--cpus", "1.5", "-e", f"MEM_LIMIT={limit}",
         # as the hub sets them
         "-e", "CPU_LIMIT=1.5", "-e", "EMAIL=ann@personal-hub.invalid", "-e", "JUPYTERHUB_USER=ann",
         built["tag"], "start-notebook.py",
         f"--IdentityProvider.token={TOKEN}"])
    try:
        wait_for(lambda: "Jupyter Server" in container_logs(name, tail="all")
                 and "is running at" in container_logs(name, tail="all"),
                 timeout=SERVER_TIMEOUT, interval=0.5, what="the server to start")
        result = json.loads(run(["docker", "exec", name, "python", "-c", GIT_AND_USAGE,
                                 TOKEN]).stdout.strip().splitlines()[-1])
        status = result["status"]
        assert status["code"] == 0, status
        # The first commit (jupyterlab-git's init makes one) has the hub user's identity.
        author = run(["docker", "exec", "-w", "/home/jovyan/project", name, "git", "log",
                      "--format=%an <%ae>"]).stdout.strip()
        assert author == "ann <ann@personal-hub.invalid>"
        assert [(f["to"], f["x"], f["y"]) for f in status["files"]] == [("analysis.py", "?", "?")]
        metrics = result["metrics"]
        assert metrics["limits"]["memory"]["rss"] == limit
        assert 0 < metrics["rss"] < limit
        assert metrics["limits"]["cpu"]["cpu"] == 1.5 and "cpu_percent" in metrics
    finally:
        run(["docker", "rm", "-f", name], check=False)


def test_itables_bundle_is_served_by_the_server_itself(server):
    bundle = server_get(server, "/static/personal-hub/itables/2.9.1/dt_bundle.js")
    assert len(bundle) > 100_000 and "DataTable" in bundle


COLLABORATE = r"""
import asyncio, json, os, sys, time, urllib.request
from pycrdt import Doc, YMessageType, create_sync_message, handle_sync_message
from jupyter_ydoc import YNotebook
from tornado.websocket import websocket_connect

token, base = sys.argv[1], "127.0.0.1:8888"

def call(method, path, body):
    request = urllib.request.Request(
        f"http://{base}{path}?token={token}", method=method, data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)

notebook = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
    {"cell_type": "code", "id": "c1", "metadata": {}, "outputs": [], "execution_count": None,
     "source": "shared = 'edited together'"}]}
call("PUT", "/api/contents/shared.ipynb", {"type": "notebook", "content": notebook})
room = call("PUT", "/api/collaboration/session/shared.ipynb",
            {"format": "json", "type": "notebook"})

async def sync():
    url = (f"ws://{base}/api/collaboration/room/json:notebook:{room['fileId']}"
           f"?sessionId={room['sessionId']}&token={token}")
    websocket = await websocket_connect(url)
    doc = Doc()
    await websocket.write_message(create_sync_message(doc), binary=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        message = await asyncio.wait_for(websocket.read_message(), 30)
        if message and message[0] == YMessageType.SYNC:
            reply = handle_sync_message(message[1:], doc)
            if reply is not None:
                await websocket.write_message(reply, binary=True)
        cells = YNotebook(doc).get()["cells"]
        if cells:
            break
    websocket.close()
    return cells

cells = asyncio.run(sync())
time.sleep(1)
print(json.dumps({
    "sources": [cell["source"] for cell in cells],
    "ystore_in_tmp": os.path.exists("/tmp/jupyter_ystore.db"),
    "state_in_home": sorted(
        os.path.join(root, name) for root, _, names in os.walk("/home/jovyan") for name in names
        if "ystore" in name or "file_id" in name),
}))
"""


def test_collaboration_state_stays_out_of_the_home_volume(server):
    """A real collaboration session (Y sync over the room's websocket, with pycrdt)."""
    result = run(["docker", "exec", server, "python", "-c", COLLABORATE, TOKEN], timeout=90)
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["sources"] == ["shared = 'edited together'"]
    assert outcome["ystore_in_tmp"] is True
    assert outcome["state_in_home"] == []
    assert "Traceback" not in container_logs(server, tail="all")


# --- c. a real notebook, executed headlessly in the image -----------------------------


@pytest.fixture(scope="module")
def database(built, standins, offline_network):
    """The stand-in PostgreSQL on the offline network, with rows only this test knows."""
    name = f"{PREFIX}-db"
    password = secrets.token_hex(12)
    marker = f"row-{secrets.token_hex(4)}"
    run(["docker", "run", "-d", "--name", name, "--network", offline_network,
         "-e", "POSTGRES_USER=analyst", "-e", f"POSTGRES_PASSWORD={password}",
         "-e", "POSTGRES_DB=shop", standins["POSTGRES_IMAGE"]])
    wait_for(lambda: run(["docker", "exec", name, "pg_isready", "-h", "127.0.0.1", "-U",
                          "analyst", "-d", "shop"], check=False).returncode == 0,
             timeout=90, what="PostgreSQL to accept TCP connections")
    # A read-only account for the team connection, with a password that must be
    # percent-encoded in a URL.
    sql = ("CREATE TABLE items (id serial PRIMARY KEY, label text, amount int); "
           f"INSERT INTO items (label, amount) VALUES ('{marker}', 7), ('other', 35); "
           f"CREATE ROLE team LOGIN PASSWORD '{TEAM_PASSWORD}'; "
           "GRANT SELECT ON items TO team;")
    run(["docker", "exec", "-e", f"PGPASSWORD={password}", name, "psql", "-h", "127.0.0.1",
         "-U", "analyst", "-d", "shop", "-v", "ON_ERROR_STOP=1", "-c", sql])
    return {"host": name, "password": password, "marker": marker}


TEAM_PASSWORD = "te%am@pw:1/x"


def team_connections(db: dict) -> str:
    """HUB_DATA_CONNECTIONS as the hub passes it into a server (PersonalSpawner)."""
    url = f"postgresql+psycopg2://team:{quote(TEAM_PASSWORD, safe='')}@{db['host']}:5432/shop"
    return json.dumps({"shop": url})


def notebook_cells(db: dict) -> list[str]:
    pg = f"analyst:{db['password']}@{db['host']}:5432/shop"
    return [
        # 0: jupysql on DuckDB
        "%load_ext sql\n"
        "%config SqlMagic.autopandas = True\n"
        "%config SqlMagic.displaycon = False\n"
        "%sql duckdb://",
        # 1: a %%sql cell into a DataFrame
        "%%sql squares <<\n"
        "SELECT range AS n, range * range AS square FROM range(5)",
        # 2
        "print(type(squares).__name__, squares['square'].tolist())",
        # 3: DuckDB queries the pandas DataFrame itself, through a native DuckDB connection
        #    (duckdb-engine's SQLAlchemy connection does not see Python variables)
        "import duckdb\n"
        "native = duckdb.connect()\n"
        "%sql native --alias native\n"
        "total = %sql SELECT sum(square) AS total FROM squares\n"
        "print('total', int(total['total'][0]))",
        # 4: PostgreSQL over the network: postgresql:// (psycopg 3, SQLAlchemy 2.1's default)
        f"%sql postgresql://{pg} --alias pg\n"
        "rows = %sql SELECT label, amount FROM items ORDER BY id\n"
        "print(rows.to_dict('records'))",
        # 5: ... and postgresql+psycopg2:// through SQLAlchemy directly; MySQL driver present
        "import sqlalchemy, pymysql\n"
        f"engine = sqlalchemy.create_engine('postgresql+psycopg2://{pg}')\n"
        "with engine.connect() as connection:\n"
        "    print('psycopg2 sum', connection.execute(\n"
        "        sqlalchemy.text('SELECT sum(amount) FROM items')).scalar())\n"
        "from importlib.metadata import version\n"
        "print('pymysql', version('PyMySQL'))",
        # 6: interactive table, on by default (no itables import here)
        "import pandas as pd\n"
        "cities = pd.DataFrame({'city': ['Oslo', 'Lima', 'Pune'], 'value': [3, 1, 2]})\n"
        "cities",
        # 7: the one-call summary report
        "from skrub import TableReport\n"
        "TableReport(cities)",
        # 8: plotly
        "import plotly.express as px\n"
        "px.bar(cities, x='city', y='value', title='by city')",
        # 9: the AI extension and API clients, offline and without keys
        "import os\n"
        "from importlib.metadata import version\n"
        "import jupyter_ai, jupyter_ai_jupyternaut, litellm, openai, anthropic\n"
        "import langchain_openai, langchain_anthropic\n"
        "for name in ['jupyter-ai', 'litellm', 'openai', 'anthropic', 'langchain-openai',\n"
        "             'langchain-anthropic']:\n"
        "    print(name, version(name))\n"
        "print('clients', type(openai.OpenAI(api_key='sk-none')).__name__,\n"
        "      type(anthropic.Anthropic(api_key='none')).__name__,\n"
        "      type(langchain_openai.ChatOpenAI(model='gpt-4o-mini',\n"
        "                                       api_key='sk-none')).__name__,\n"
        "      type(langchain_anthropic.ChatAnthropic(model='claude-sonnet-4-5',\n"
        "                                             api_key='none')).__name__)\n"
        "print('cost map entries', len(litellm.model_cost) > 100)\n"
        "print('keys', sorted(k for k in os.environ if k.endswith('_API_KEY')))",
        # 10: buckaroo's widget explorer
        "from buckaroo import BuckarooWidget\n"
        "BuckarooWidget(cities)",
        # 11: the image's kernel start-up code left nothing in the user's namespace
        "print('leaked', sorted(k for k in globals() if k in {'main', 'enable_itables',\n"
        "      'served_bundle_url', 'TYPES', 'STATIC_ROOT', 'STARTUP', 'team_data',\n"
        "      '_connections'}))",
        # 12: a team connection by its name only, in SQL cells (no credentials typed)
        "%sql --section shop\n"
        "shop = %sql SELECT label, amount FROM items ORDER BY id\n"
        "print(shop['amount'].tolist())",
        # 13: ... and from Python
        "import team_data\n"
        "print(team_data.names(), pd.read_sql('SELECT sum(amount) AS s FROM items',\n"
        "      team_data.engine('shop'))['s'][0])",
    ]


def texts(cell) -> str:
    """All stdout and text/plain output of a cell."""
    parts = []
    for output in cell.outputs:
        if output.output_type == "stream" and output.name == "stdout":
            parts.append(output.text)
        elif output.output_type in ("execute_result", "display_data"):
            parts.append(output.data.get("text/plain", ""))
    return "".join(parts)


def data_of(cell, mime: str):
    found = [output.data[mime] for output in cell.outputs
             if output.output_type in ("execute_result", "display_data") and mime in output.data]
    assert found, f"no {mime} output; outputs: {[dict(o) for o in cell.outputs]}"[:3000]
    return found[0]


@pytest.fixture(scope="module")
def executed(built, database, offline_network):
    """The notebook, run with nbconvert in a container of the image, read back with nbformat."""
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in notebook_cells(database)]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}
    workdir = Path(tempfile.mkdtemp(prefix=f"{PREFIX}-"))
    try:
        nbformat.write(notebook, workdir / "batteries.ipynb")
        name = f"{PREFIX}-notebook"
        run(["docker", "create", "--name", name, "--network", offline_network,
             # as under JupyterHub: the kernel builds the itables bundle URL from it
             "-e", "JUPYTERHUB_SERVICE_PREFIX=/user/alice/",
             "-e", f"{DATA_CONNECTIONS_VARIABLE}={team_connections(database)}",
             built["tag"], "jupyter", "nbconvert", "--to", "notebook", "--execute",
             "--allow-errors", "--ExecutePreprocessor.timeout=180",
             "--output-dir", "/tmp/out", "/tmp/batteries.ipynb"])
        run(["docker", "cp", str(workdir / "batteries.ipynb"), f"{name}:/tmp/batteries.ipynb"])
        started = time.monotonic()
        result = run(["docker", "start", "-a", name], timeout=600, check=False)
        print(f"\nnotebook executed in the image in {time.monotonic() - started:.1f} s")
        assert result.returncode == 0, result.stdout + result.stderr
        run(["docker", "cp", f"{name}:/tmp/out/batteries.ipynb", str(workdir / "out.ipynb")])
        executed = nbformat.read(workdir / "out.ipynb", as_version=4)
        if os.environ.get("PHIMG_KEEP_NOTEBOOK"):
            shutil.copy(workdir / "out.ipynb", os.environ["PHIMG_KEEP_NOTEBOOK"])
        for index, cell in enumerate(executed.cells):
            errors = [o for o in cell.outputs if o.output_type == "error"]
            assert not errors, (f"cell {index} failed:\n{cell.source}\n"
                                + "\n".join(errors[0].traceback))
        return executed.cells
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def test_sql_cells_on_duckdb_into_dataframes(executed):
    assert texts(executed[0]) == "Connecting to 'duckdb://'"
    assert executed[1].outputs == []  # `squares <<` stores the result instead of showing it
    assert texts(executed[2]) == "DataFrame [0, 1, 4, 9, 16]\n"
    assert texts(executed[3]) == "total 30\n"


def test_sql_on_postgresql_over_the_network(executed, database):
    assert texts(executed[4]) == (
        "Connecting and switching to connection 'pg'"
        "2 rows affected."
        f"[{{'label': '{database['marker']}', 'amount': 7}}, {{'label': 'other', 'amount': 35}}]\n"
    )
    assert texts(executed[5]) == f"psycopg2 sum 42\npymysql {pinned_versions()['pymysql']}\n"


def test_team_connections_by_name_only(executed):
    assert texts(executed[12]) == (
        "Connecting and switching to connection 'shop'2 rows affected.[7, 35]\n")
    assert texts(executed[13]) == "['shop'] 42\n"


def test_dataframes_render_as_interactive_tables_by_default(executed):
    html = data_of(executed[6], "text/html")
    assert re.search(r'<table id="itables_[0-9a-f_]+"', html)
    assert "new ITable(" in html
    # The bundle comes from the user's own server, not from a CDN.
    assert "from '/user/alice/static/personal-hub/itables/2.9.1/dt_bundle.js'" in html
    assert "unpkg.com" not in html
    assert all(city in html for city in ("Oslo", "Lima", "Pune"))
    assert texts(executed[6]) == (
        "   city  value\n0  Oslo      3\n1  Lima      1\n2  Pune      2")


def test_summary_report_renders(executed):
    html = data_of(executed[7], "text/html")
    assert re.search(r'<div id="report_[0-9a-f]+-wrapper"', html)
    assert "skrub" in html.lower()
    assert all(word in html for word in ("city", "value", "Oslo", "Pune"))
    assert texts(executed[7]) == "<TableReport: use .open() or .markdown() to display>"


def test_plotly_figure(executed):
    figure = data_of(executed[8], "application/vnd.plotly.v1+json")
    trace = figure["data"][0]
    assert trace["type"] == "bar"
    assert list(trace["x"]) == ["Oslo", "Lima", "Pune"]
    assert figure["layout"]["title"]["text"] == "by city"


def test_ai_extension_and_api_clients_import_offline_without_keys(executed):
    pins = pinned_versions()
    lines = texts(executed[9]).splitlines()
    for name in ("jupyter-ai", "litellm", "openai", "anthropic", "langchain-openai",
                 "langchain-anthropic"):
        assert f"{name} {pins[name]}" in lines, lines
    assert "clients OpenAI Anthropic ChatOpenAI ChatAnthropic" in lines
    assert "cost map entries True" in lines
    assert "keys []" in lines


def test_buckaroo_widget_and_clean_namespace(executed):
    view = data_of(executed[10], "application/vnd.jupyter.widget-view+json")
    assert re.fullmatch(r"[0-9a-f]{32}", view["model_id"])
    # Importing buckaroo makes it the default DataFrame viewer (its own behaviour).
    assert texts(executed[10]).startswith(
        "Buckaroo has been enabled as the default DataFrame viewer.")
    assert texts(executed[11]).strip() == "leaked []"


BROKEN_ITABLES = r"""
import json, os
os.makedirs("/tmp/broken/itables")
with open("/tmp/broken/itables/__init__.py", "w") as file:
    file.write("raise ImportError('broken on purpose')\n")
import nbformat
from nbclient import NotebookClient
notebook = nbformat.v4.new_notebook(cells=[
    nbformat.v4.new_code_cell("import pandas as pd\npd.DataFrame({'a': [1, 2]})"),
    nbformat.v4.new_code_cell("print('still', 1 + 1)"),
])
NotebookClient(notebook, kernel_name="python3", timeout=120).execute()
print(json.dumps([cell.outputs for cell in notebook.cells]))
"""


def test_a_broken_preview_never_breaks_the_kernel(built, offline_network):
    """With itables unimportable, DataFrames fall back to pandas' own HTML, with a warning."""
    result = run(["docker", "run", "--rm", "--name", f"{PREFIX}-broken", "--network",
                  offline_network, "-e", "PYTHONPATH=/tmp/broken", built["tag"],
                  "python", "-c", BROKEN_ITABLES], timeout=300)
    first, second = json.loads(result.stdout.strip().splitlines()[-1])
    html = [o["data"]["text/html"] for o in first if o["output_type"] == "execute_result"][0]
    assert 'class="dataframe"' in html and "itables" not in html
    warnings = "".join(o.get("text", "") for o in first if o["output_type"] == "stream")
    assert "personal-hub: interactive tables are off" in warnings
    assert "broken on purpose" in warnings
    assert second == [{"name": "stdout", "output_type": "stream", "text": "still 2\n"}]
