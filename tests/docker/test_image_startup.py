"""The batteries single-user image starts lean and loads the AI assistant on first use.

jupyter-ai's heavy server extensions (LiteLLM, Jupyternaut, the ACP client, the MCP server)
are off at start; the image's `personal_hub_deferred` server extension loads them into the
running server the first time something needs them. Proven here on the image built from
docker/singleuser.Dockerfile (stand-in base), offline and without an API key, by function,
not by timing:

- the server answers with everything else loaded and the heavy extensions not loaded;
- a request without a login never loads them;
- the first request to one of their endpoints is held, then answered by the real handler,
  and afterwards every one of them is loaded and answers (chat models, Jupyternaut's
  configuration, the ACP permissions route, the MCP server), collaboration too;
- opening a chat document loads them first (the personas need Jupyternaut's
  configuration), and with the model the hub passes Jupyternaut answers in it (a stub
  OpenAI-compatible model server on the offline network; with a provider's key or a
  model server of one's own), and a wrong key is a clear error message in the chat;
- opening JupyterLab does not load them (its page-load health check is answered);
- Jupyternaut's contents settings (hidden files) hold from the start, not only after.

The start-up time itself is a benchmark (bench/extensions.py), not a test. Everything this
module creates is named `phstu<hex>…` and removed by that prefix afterwards.
"""

from __future__ import annotations

import json
import re
import secrets

import pytest

from personal_hub.spawner import AI_BASE_URL_VARIABLE, AI_MODEL_VARIABLE
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

PREFIX = "phstu" + secrets.token_hex(3)
TOKEN = secrets.token_hex(16)
DEFERRED = json.loads((REPO / "docker/singleuser/jupyter_server_config.json").read_text())[
    "PersonalHubDeferred"]["extensions"]
# Loaded at start: the batteries' other server extensions and ours.
AT_START = ("jupyterlab", "jupyter_server_ydoc", "jupyter_server_fileid", "jupysql_plugin",
            "jupyterlab_chat", "jupyter_ai_router", "jupyter_ai_persona_manager",
            "personal_hub_guard", "personal_hub_deferred")


@pytest.fixture(scope="module")
def image(standins):
    """The image from docker/singleuser.Dockerfile on the stand-in base (Docker's layer cache
    makes this quick after test_image.py), and an offline network."""
    tag = f"{PREFIX}-singleuser:test"
    with prefixed(PREFIX):
        build_singleuser(standins["SINGLEUSER_BASE_IMAGE"], tag)
        run(["docker", "network", "create", "--internal", f"{PREFIX}-offline"])
        yield tag


# Runs inside the container: one HTTP request, redirects followed by hand (urllib refuses
# to repeat a PUT or POST on a 307), then "<status>\n<body>".
REQUEST = r"""
import sys, urllib.error, urllib.parse, urllib.request
method, url, body, timeout, follow = sys.argv[1:6]

class Manual(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None

opener = urllib.request.build_opener(Manual)
for _ in range(5):
    request = urllib.request.Request(url, method=method, data=body.encode() or None,
                                     headers={"Content-Type": "application/json"})
    try:
        with opener.open(request, timeout=float(timeout)) as response:
            print(response.status)
            print(response.read().decode())
            break
    except urllib.error.HTTPError as error:
        if follow and error.code in (301, 302, 303, 307, 308):
            url = urllib.parse.urljoin(url, error.headers["Location"])
            if error.code in (301, 302, 303):
                method, body = "GET", ""
            continue
        print(error.code)
        print(error.read().decode())
        break
"""


class Server:
    """A container of the image running its start command, offline, without an API key."""

    def __init__(self, image: str, name: str, env: dict[str, str] | None = None,
                 args: tuple[str, ...] = ()):
        self.name = f"{PREFIX}-{name}"
        environment = [arg for key, value in (env or {}).items()
                       for arg in ("-e", f"{key}={value}")]
        run(["docker", "run", "-d", "--name", self.name, "--network", f"{PREFIX}-offline",
             *environment, image, "start-notebook.py", f"--IdentityProvider.token={TOKEN}",
             *args])
        wait_for(lambda: self.request("GET", "/api/status")[0] == 200, timeout=120,
                 interval=0.5, what="the single-user server's /api/status")

    def request(self, method: str, path: str, body: dict | None = None, *,
                token: bool = True, follow: bool = True, timeout: float = 120
                ) -> tuple[int, str]:
        """(status, body) of a request made inside the container (the network has no way
        in). With `follow`, redirects are followed as a browser does, 307 with the same
        method and body."""
        url = f"http://127.0.0.1:8888{path}"
        if token:
            url += ("&" if "?" in url else "?") + f"token={TOKEN}"
        result = run(["docker", "exec", self.name, "python", "-c", REQUEST, method, url,
                      json.dumps(body) if body is not None else "", str(timeout),
                      "1" if follow else ""],
                     timeout=timeout + 30, check=False)
        if result.returncode != 0 or not result.stdout.strip():
            return 0, result.stderr
        status, _, text = result.stdout.partition("\n")
        return int(status), text

    def logs(self) -> str:
        return container_logs(self.name, tail="all")

    def loaded(self, extension: str) -> bool:
        return f"{extension} | extension was successfully loaded" in self.logs()

    def stop(self) -> None:
        run(["docker", "rm", "-f", self.name], check=False)


@pytest.fixture
def server(image, request):
    started = Server(image, request.node.name.replace("test_", "")[:30].replace("_", "-"))
    yield started
    started.stop()


def assert_clean(logs: str) -> None:
    assert "Traceback" not in logs
    assert "extension failed" not in logs
    assert not re.search(r"^\[E ", logs, re.M), "the server logged an error"


def test_the_server_answers_without_the_heavy_extensions(server):
    logs = server.logs()
    for extension in AT_START:
        assert server.loaded(extension), extension
    for extension in DEFERRED:
        assert not server.loaded(extension), f"{extension} was loaded at start"
    assert "MCP server started" not in logs
    assert_clean(logs)
    # `jupyter server extension list` shows them off at start (the build turned them off).
    listing = run(["docker", "exec", server.name, "jupyter", "server", "extension", "list"])
    text = re.sub(r"\x1b\[[0-9;]*m", "", listing.stdout + listing.stderr)
    for extension in DEFERRED:
        assert re.search(rf"^\s+{extension} disabled$", text, re.M), text
    assert re.search(r"^\s+personal_hub_deferred enabled$", text, re.M), text
    # The health check JupyterLab's Jupyternaut plugin makes at every page load is answered
    # as Jupyternaut would, without loading it (answer_while_pending).
    status, body = server.request("GET", "/api/jupyternaut/get-example")
    assert status == 200 and "get-example endpoint" in json.loads(body)["data"], body
    # The rest of the batteries work meanwhile: a collaboration session opens.
    run(["docker", "exec", server.name, "sh", "-c", "echo 'x = 1' > /home/jovyan/a.py"])
    status, body = server.request("PUT", "/api/collaboration/session/a.py",
                                  {"format": "text", "type": "file"})
    assert status in (200, 201), body
    assert json.loads(body)["fileId"]
    assert not any(server.loaded(extension) for extension in DEFERRED)


def test_a_request_without_login_loads_nothing(server):
    # What the server answers an unknown page without a login (404, or the login redirect
    # or 403 when the server refuses unauthenticated access): never the held 307.
    for method, body in (("GET", None), ("POST", {})):
        status, _ = server.request(method, "/api/jupyternaut/config", body, token=False,
                                   follow=False)
        assert status in (302, 403, 404), (method, status)
    assert "personal_hub_deferred | loading" not in server.logs()
    assert not any(server.loaded(extension) for extension in DEFERRED)


def test_first_use_loads_every_deferred_extension(server):
    # The first request is held while they load, then answered by Jupyternaut's handler.
    status, body = server.request("GET", "/api/jupyternaut/config")
    assert status == 200, body
    assert "model_provider_id" in json.loads(body)
    logs = server.logs()
    assert "personal_hub_deferred | loading" in logs
    assert "first use: GET /api/jupyternaut/config" in logs
    for extension in DEFERRED:
        assert server.loaded(extension), extension
    wait_for(lambda: "MCP server started" in server.logs(), timeout=30,
             what="jupyter-ai's MCP server to start")
    # Every one answers now, directly (no longer held).
    status, body = server.request("GET", "/api/ai/models/chat/")  # jupyter_ai_litellm
    assert status == 200 and "chat_models" in json.loads(body), body
    status, body = server.request("GET", "/jupyter-ai-litellm/get-example")
    assert status == 200, body
    status, _ = server.request("GET", "/ai/acp/permissions")  # jupyter_ai_acp_client
    assert status not in (0, 404), status  # the route exists (its method is POST)
    mcp = run(["docker", "exec", server.name, "python", "-c",
               "import urllib.request, urllib.error\n"
               "try:\n"
               "    urllib.request.urlopen('http://127.0.0.1:3001/mcp', timeout=10)\n"
               "except urllib.error.HTTPError as error:\n"
               "    print(error.code)\n"])
    assert mcp.stdout.strip().isdigit(), mcp.stdout + mcp.stderr  # the MCP server answers
    status, body = server.request("GET", "/api/jupyternaut/get-example")  # its own handler
    assert status == 200 and "get-example endpoint" in json.loads(body)["data"], body
    # Nothing unknown is held any more: a 404 is a 404 at once.
    status, _ = server.request("GET", "/api/no-such-endpoint", timeout=10)
    assert status == 404
    assert logs.count("personal_hub_deferred | loading") == 1
    assert_clean(server.logs())


OPEN_CHAT = r"""
import asyncio, json, os, sys, time, urllib.error, urllib.parse, urllib.request
from tornado.websocket import websocket_connect
from pycrdt import Doc, YMessageType, create_sync_message, handle_sync_message

token, base = sys.argv[1], "127.0.0.1:8888"

def call(method, path, body):
    url = f"http://{base}{path}?token={token}"
    for _ in range(3):  # a chat's session is held while the assistant loads, then 307
        request = urllib.request.Request(url, method=method, data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return json.load(response)
        except urllib.error.HTTPError as error:
            if error.code != 307:
                raise
            url = urllib.parse.urljoin(url, error.headers["Location"])

call("PUT", "/api/contents/talk.chat", {"type": "file", "format": "text", "content": "{}"})
room = call("PUT", "/api/collaboration/session/talk.chat", {"format": "text", "type": "chat"})

# Join the chat's room and stay (answering sync messages) until the test is done: the
# personas write into the room as they join, and a client that vanished would make the
# server log a closed-websocket traceback.
async def join():
    url = (f"ws://{base}/api/collaboration/room/text:chat:{room['fileId']}"
           f"?sessionId={room['sessionId']}&token={token}")
    websocket = await websocket_connect(url)
    doc = Doc()
    await websocket.write_message(create_sync_message(doc), binary=True)
    open("/tmp/chat-joined", "w").close()
    deadline = time.monotonic() + 180
    while not os.path.exists("/tmp/chat-done") and time.monotonic() < deadline:
        try:
            message = await asyncio.wait_for(websocket.read_message(), 1)
        except asyncio.TimeoutError:
            continue
        if message and message[0] == YMessageType.SYNC:
            reply = handle_sync_message(message[1:], doc)
            if reply is not None:
                await websocket.write_message(reply, binary=True)
    websocket.close()
    await asyncio.sleep(1)

asyncio.run(join())
"""


def test_opening_a_chat_loads_the_assistant(server):
    run(["docker", "exec", "-d", server.name, "python", "-c", OPEN_CHAT, TOKEN])

    def exists(path: str) -> bool:
        return run(["docker", "exec", server.name, "test", "-e", path],
                   check=False).returncode == 0

    wait_for(lambda: exists("/tmp/chat-joined"), timeout=60, what="the chat to be joined")
    wait_for(lambda: all(server.loaded(extension) for extension in DEFERRED), timeout=120,
             what="the deferred extensions to load after a chat was opened")
    run(["docker", "exec", server.name, "touch", "/tmp/chat-done"])
    logs = server.logs()
    # The chat's collaboration session waited for the load (load_first_for).
    assert "personal_hub_deferred | loading" in logs
    assert "first use: PUT /api/collaboration/session/talk.chat" in logs
    assert_clean(logs)


def test_hidden_files_are_reachable_from_the_start(server):
    """Jupyternaut's link step shows hidden files; the image sets the same from the start,
    so the file API does not change when the assistant loads."""
    run(["docker", "exec", server.name, "sh", "-c",
         "mkdir -p /home/jovyan/.notes /home/jovyan/venv && "
         "echo hi > /home/jovyan/.notes/todo.txt"])
    status, body = server.request("GET", "/api/contents/.notes/todo.txt")
    assert status == 200 and json.loads(body)["content"].strip() == "hi", body
    status, body = server.request("GET", "/api/contents/")
    names = {item["name"] for item in json.loads(body)["content"]}
    assert ".notes" in names and "venv" not in names  # one of Jupyternaut's hide_globs
    assert not any(server.loaded(extension) for extension in DEFERRED)
    info = docker_json("inspect", server.name)[0]
    env = dict(item.split("=", 1) for item in info["Config"]["Env"])
    assert not any(key.endswith("_API_KEY") for key in env)


# An OpenAI-compatible model server (chat completions, streamed or not) that answers every
# prompt with one fixed sentence; it runs in a container of the image on the offline network.
STUB_MODEL = r"""
import json, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REPLY = "pong from the stub model"
KEYS = ("Bearer sk-test-only", "Bearer unused")  # a real key, or none (own server)

class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
        print("POST", self.path, request.get("model"), flush=True)
        if self.headers.get("Authorization") not in KEYS:
            body = json.dumps({"error": {"message": "Incorrect API key provided.",
                                         "type": "invalid_request_error"}}).encode()
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        base = {"id": "chatcmpl-stub", "created": int(time.time()), "model": request["model"]}
        if request.get("stream"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            for delta, finish in (({"role": "assistant", "content": REPLY}, None), ({}, "stop")):
                chunk = {**base, "object": "chat.completion.chunk",
                         "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.write(b"data: [DONE]\n\n")
            return
        body = json.dumps({**base, "object": "chat.completion", "choices": [{
            "index": 0, "finish_reason": "stop",
            "message": {"role": "assistant", "content": REPLY}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 5, "total_tokens": 6}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

ThreadingHTTPServer(("0.0.0.0", 8000), Handler).serve_forever()
"""

# Opens a chat (which loads the assistant), sends Jupyternaut a message as the chat input
# does (metadata.to_persona), and prints every message of the chat once one is from it.
ASK_JUPYTERNAUT = r"""
import asyncio, json, sys, time, urllib.error, urllib.parse, urllib.request, uuid
from tornado.websocket import websocket_connect
from pycrdt import (Array, Doc, Map, YMessageType, create_sync_message,
                    create_update_message, handle_sync_message)

token, base = sys.argv[1], "127.0.0.1:8888"

def call(method, path, body=None):
    url = f"http://{base}{path}?token={token}"
    for _ in range(3):  # a chat's session is held while the assistant loads, then 307
        request = urllib.request.Request(
            url, method=method, data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return response.read().decode()
        except urllib.error.HTTPError as error:
            if error.code != 307:
                raise
            url = urllib.parse.urljoin(url, error.headers["Location"])

call("PUT", "/api/contents/ask.chat", {"type": "file", "format": "text", "content": "{}"})
room = json.loads(call("PUT", "/api/collaboration/session/ask.chat",
                       {"format": "text", "type": "chat"}))

async def ask():
    url = (f"ws://{base}/api/collaboration/room/text:chat:{room['fileId']}"
           f"?sessionId={room['sessionId']}&token={token}")
    websocket = await websocket_connect(url)
    doc = Doc()
    messages = doc.get("messages", type=Array)
    await websocket.write_message(create_sync_message(doc), binary=True)
    sent, joined_at = False, None
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        try:
            message = await asyncio.wait_for(websocket.read_message(), 2)
        except asyncio.TimeoutError:
            message = None
        if message and message[0] == YMessageType.SYNC:
            reply = handle_sync_message(message[1:], doc)
            if reply is not None:
                await websocket.write_message(reply, binary=True)
        # Jupyternaut's user in the chat: its persona ID. (Not the page config's
        # `jupyter_ai_default_persona`: jupyter-ai 3.2 names a different ID there.)
        persona = next((name for name, user in doc.get("users", type=Map).to_py().items()
                        if user.get("name") == "Jupyternaut"), None)
        joined_at = joined_at or (persona and time.monotonic())
        if not sent and joined_at and time.monotonic() > joined_at + 3:
            # The persona has joined the chat (and its router connection settled): send it
            # a message, as the chat input does.
            state = doc.get_state()
            messages.append(Map({
                "type": "msg", "id": str(uuid.uuid4()), "time": time.time(), "raw_time": True,
                "sender": "tester", "body": "ping", "mentions": [],
                "metadata": {"to_persona": persona}}))
            await websocket.write_message(create_update_message(doc.get_update(state)),
                                          binary=True)
            sent = True
        replies = [m for m in messages.to_py() if m.get("sender") != "tester"]
        if any(word in (m.get("body") or "") for m in replies for word in ("pong", "Error")):
            break
    print(json.dumps(messages.to_py()))
    websocket.close()
    await asyncio.sleep(1)

asyncio.run(ask())
"""


@pytest.fixture(scope="module")
def model_server(image):
    """The stub model server, on the offline network."""
    name = f"{PREFIX}-model"
    run(["docker", "run", "-d", "--name", name, "--network", f"{PREFIX}-offline", image,
         "python", "-c", STUB_MODEL])
    yield f"http://{name}:8000/v1"
    run(["docker", "rm", "-f", name], check=False)


def ask_jupyternaut(server: Server) -> list[str]:
    """Jupyternaut's messages in a new chat after one question."""
    result = run(["docker", "exec", server.name, "python", "-c", ASK_JUPYTERNAUT, TOKEN],
                 timeout=300)
    messages = json.loads(result.stdout.strip().splitlines()[-1])
    return [m["body"] for m in messages if m.get("sender") != "tester"]


@pytest.mark.parametrize(
    "env",
    [
        # A provider's API with its key (the stub stands in for it through OPENAI_BASE_URL).
        {AI_MODEL_VARIABLE: "openai/gpt-5.4-mini", "OPENAI_API_KEY": "sk-test-only",
         "OPENAI_BASE_URL": "{model_server}"},
        # A model server of one's own (HUB_AI_BASE_URL), no key at all.
        {AI_MODEL_VARIABLE: "openai/llama3.2", AI_BASE_URL_VARIABLE: "{model_server}",
         "OPENAI_BASE_URL": "{model_server}"},
    ],
    ids=["provider-key", "own-model-server"],
)
def test_jupyternaut_answers_with_the_hubs_model(image, model_server, env):
    """With the model the hub passes (as PersonalSpawner does), the first chat (which loads
    the assistant) gets an answer from Jupyternaut, through LiteLLM, from an
    OpenAI-compatible model server; nobody picked a model."""
    server = Server(image, "jupyternaut-" + env[AI_MODEL_VARIABLE].split("/")[1][:6],
                    env={k: v.format(model_server=model_server) for k, v in env.items()})
    try:
        answers = ask_jupyternaut(server)
        assert any("pong from the stub model" in body for body in answers), (
            f"{answers}\n{server.logs()[-8000:]}")
        assert f"POST /v1/chat/completions {env[AI_MODEL_VARIABLE].split('/')[1]}" in (
            container_logs(f"{PREFIX}-model"))
        assert all(server.loaded(extension) for extension in DEFERRED)
        # (No check for tracebacks here: the MCP library logs one when Jupyternaut's MCP
        # client closes its session, with or without deferred loading.)
        assert "extension failed" not in server.logs()
    finally:
        server.stop()


def test_a_wrong_key_is_a_clear_message_in_the_chat(image, model_server):
    server = Server(image, "jupyternaut-wrong-key",
                    env={AI_MODEL_VARIABLE: "openai/gpt-5.4-mini", "OPENAI_API_KEY": "sk-wrong",
                         "OPENAI_BASE_URL": model_server})
    try:
        answers = ask_jupyternaut(server)
        errors = [body for body in answers if body.startswith("Error:")]
        assert errors, f"{answers}\n{server.logs()[-8000:]}"
        assert "AuthenticationError" in errors[0] and "Incorrect API key" in errors[0]
        assert "Traceback" not in errors[0] and "sk-wrong" not in errors[0]
    finally:
        server.stop()
