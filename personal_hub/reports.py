"""Published reports: a hub-managed service that turns a person's notebook into a
read-only page every hub user can open, at a stable URL, without the owner's server.

At /services/reports/ a person publishes a notebook of their home (with or without its
code). The service renders it in a throwaway container of the single-user image, with the
owner's home volume read-only and no network, from the outputs saved in the notebook
(nothing is run): nbconvert's HTML, plotly figures as interactive plotly.js charts and
itables' tables with their DataTables bundle, both served by this service. The page is at
/services/reports/view/<owner>/<name>/, for any logged-in user; publishing again
replaces it, unpublishing removes it.

A report is its author's HTML and JavaScript, shown to other people: it is served with
`Content-Security-Policy: sandbox allow-scripts allow-popups`, so it runs in an origin of
its own and can neither read the viewer's hub cookies nor call the hub as them.
"""

from __future__ import annotations

import asyncio
import html
import json
import os
import re
import sys
import tempfile
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from .schedules import ScheduleError, notebook_path

SETTINGS_VARIABLE = "PERSONAL_HUB_REPORTS"
RENDER_LABEL = "personal-hub.render"
NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
ASSET_PATH = re.compile(r"[a-z0-9_-]+/[0-9A-Za-z.+-]+/[A-Za-z0-9_.-]+\.(js|css)")
MAX_REPORT_BYTES = 50 * 1024**2
RENDER_SECONDS = 300
REPORT_POLICY = "sandbox allow-scripts allow-popups allow-downloads"

# Runs in the render container (the owner's image, home read-only, no network): prints
# {"html": ..., "assets": {path: text}} for the notebook given, or {"error": ...}.
RENDERER = r"""
import json, os, re, sys
path, hide_code, static = sys.argv[1], sys.argv[2] == "1", sys.argv[3]
try:
    import nbformat
    from nbconvert import HTMLExporter
    notebook = nbformat.read(os.path.join(os.environ["HOME"], path), as_version=4)
    assets = {}
    figure_type = "application/vnd.plotly.v1+json"
    has_plotly = any(figure_type in o.get("data", {}) for c in notebook.cells
                     for o in c.get("outputs", ()))
    head = ""
    if has_plotly:
        import plotly
        import plotly.io
        from plotly.offline import get_plotlyjs
        name = f"plotly/{plotly.__version__}/plotly.min.js"
        assets[name] = get_plotlyjs()
        head = f'<script src="{static}{name}"></script>'
        for cell in notebook.cells:
            for output in cell.get("outputs", ()):
                figure = output.get("data", {}).pop(figure_type, None)
                if figure is not None:
                    output["data"]["text/html"] = plotly.io.to_html(
                        figure, include_plotlyjs=False, full_html=False)
    # Nothing from the internet: no require.js or MathJax from a CDN, no widget manager.
    exporter = HTMLExporter(template_name="lab", exclude_input=hide_code,
                            exclude_input_prompt=hide_code, exclude_output_prompt=hide_code,
                            require_js_url="", mathjax_url="", widget_renderer_url="")
    body, _ = exporter.from_notebook_node(notebook)
    served = re.compile("['\"][^'\"]*/static/personal-hub/(itables/[^/'\"]+)/"
                        "(dt_bundle\\.(?:js|css))['\"]")
    for folder, name in set(served.findall(body)):
        import itables
        source = os.path.join(os.path.dirname(itables.__file__), "html", name)
        with open(source) as file:
            assets[f"{folder}/{name}"] = file.read()
    body = served.sub(lambda m: f"'{static}{m.group(1)}/{m.group(2)}'", body)
    body = re.sub(r'<script src="">\s*</script>', "", body)  # the CDN scripts left out
    body = body.replace("</head>", head + "</head>", 1)
    print(json.dumps({"html": body, "assets": assets}))
except Exception as error:
    print(json.dumps({"error": f"{type(error).__name__}: {str(error)[-500:]}"}))
"""


class ReportError(ValueError):
    """A report that cannot be published, with what to do instead."""


@dataclass(frozen=True)
class Report:
    owner: str
    name: str
    notebook: str
    published: str
    hide_code: bool = False


@dataclass(frozen=True)
class RenderSettings:
    image: str
    data_dir: str
    network: str  # the users' network: names this hub's render containers (they have none)
    timezone: str = "UTC"
    mem_limit: int | None = None
    pids_limit: int | None = None
    # The home volumes' driver and options ({"driver", "options"}), for shared storage.
    home_storage: dict | None = None

    @classmethod
    def from_environ(cls, environ=os.environ) -> RenderSettings:
        return cls(**json.loads(environ[SETTINGS_VARIABLE]))


def report_name(text: str, notebook: str) -> str:
    """The name in the report's URL: as given, or from the notebook's file name."""
    name = text.strip().lower() or re.sub(r"[^a-z0-9]+", "-",
                                          PurePosixPath(notebook).stem.lower()).strip("-")
    if not NAME.fullmatch(name):
        raise ReportError("A report's name is lower-case letters, digits and -, e.g. "
                          "sales-2026 (63 at most).")
    return name


def render_container(settings: RenderSettings, notebook: str, hide_code: bool,
                     volume: str, static_prefix: str) -> dict:
    """The Docker SDK's `containers.run` arguments of one render: the owner's image and
    home (read-only), no network, no capabilities."""
    arguments = {
        "image": settings.image,
        "command": ["python", "-c", RENDERER, notebook, "1" if hide_code else "0",
                    static_prefix],
        "detach": True,
        "environment": {"HOME": "/home/jovyan"},
        "working_dir": "/home/jovyan",
        "volumes": {volume: {"bind": "/home/jovyan", "mode": "ro"}},
        "network_mode": "none",
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges:true"],
        "labels": {RENDER_LABEL: settings.network},
    }
    if settings.mem_limit:
        arguments["mem_limit"] = arguments["memswap_limit"] = settings.mem_limit
    if settings.pids_limit:
        arguments["pids_limit"] = settings.pids_limit
    return arguments


class Library:
    """The published reports: HUB_DATA_DIR/reports/<owner>/<name>.html + .json, and the
    shared assets (plotly.js, DataTables) under HUB_DATA_DIR/reports/.static/."""

    def __init__(self, root: Path):
        self.root = root

    def folder(self, owner: str) -> Path:
        # One folder each, always inside root: no "/", and no "." (so never "..").
        return self.root / quote(owner, safe="").replace(".", "%2E")

    def reports(self, owner: str | None = None) -> list[Report]:
        folders = [self.folder(owner)] if owner else sorted(
            p for p in self.root.glob("*") if p.is_dir() and not p.name.startswith("."))
        found = []
        for folder in folders:
            for meta in sorted(folder.glob("*.json")):
                try:
                    found.append(Report(**json.loads(meta.read_text())))
                except (ValueError, TypeError):
                    continue
        return found

    def page(self, owner: str, name: str) -> bytes | None:
        if not NAME.fullmatch(name):
            return None
        path = self.folder(owner) / f"{name}.html"
        return path.read_bytes() if path.is_file() else None

    def save(self, report: Report, body: str, assets: dict[str, str]) -> None:
        folder = self.folder(report.owner)
        folder.mkdir(parents=True, exist_ok=True)
        for relative, text in assets.items():
            if ASSET_PATH.fullmatch(relative):
                asset = self.root / ".static" / relative
                if not asset.exists():
                    asset.parent.mkdir(parents=True, exist_ok=True)
                    write_atomically(asset, text.encode())
        write_atomically(folder / f"{report.name}.html", body.encode())
        write_atomically(folder / f"{report.name}.json", json.dumps(asdict(report)).encode())

    def remove(self, owner: str, name: str) -> bool:
        if not NAME.fullmatch(name):
            return False
        removed = False
        for suffix in (".html", ".json"):
            path = self.folder(owner) / f"{name}{suffix}"
            if path.exists():
                path.unlink()
                removed = True
        return removed

    def asset(self, relative: str) -> bytes | None:
        if not ASSET_PATH.fullmatch(relative):
            return None
        path = self.root / ".static" / relative
        return path.read_bytes() if path.is_file() else None


def write_atomically(path: Path, data: bytes) -> None:
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp")
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
    os.replace(temporary, path)


class Publisher:
    def __init__(self, settings: RenderSettings, docker_client, static_prefix: str):
        self.settings = settings
        self.docker = docker_client
        self.static_prefix = static_prefix
        self.library = Library(Path(settings.data_dir) / "reports")

    async def publish(self, owner: str, notebook: str, name: str = "",
                      hide_code: bool = False) -> Report:
        from zoneinfo import ZoneInfo

        from .inventory import ensure_home_volume

        try:
            path = notebook_path(notebook)
        except ScheduleError as error:
            raise ReportError(str(error)) from None
        report = Report(owner, report_name(name, path), path,
                        datetime.now(ZoneInfo(self.settings.timezone)).isoformat()[:16],
                        hide_code)
        volume = await asyncio.to_thread(ensure_home_volume, self.docker, owner,
                                         self.settings.home_storage)
        arguments = render_container(self.settings, path, hide_code, volume,
                                     self.static_prefix)
        result = await asyncio.to_thread(self._render, arguments)
        if "error" in result:
            message = result["error"]
            if message.startswith("FileNotFoundError"):
                message = f"There is no notebook {path} in your home."
            raise ReportError(f"The notebook could not be rendered: {message}")
        self.library.save(report, result["html"], result.get("assets", {}))
        return report

    def _render(self, arguments: dict) -> dict:
        container = self.docker.containers.run(**arguments)
        try:
            try:
                container.wait(timeout=RENDER_SECONDS)
            except Exception:  # noqa: BLE001 - the SDK's read timeout
                container.kill()
                return {"error": f"it took longer than {RENDER_SECONDS} s"}
            output = container.logs(stdout=True, stderr=False)
        finally:
            container.remove(force=True)
        if len(output) > MAX_REPORT_BYTES:
            return {"error": f"the report is larger than {MAX_REPORT_BYTES // 1024**2} MB"}
        try:
            return json.loads(output.decode(errors="replace").strip().splitlines()[-1])
        except (ValueError, IndexError):
            return {"error": "the renderer gave no result"}


# ---------------------------------------------------------------- the web pages


def index_page(user: str, mine: list[Report], everyone: list[Report], prefix: str,
               xsrf: str, error: str = "") -> str:
    e = html.escape

    def link(report: Report) -> str:
        url = f"{prefix}view/{quote(report.owner, safe='')}/{report.name}/"
        return f'<a href="{e(url)}">{e(report.owner)}/{e(report.name)}</a>'

    own = "".join(
        f"<li>{link(r)} from <code>{e(r.notebook)}</code>, {e(r.published.replace('T', ' '))}"
        f' <form method="post" action="{e(prefix)}unpublish/{e(r.name)}">{xsrf}'
        '<button type="submit">Unpublish</button></form></li>'
        for r in mine) or "<li>none</li>"
    others = "".join(f"<li>{link(r)}</li>" for r in everyone) or "<li>none yet</li>"
    message = f'<p class="error">{e(error)}</p>' if error else ""
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Reports</title>
<style>body {{ font-family: sans-serif; margin: 2em; max-width: 60em }}
.error {{ color: #b00020 }} form {{ display: inline }}</style></head><body>
<h1>Reports</h1>
<p>Publish a notebook of your home as a read-only page that everyone on this hub can
open, with its outputs as you saved them (interactive tables and charts stay
interactive). Publishing again under the same name replaces it.</p>
{message}
<form method="post" action="{e(prefix)}publish" id="publish">{xsrf}
<label>Notebook <input name="notebook" placeholder="reports/sales.ipynb" required></label>
<label>Name <input name="name" placeholder="(from the file name)"></label>
<label><input type="checkbox" name="hide_code" value="1"> hide the code</label>
<button type="submit">Publish</button></form>
<h2>Yours ({e(user)})</h2><ul>{own}</ul>
<h2>Everyone's</h2><ul>{others}</ul>
<p><a href="/hub/home">Back to the hub</a></p></body></html>"""


def make_app(publisher: Publisher, prefix: str):
    from jupyterhub.services.auth import HubOAuthCallbackHandler, HubOAuthenticated
    from jupyterhub.utils import url_path_join
    from tornado import web

    from .hubservice import PAGE_POLICY, application

    library = publisher.library

    class Handler(HubOAuthenticated, web.RequestHandler):
        def user(self) -> str:
            return self.get_current_user()["name"]

        def show(self, error: str = "", status: int = 200) -> None:
            self.set_status(status)
            self.set_header("Content-Security-Policy", PAGE_POLICY)
            self.finish(index_page(self.user(), library.reports(self.user()),
                                   library.reports(), prefix, self.xsrf_form_html(), error))

    class Index(Handler):
        @web.authenticated
        def get(self):
            self.show()

    class Publish(Handler):
        @web.authenticated
        async def post(self):
            try:
                await publisher.publish(
                    self.user(), self.get_body_argument("notebook", "")[:300],
                    self.get_body_argument("name", "")[:100],
                    self.get_body_argument("hide_code", "") == "1")
            except ReportError as error:
                return self.show(str(error), status=400)
            self.redirect(prefix)

    class Unpublish(Handler):
        @web.authenticated
        def post(self, name: str):
            if not library.remove(self.user(), name):
                raise web.HTTPError(404, "no such report")
            self.redirect(prefix)

    class View(Handler):
        @web.authenticated
        def get(self, owner: str, name: str):
            body = library.page(owner, name)
            if body is None:
                raise web.HTTPError(404, "no such report")
            # The author's HTML and scripts, in an origin of their own (see above).
            self.set_header("Content-Security-Policy", REPORT_POLICY)
            self.set_header("X-Content-Type-Options", "nosniff")
            self.set_header("Content-Type", "text/html; charset=utf-8")
            self.finish(body)

    class Asset(web.RequestHandler):
        """plotly.js and DataTables, for the reports' sandboxed pages (their origin is
        opaque: module scripts need CORS; nothing here is private)."""

        def get(self, relative: str):
            data = library.asset(relative)
            if data is None:
                raise web.HTTPError(404)
            kind = "text/css" if relative.endswith(".css") else "text/javascript"
            self.set_header("Content-Type", f"{kind}; charset=utf-8")
            self.set_header("Access-Control-Allow-Origin", "*")
            self.set_header("Cache-Control", "public, max-age=86400")
            self.finish(data)

    return application([
        (prefix, Index),
        (url_path_join(prefix, "publish"), Publish),
        (url_path_join(prefix, r"unpublish/([a-z0-9-]+)"), Unpublish),
        (url_path_join(prefix, r"view/([^/]+)/([a-z0-9-]+)/?"), View),
        (url_path_join(prefix, r"static/(.+)"), Asset),
        (url_path_join(prefix, "oauth_callback"), HubOAuthCallbackHandler),
    ])


def main() -> int:
    import docker

    from .hubservice import logger, serve, service_prefix, settings_from_environ

    log = logger("reports")
    settings = settings_from_environ(RenderSettings.from_environ, SETTINGS_VARIABLE, log)
    if settings is None:
        return 2
    prefix = service_prefix()
    client = docker.from_env()
    # Renders under way when the service stopped (this hub's only).
    mine = {"label": f"{RENDER_LABEL}={settings.network}"}
    for container in client.containers.list(all=True, filters=mine):
        container.remove(force=True)
    publisher = Publisher(settings, client, f"{prefix}static/")
    os.makedirs(publisher.library.root, exist_ok=True)
    log(f"{len(publisher.library.reports())} reports")
    serve(make_app(publisher, prefix))
    return 0


if __name__ == "__main__":
    sys.exit(main())
