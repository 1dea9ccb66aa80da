"""Load heavy Jupyter server extensions on first use, not at every server start.

jupyter-ai's server extensions import LiteLLM, LangChain, FastMCP and the ACP client
when the server starts: about 5 s on 2 cores and 200 MB, before the server answers
its first request, even for someone who never opens the AI chat. The image turns the
extensions named in `PersonalHubDeferred.extensions` off at start (`python -m
personal_hub_deferred --disable-at-start CONFIG`, run by the Dockerfile), and this
server extension loads them into the running server, with the server's own
ExtensionManager (import, link, load, start: the steps and order of a normal start),
the first time something needs them:

- an authenticated request that no loaded handler routes (it would be a 404): it is
  held until the extensions are loaded, then sent again to the same URL (307), where
  their handlers now answer. Tornado routes handlers added after start: an
  extension's handlers go before the server's 404 rule. Health checks that a front-end
  makes at every page load (`answer_while_pending`) are answered without loading;
- a request in `load_first_for` that another extension answers but that needs them
  first: opening a chat document (its collaboration session), whose AI personas are set
  up as it opens and need Jupyternaut's model configuration. It is held the same way,
  then sent again to the handler it was meant for;
- a chat document opened some other way (jupyterlab_chat's ChatManager event).

Imports run in a worker thread, so the server keeps answering while they load.
`PersonalHubDeferred.load_after` loads them that many seconds after start instead of
waiting for a first use.
"""

from __future__ import annotations

import asyncio
import copy
import importlib
import json
import sys
import time

from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.utils import url_path_join
from tornado import web
from tornado.routing import Matcher, PathMatches, Rule
from traitlets import Dict, Float, List, Unicode
from traitlets.config import Config, LoggingConfigurable

# Configurables the server built before the deferred extensions were linked; a link step
# that changes their configuration (Jupyternaut's shows hidden files) is applied to them.
SERVER_CONFIGURABLES = ("contents_manager", "kernel_manager", "session_manager",
                        "kernel_spec_manager")


def _jupyter_server_extension_points():
    return [{"module": "personal_hub_deferred"}]


class PersonalHubDeferred(LoggingConfigurable):
    """Loads the configured server extensions into the running server, once."""

    extensions = List(
        Unicode(),
        help="""Server extensions to load on first use instead of at start, e.g.
        ["jupyter_ai_jupyternaut", "jupyter_ai_litellm"]. Each must be turned off at start
        (`jupyter server extension disable --sys-prefix NAME`); an extension that is
        enabled at start anyway is left as it is.""",
    ).tag(config=True)

    answer_while_pending = Dict(
        value_trait=Dict(),
        key_trait=Unicode(),
        help="""GET requests that do not count as a use, with the JSON the extension's own
        handler answers, by path relative to the server's base URL, e.g.
        {"api/jupyternaut/get-example": {"data": "..."}}. For health checks that a
        front-end makes at every page load: without this, opening JupyterLab would load
        the extensions every time. Once they are loaded, their own handlers answer.""",
    ).tag(config=True)

    load_first_for = List(
        Unicode(),
        help="""Requests that another extension answers but that need the deferred ones
        loaded first, as regular expressions of the path relative to the server's base URL,
        e.g. ["api/collaboration/session/.+\\.chat"]: opening a chat document, whose AI
        personas are set up as it opens. They start the load, wait for it, and are then
        sent again (307) to the handler they were meant for.""",
    ).tag(config=True)

    load_after = Float(
        None,
        allow_none=True,
        help="""Seconds after the server starts to load the extensions without waiting
        for a first use, e.g. 30. None (the default): only on first use.""",
    ).tag(config=True)

    def __init__(self, serverapp, **kwargs):
        super().__init__(parent=serverapp, log=serverapp.log, **kwargs)
        self.serverapp = serverapp
        self._task: asyncio.Task | None = None
        self.done = False

    def pending(self) -> list[str]:
        """The configured extensions that are not loaded yet."""
        extensions = self.serverapp.extension_manager.extensions
        return [name for name in self.extensions
                if not (name in extensions and extensions[name].enabled)]

    def load(self, reason: str) -> asyncio.Task:
        """Start loading (once); the task every waiting request awaits."""
        if self._task is None:
            self.log.info("personal_hub_deferred | loading %s (%s)",
                          ", ".join(self.pending()) or "nothing", reason)
            self._task = asyncio.ensure_future(self._load())
        return self._task

    async def _load(self) -> None:
        began = time.perf_counter()
        try:
            names = self.pending()
            loop = asyncio.get_running_loop()
            for name in names:
                try:  # the slow part, off the event loop
                    await loop.run_in_executor(None, importlib.import_module, name)
                except Exception:  # add_extension imports it again and reports the error
                    self.log.debug("Could not import %s in a thread", name, exc_info=True)
            manager = self.serverapp.extension_manager
            config_before = copy.deepcopy(self.serverapp.config)
            for name in names:
                manager.add_extension(name, enabled=True)
                self.serverapp.jpserver_extensions[name] = True
            for name in sorted(names):  # the server's own order: link all, then load all
                manager.link_extension(name)
            self._apply_changed_config(config_before)
            for name in sorted(names):
                manager.load_extension(name)
            await asyncio.gather(*(manager.start_extension(name) for name in sorted(names)))
            self.log.info("personal_hub_deferred | loaded %s in %.1f s", ", ".join(names),
                          time.perf_counter() - began)
        except Exception:
            self.log.exception("personal_hub_deferred | loading failed")
        finally:
            self.done = True

    def _apply_changed_config(self, before: Config) -> None:
        config = self.serverapp.config
        changed = Config({section: copy.deepcopy(values) for section, values in config.items()
                          if before.get(section) != values})
        if not changed:
            return
        for attribute in SERVER_CONFIGURABLES:
            configurable = getattr(self.serverapp, attribute, None)
            if configurable is not None:
                configurable.update_config(changed)


class WhilePending(Matcher):
    """Matches every request until the deferred extensions are loaded."""

    def __init__(self, deferred: PersonalHubDeferred):
        self.deferred = deferred

    def match(self, request):
        return None if self.deferred.done else {}


class PathWhilePending(Matcher):
    """Matches requests to one path (a regular expression) until the deferred extensions
    are loaded."""

    def __init__(self, deferred: PersonalHubDeferred, pattern: str):
        self.deferred = deferred
        self.path = PathMatches(pattern)

    def match(self, request):
        return None if self.deferred.done else self.path.match(request)


class PendingHandler(JupyterHandler):
    """A request nothing routes yet: load the deferred extensions, then send it again.

    Authentication is the server's own (JupyterHandler.prepare): a request without a
    login gets the login redirect or 403 and never starts a load.
    """

    def initialize(self, deferred: PersonalHubDeferred):
        self.deferred = deferred

    async def prepare(self):
        await super().prepare()
        if self.current_user is None:
            return  # answered by prepare, or a 404 below
        relative = self.request.path[len(self.base_url):] if self.request.path.startswith(
            self.base_url) else self.request.path
        answer = self.deferred.answer_while_pending.get(relative.strip("/"))
        if self.request.method == "GET" and answer is not None:
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps(answer))
            return
        await self.deferred.load(f"first use: {self.request.method} {self.request.path}")
        # Routed again: to the handler that now exists, or to the server's 404.
        self.redirect(self.request.uri, status=307)

    def not_found(self, *args, **kwargs):
        raise web.HTTPError(404)

    get = head = post = put = patch = delete = options = not_found


def _route_pending(serverapp, deferred: PersonalHubDeferred) -> None:
    """The pending rules: requests in `load_first_for` before every other rule; any other
    request just before the server's 404 rule (its last catch-all)."""
    web_app = serverapp.web_app
    target = {"deferred": deferred}
    rules = web_app.wildcard_router.rules
    last = next((index for index in range(len(rules) - 1, -1, -1)
                 if getattr(rules[index].target, "__name__", "") == "Template404"), len(rules))
    rules.insert(last, Rule(WhilePending(deferred), PendingHandler, target))
    for pattern in deferred.load_first_for:
        path = url_path_join(web_app.settings["base_url"], pattern) + "$"
        web_app.default_router.rules.insert(
            0, Rule(PathWhilePending(deferred, path), PendingHandler, target))


def _load_jupyter_server_extension(serverapp):
    deferred = PersonalHubDeferred(serverapp)
    serverapp.web_app.settings["personal_hub_deferred"] = deferred
    if not deferred.pending():
        deferred.done = True
        return
    _route_pending(serverapp, deferred)


async def _start_jupyter_server_extension(serverapp):
    deferred = serverapp.web_app.settings.get("personal_hub_deferred")
    if deferred is None or deferred.done:
        return
    chats = serverapp.web_app.settings.get("chat_manager")
    if chats is not None:
        async def chat_event(logger, schema_id, data):
            if data.get("action") == "opened":
                deferred.load(f"a chat was opened: {data.get('path', '')}")

        chats.observe_chats(chat_event)
    if deferred.load_after is not None:
        asyncio.get_running_loop().call_later(
            deferred.load_after, deferred.load, f"{deferred.load_after:g} s after start")


def disable_at_start(config_file: str) -> int:
    """Build step: turn the configured extensions off at start (the image's own config
    file names them), then check that the server would not load them."""
    import json

    from jupyter_core.paths import jupyter_config_path
    from jupyter_server.extension.config import ExtensionConfigManager
    from jupyter_server.extension.serverextension import toggle_server_extension_python

    with open(config_file) as file:
        names = json.load(file)["PersonalHubDeferred"]["extensions"]
    for name in names:
        importlib.import_module(name)  # installed, or the build fails here
        toggle_server_extension_python(name, enabled=False, sys_prefix=True)
    enabled = ExtensionConfigManager(read_config_path=jupyter_config_path()) \
        .get_jpserver_extensions()
    still_on = [name for name in names if enabled.get(name)]
    if still_on:
        print(f"still enabled at start: {still_on}", file=sys.stderr)
        return 1
    print(f"off at start, loaded on first use: {', '.join(names)}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "--disable-at-start":
        sys.exit("usage: python -m personal_hub_deferred --disable-at-start CONFIG_FILE")
    sys.exit(disable_at_start(sys.argv[2]))
