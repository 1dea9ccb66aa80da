"""The scheduler: a hub-managed service that runs people's notebooks on a schedule.

At /services/scheduler/ a person (logged in through the hub, JupyterHub's OAuth) adds a
schedule for a notebook of their home: every N minutes, or daily at a time. When it is
due, the service starts a container of its own from the single-user image, with the
person's home volume, on the users' network (so the egress policy applies), with the
same limits and hardening as their server and the same environment (TZ, AI keys, team
connections), whether their server runs or not. The container executes the notebook
with nbclient and writes the executed notebook and a log under
~/scheduled-runs/<notebook name>/; the page shows every run's outcome, a failure with
the end of its log. Schedules live in HUB_DATA_DIR/schedules.json.

Started by the hub (`c.JupyterHub.services`) with the run settings in
PERSONAL_HUB_SCHEDULER (JSON, see `personal_hub.config.scheduler_service`).
"""

from __future__ import annotations

import asyncio
import html
import json
import os
import sys
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from .schedules import (
    MAX_SCHEDULES_PER_USER,
    Run,
    Schedule,
    ScheduleError,
    Store,
    due,
    new_schedule,
    next_run,
    output_paths,
    with_run,
)

SETTINGS_VARIABLE = "PERSONAL_HUB_SCHEDULER"
# On every run container: "<user>:<schedule id>" (told apart from servers and the stack).
RUN_LABEL = "personal-hub.run"
HOME = "/home/jovyan"
CHECK_SECONDS = 5
LOG_TAIL = 1500

# Runs in the run container, as the image's user, in the home: executes the notebook,
# writes it (also when a cell failed: up to the failure) and the log; exit 1 on failure.
RUNNER = r"""
import os, sys, time
source, output, log = (os.path.join(os.environ["HOME"], p) for p in sys.argv[1:4])
os.makedirs(os.path.dirname(output), exist_ok=True)
with open(log, "w") as log_file:
    def say(text):
        line = time.strftime("%Y-%m-%d %H:%M:%S ") + text
        print(line, flush=True)
        log_file.write(line + "\n")
        log_file.flush()
    status, notebook = 0, None
    say(f"running {sys.argv[1]}")
    try:
        import nbformat
        from nbclient import NotebookClient
        notebook = nbformat.read(source, as_version=4)
        NotebookClient(notebook, timeout=None,
                       resources={"metadata": {"path": os.path.dirname(source)}}).execute()
        say(f"finished: {sys.argv[2]}")
    except Exception as error:
        status = 1
        say(f"failed: {type(error).__name__}: {str(error)[-3000:]}")
    if notebook is not None:
        nbformat.write(notebook, output)
sys.exit(status)
"""


@dataclass(frozen=True)
class RunSettings:
    """What a run container gets: from the hub's settings (`config.scheduler_service`)."""

    image: str
    network: str
    timezone: str
    environment: dict
    data_dir: str
    mem_limit: int | None = None
    cpu_limit: float | None = None
    pids_limit: int | None = None
    cap_add: tuple = ()
    timeout_seconds: int = 3600
    # The home volumes' driver and options ({"driver", "options"}), for shared storage.
    home_storage: dict | None = None

    @classmethod
    def from_environ(cls, environ=os.environ) -> RunSettings:
        values = json.loads(environ[SETTINGS_VARIABLE])
        return cls(**{**values, "cap_add": tuple(values.get("cap_add", ()))})


def run_container(settings: RunSettings, schedule: Schedule, output: str, log: str,
                  volume: str) -> dict:
    """The Docker SDK's `containers.run` arguments of one run: the user's home, image,
    network, environment, limits and hardening, as their server has them."""
    escaped = volume.removeprefix("jupyterhub-user-")
    arguments = {
        "image": settings.image,
        "command": ["python", "-c", RUNNER, schedule.notebook, output, log],
        "name": f"jupyter-run-{escaped}-{schedule.id}",
        "detach": True,
        "working_dir": HOME,
        "environment": {**settings.environment, "HOME": HOME},
        "volumes": {volume: {"bind": HOME, "mode": "rw"}},
        "network": settings.network,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges:true"],
        "labels": {RUN_LABEL: f"{schedule.user}:{schedule.id}"},
    }
    if settings.cap_add:
        arguments["cap_add"] = list(settings.cap_add)
    if settings.mem_limit:
        arguments["mem_limit"] = arguments["memswap_limit"] = settings.mem_limit
    if settings.cpu_limit:
        arguments["nano_cpus"] = int(settings.cpu_limit * 1e9)
    if settings.pids_limit:
        arguments["pids_limit"] = settings.pids_limit
    return arguments


def outcome(exit_code: int | None, timed_out: bool, oom_killed: bool) -> str:
    if timed_out:
        return "timed out"
    if oom_killed:
        return "failed (out of memory)"
    return "succeeded" if exit_code == 0 else "failed"


class Scheduler:
    """Keeps the schedules, and starts every run that is due."""

    def __init__(self, settings: RunSettings, docker_client, log=print):
        self.settings = settings
        self.store = Store(Path(settings.data_dir) / "schedules.json")
        self.docker = docker_client
        self.log = log
        self.running: dict[str, asyncio.Task] = {}
        self.schedules = self.store.load()
        self.zone = ZoneInfo(settings.timezone)

    def now(self) -> datetime:
        return datetime.now(self.zone)

    def of(self, user: str) -> list[Schedule]:
        return [s for s in self.schedules if s.user == user]

    def add(self, user: str, **form: str) -> Schedule:
        if len(self.of(user)) >= MAX_SCHEDULES_PER_USER:
            raise ScheduleError(f"You have {MAX_SCHEDULES_PER_USER} schedules; remove one.")
        schedule = new_schedule(user, now=self.now(), zone=self.settings.timezone, **form)
        self.schedules.append(schedule)
        self.store.save(self.schedules)
        return schedule

    def remove(self, user: str, schedule_id: str) -> bool:
        kept = [s for s in self.schedules if not (s.user == user and s.id == schedule_id)]
        removed = len(kept) != len(self.schedules)
        self.schedules = kept
        self.store.save(self.schedules)
        return removed

    def run_now(self, user: str, schedule_id: str) -> bool:
        found = False
        for index, schedule in enumerate(self.schedules):
            if schedule.user == user and schedule.id == schedule_id:
                self.schedules[index] = replace(schedule, next_run=self.now().isoformat())
                found = True
        self.store.save(self.schedules)
        return found

    def _update(self, schedule_id: str, change) -> None:
        self.schedules = [change(s) if s.id == schedule_id else s for s in self.schedules]
        self.store.save(self.schedules)

    def recover(self) -> None:
        """After a restart: runs that were under way are over (their containers are
        removed); they are marked interrupted."""
        # This hub's runs only: another hub on the same engine has another network.
        mine = {"label": RUN_LABEL, "network": self.settings.network}
        for container in self.docker.containers.list(all=True, filters=mine):
            container.remove(force=True)
        for schedule in self.schedules:
            for run in schedule.runs:
                if run.status == "running":
                    self._update(schedule.id, lambda s, r=run: with_run(
                        s, replace(r, status="interrupted",
                                   message="The scheduler stopped during this run.")))

    def tick(self) -> list[asyncio.Task]:
        """Start every due run that is not under way; the next time is set at once."""
        now = self.now()
        started = []
        for schedule in due(self.schedules, now):
            if schedule.id in self.running:
                continue
            self._update(schedule.id, lambda s: replace(
                s, next_run=next_run(s, now).isoformat()))
            task = asyncio.get_running_loop().create_task(self.run(schedule, now))
            self.running[schedule.id] = task
            task.add_done_callback(lambda _, key=schedule.id: self.running.pop(key, None))
            started.append(task)
        return started

    async def run(self, schedule: Schedule, started: datetime) -> Run:
        from .inventory import ensure_home_volume

        output, log = output_paths(schedule, started)
        run = Run(started.isoformat(), "running", output, log)
        self._update(schedule.id, lambda s: with_run(s, run))
        self.log(f"run of {schedule.notebook} for {schedule.user} ({schedule.id}) starts")
        try:
            volume = await asyncio.to_thread(ensure_home_volume, self.docker, schedule.user,
                                             self.settings.home_storage)
            arguments = run_container(self.settings, schedule, output, log, volume)
            finished = await asyncio.to_thread(self._run_container, arguments)
        except Exception as error:  # noqa: BLE001 - recorded for the person to see
            finished = replace(run, status="failed",
                               message=f"The run could not start: {type(error).__name__}: "
                                       f"{str(error)[:500]}")
        else:
            status, tail = finished
            if status == "timed out":
                tail = (f"Stopped after {self.settings.timeout_seconds} s "
                        f"(HUB_SCHEDULED_RUN_TIMEOUT).\n{tail}")
            finished = replace(run, status=status,
                               message="" if status == "succeeded" else tail)
        self._update(schedule.id, lambda s: with_run(s, finished))
        self.log(f"run of {schedule.notebook} for {schedule.user} ({schedule.id}): "
                 f"{finished.status}")
        return finished

    def _run_container(self, arguments: dict) -> tuple[str, str]:
        container = self.docker.containers.run(**arguments)
        try:
            timed_out = False
            try:
                result = container.wait(timeout=self.settings.timeout_seconds)
            except Exception:  # noqa: BLE001 - the SDK's read timeout: the run took too long
                timed_out = True
                container.kill()
                result = {"StatusCode": None}
            state = self.docker.api.inspect_container(container.id)["State"]
            tail = container.logs(tail=40).decode(errors="replace")[-LOG_TAIL:]
            return outcome(result.get("StatusCode"), timed_out, state.get("OOMKilled")), tail
        finally:
            container.remove(force=True)

    async def loop(self) -> None:
        while True:
            self.tick()
            await asyncio.sleep(CHECK_SECONDS)


# ---------------------------------------------------------------- the web pages


def page(user: str, schedules: list[Schedule], server_prefix: str, xsrf: str,
         error: str = "") -> str:
    """The person's schedules, their runs and the form to add one (everything escaped)."""
    e = html.escape
    rows = []
    for schedule in schedules:
        runs = "".join(
            f'<li class="run {e(run.status.split()[0])}">{e(run.started[:19])} '
            f"<strong>{e(run.status)}</strong>"
            + (f' &middot; <a href="{e(server_prefix)}lab/tree/{e(run.output)}">'
               f"{e(run.output)}</a> &middot; {e(run.log)}" if run.output else "")
            + (f"<pre>{e(run.message)}</pre>" if run.message else "")
            + "</li>"
            for run in reversed(schedule.runs)
        ) or "<li>no runs yet</li>"
        rows.append(
            f'<section class="schedule" id="schedule-{e(schedule.id)}">'
            f"<h3>{e(schedule.notebook)}</h3><p>{e(schedule.describe())}; next run "
            f"{e(schedule.next_run[:16].replace('T', ' '))}</p>"
            f'<form method="post" action="schedules/{e(schedule.id)}/run">{xsrf}'
            '<button type="submit">Run now</button></form>'
            f'<form method="post" action="schedules/{e(schedule.id)}/delete">{xsrf}'
            '<button type="submit">Remove</button></form>'
            f"<ul>{runs}</ul></section>"
        )
    message = f'<p class="error">{e(error)}</p>' if error else ""
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>Scheduled runs</title><style>
body {{ font-family: sans-serif; margin: 2em; max-width: 60em }}
.error, .failed, .timed, .interrupted {{ color: #b00020 }} .succeeded {{ color: #1b5e20 }}
pre {{ white-space: pre-wrap; background: #f4f4f4; padding: .5em }}
section {{ border-top: 1px solid #ccc; margin-top: 1em }} form {{ display: inline }}
</style></head><body>
<h1>Scheduled runs of {e(user)}</h1>
<p>Your notebooks run on schedule in a container of their own, with your files, also when
your server is stopped. Each run writes the executed notebook and a log to
<code>scheduled-runs/&lt;notebook name&gt;/</code> in your home.</p>
{message}
<form method="post" action="schedules" id="add">{xsrf}
<label>Notebook <input name="notebook" placeholder="reports/daily.ipynb" required></label>
<label>every <input name="every_minutes" size="5" placeholder="60"> minutes</label>
<label>or daily at <input name="daily_at" size="5" placeholder="07:00"></label>
<button type="submit">Add</button></form>
{''.join(rows) or '<p>No schedules yet.</p>'}
<p><a href="/hub/home">Back to the hub</a></p></body></html>"""


def make_app(scheduler: Scheduler, prefix: str):
    from jupyterhub.services.auth import HubOAuthCallbackHandler, HubOAuthenticated
    from jupyterhub.utils import url_path_join
    from tornado import web

    from .hubservice import PAGE_POLICY, application

    class Handler(HubOAuthenticated, web.RequestHandler):
        def user(self) -> str:
            return self.get_current_user()["name"]

        def server_prefix(self) -> str:
            return f"/user/{self.user()}/"

        def show(self, error: str = "", status: int = 200) -> None:
            self.set_status(status)
            self.set_header("Content-Security-Policy", PAGE_POLICY)
            self.finish(page(self.user(), scheduler.of(self.user()), self.server_prefix(),
                             self.xsrf_form_html(), error))

    class Home(Handler):
        @web.authenticated
        def get(self):
            self.show()

    class Add(Handler):
        @web.authenticated
        def post(self):
            try:
                scheduler.add(self.user(), **{
                    key: self.get_body_argument(key, "")[:300]
                    for key in ("notebook", "every_minutes", "daily_at")})
            except ScheduleError as error:
                return self.show(str(error), status=400)
            self.redirect(prefix)

    class Change(Handler):
        @web.authenticated
        def post(self, schedule_id: str, action: str):
            change = scheduler.remove if action == "delete" else scheduler.run_now
            if not change(self.user(), schedule_id):
                raise web.HTTPError(404, "no such schedule")
            self.redirect(prefix)

    class Api(Handler):
        @web.authenticated
        def get(self):
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps([s.as_json() for s in scheduler.of(self.user())]))

    return application([
        (prefix, Home),
        (url_path_join(prefix, "schedules"), Add),
        (url_path_join(prefix, r"schedules/([0-9a-f]{12})/(delete|run)"), Change),
        (url_path_join(prefix, "api/schedules"), Api),
        (url_path_join(prefix, "oauth_callback"), HubOAuthCallbackHandler),
    ])


def main() -> int:
    import docker

    from .hubservice import logger, serve, service_prefix, settings_from_environ

    log = logger("scheduler")
    settings = settings_from_environ(RunSettings.from_environ, SETTINGS_VARIABLE, log)
    if settings is None:
        return 2
    scheduler = Scheduler(settings, docker.from_env(), log)
    scheduler.recover()
    log(f"{len(scheduler.schedules)} schedules")
    serve(make_app(scheduler, service_prefix()), scheduler.loop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
