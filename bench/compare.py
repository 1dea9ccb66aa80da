#!/usr/bin/env python3
"""Stock JupyterHub + DockerSpawner (A) against personal-hub (B), side by side.

From the repository root, with the test venv (./hub test makes it):

    .venv/bin/python bench/compare.py [--users 20] [--runs 3] [--image IMAGE] [--keep]

Both configurations run in this one run, one after the other (never at the same time),
as the same compose stack (compose/docker-compose.yml: external configurable-http-proxy,
PostgreSQL, the users' network, the hub image) with the same single-user image. The only
difference is the hub's configuration: A replaces the hub's command with `jupyterhub -f
bench/stock_jupyterhub_config.py` (mounted read-only), B is `./hub up` as it ships.
Each stack is brought up from a fresh copy of this checkout with a generated stack.env,
published on a free port on 127.0.0.1.

Then **L**: personal-hub again, with a lean single-user image (--lean-image; by default
the single-user base, JupyterLab and jupyterhub without the batteries), for the solo
spawn figures only, printed with the ratio B/L: what the batteries cost at login.

Figures, each for A and B, with the ratio B/A:
- solo first spawn: login -> /user/<name>/lab answering through the proxy (a new user, a
  new home volume; median of --runs), and respawn: that server stopped, started again;
- idle memory (docker stats) of the hub, the proxy and one user server, after the user
  server has been up for --settle seconds;
- storm: --users first logins at the same moment, each spawning as a browser does (the
  spawn page, then the progress event stream, then /lab): failures, last and median
  time until the user's /lab answered;
- hub API latency during the storm: GET /hub/api/user with an API token of a user whose
  server is running, polled back to back through the proxy (p50, p95);
- hub restart with --restart-users users in the database and --restart-servers servers
  running: `docker restart` of the hub container while every running server's user polls
  /user/<name>/api/status through the proxy; failed requests (any answer but 200, from
  just before the restart until 10 s after the hub answers again), and seconds from the
  restart until the hub answers an API call again.

Images: with --images standins (the default where the ./hub build images are missing),
tests/standins/build.sh builds the stand-in bases the Docker-tier tests use, and the hub
and single-user images are built from them under this run's prefix; with --images built,
the single-user image is the one `./hub build` made (HUB_SINGLEUSER_IMAGE) and the bases
are the real upstream images. --image names another single-user image for both.

Every Docker object this creates is named with one random prefix (`phbench<hex>`) and
removed by that prefix at the end, also after a failure or Ctrl-C (kept with --keep).
Only 127.0.0.1 and the stacks' own networks are contacted.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench.spawn_time import first_spawn, machine, respawn, xsrf_header  # noqa: E402
from personal_hub.envfile import read_env_file  # noqa: E402
from personal_hub.stack import ComposeStack, StackCommands, StackError  # noqa: E402
from tests import helpers  # noqa: E402 - the tests' login, token and polling helpers
from tests.docker.conftest import (  # noqa: E402 - how the Docker tier copies and cleans up
    STANDIN_VARIABLES,
    container_logs,
    container_names,
    copy_checkout,
    remove_docker_objects,
    test_path,
)

STOCK_CONFIG = "bench/stock_jupyterhub_config.py"
STOCK_CONFIG_IN_HUB = "/etc/jupyterhub-stock/jupyterhub_config.py"
LAB_TIMEOUT = 300  # seconds from 'ready' to /lab answering before a start counts as failed
STACK_TIMEOUT = 1800  # building images and bringing a stack up


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- the two stacks


@dataclass(frozen=True)
class BenchComposeStack(ComposeStack):
    """The checkout's compose stack plus extra compose files (A's hub command)."""

    extra_files: tuple[str, ...] = ()

    def compose_files(self) -> list[str]:
        return [*super().compose_files(), *self.extra_files]


def logging_runner(log_path: Path, cwd: Path):
    """StackCommands' runner, in the checkout `cwd`: captured output as asked, everything
    else into the log."""

    def runner(command, *, env, text, capture_output, check):
        if capture_output:
            return subprocess.run(command, cwd=cwd, env=env, text=text, capture_output=True,
                                  check=check)
        with open(log_path, "a") as out:
            out.write(f"$ {' '.join(command)}\n")
            out.flush()
            return subprocess.run(command, cwd=cwd, env=env, text=text, stdout=out,
                                  stderr=subprocess.STDOUT, check=check)

    return runner


@dataclass
class Variant:
    key: str  # "a" or "b": in the project, user and network names
    title: str
    stock: bool
    prefix: str
    workdir: Path
    image_environ: dict[str, str]
    solo_only: bool = False  # only the solo spawn figures (the lean image's reference)
    port: int = field(default_factory=helpers.free_port)

    @property
    def project(self) -> str:
        return f"{self.prefix}{self.key}"

    @property
    def repo(self) -> Path:
        return self.workdir / self.key / "repo"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.key}.log"

    def environ(self) -> dict[str, str]:
        """`./hub up`'s shell: only names, ports and images (as the Docker tier's Stack)."""
        return {
            **os.environ,
            "PATH": test_path(),
            "COMPOSE_PROJECT_NAME": self.project,
            "HUB_PUBLISH_ADDRESS": "127.0.0.1",
            "HUB_PUBLISH_PORT": str(self.port),
            "HUB_DOCKER_NETWORK": f"{self.project}-net",
            "STACK_ENV_FILE": str(self.repo / "stack.env"),
            **self.image_environ,
        }

    @property
    def override_file(self) -> Path:
        """A's compose override: the hub's command and its config file (JSON is YAML)."""
        return self.workdir / f"{self.key}-stock-hub.json"

    def compose_stack(self) -> BenchComposeStack:
        extra = (str(self.override_file),) if self.stock else ()
        return BenchComposeStack(
            str(self.repo / "stack.env"), read_env_file(self.repo / "stack.env"),
            self.environ(), extra,
        )

    def commands(self) -> StackCommands:
        return StackCommands(self.compose_stack(), run=logging_runner(self.log_path, self.repo))

    def env(self) -> dict[str, str]:
        return read_env_file(self.repo / "stack.env")

    def container(self, service: str) -> str:
        return f"{self.project}-{service}-1"

    def user(self, kind: str, number: int) -> str:
        return f"{self.project}{kind}{number}"

    def owns(self, name: str) -> bool:
        return name.startswith(
            (self.project, f"jupyter-{self.project}", f"jupyterhub-user-{self.project}")
        )

    def up(self) -> None:
        copy_checkout(REPO, self.repo)
        if self.stock:
            # The same stack; only the hub's command (and its config file) differ.
            override = {"services": {"hub": {
                "command": ["jupyterhub", "-f", STOCK_CONFIG_IN_HUB],
                "volumes": [f"{self.repo / STOCK_CONFIG}:{STOCK_CONFIG_IN_HUB}:ro"],
            }}}
            self.override_file.write_text(json.dumps(override))
            self.run_logged([sys.executable, "-m", "personal_hub", "init", "--env-file",
                             "stack.env"])
            try:
                self.commands().up()
            except StackError as error:
                raise SystemExit(f"{self.title}: {error}; log: {self.log_path}") from None
        else:
            self.run_logged(["sh", "./hub", "up"])

    def run_logged(self, command: list[str]) -> None:
        with open(self.log_path, "a") as out:
            out.write(f"$ {' '.join(command)}\n")
            out.flush()
            result = subprocess.run(command, cwd=self.repo, env=self.environ(), stdout=out,
                                    stderr=subprocess.STDOUT, timeout=STACK_TIMEOUT)
        if result.returncode != 0:
            tail = self.log_path.read_text(errors="replace")[-3000:]
            raise SystemExit(f"{self.title}: {' '.join(command)} failed:\n{tail}")

    def save_logs(self) -> None:
        if not (self.repo / "stack.env").exists():
            return
        with open(self.log_path, "a") as out:
            out.write("$ docker compose logs\n")
            out.flush()
            self.commands().compose("logs", "--no-color", "--tail", "300", check=False,
                                    capture=False)
            for name in container_names(lambda name: name.startswith(f"jupyter-{self.project}")):
                out.write(f"$ docker logs {name} (tail)\n{container_logs(name, 60)}\n")

    def remove(self) -> None:
        """Everything this variant created: the stack, its users' containers and volumes."""
        if (self.repo / "stack.env").exists():
            self.commands().compose("down", "--volumes", "--remove-orphans", check=False)
        remove_docker_objects(self.owns)


# ---------------------------------------------------------------- measurements


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))
    return ordered[index]


def api_token(url: str, user: str, password: str) -> str:
    session, response = helpers.login(url, user, password)
    if response.status_code != 302:
        raise SystemExit(f"login as {user} failed with HTTP {response.status_code}")
    return helpers.create_token(session, url, user, "phbench")


def token_get(url: str, token: str, path: str, timeout: float = 30) -> requests.Response:
    return requests.get(f"{url}/hub/api/{path}", headers={"Authorization": f"token {token}"},
                        timeout=timeout)


def lab_answering(session: requests.Session, url: str, user: str) -> bool:
    page = session.get(f"{url}/user/{user}/lab", timeout=30)
    return page.status_code == 200 and "JupyterLab" in page.text


def wait_spawned(session: requests.Session, url: str, user: str, timeout: float) -> str:
    """Follow the start's progress events as the start page does (the tests' reader)
    until the server is ready, then load /lab (the OAuth handshake with the server).
    Returns '' when /lab answered, else what went wrong."""
    try:
        messages = helpers.progress_messages(session, url, user)
        if not messages or not messages[-1].startswith("Server ready"):
            return f"the progress events ended without 'ready': {messages[-1:]}"
        helpers.wait_for(lambda: lab_answering(session, url, user), timeout=timeout,
                         what=f"{user}'s /lab")
    except (AssertionError, requests.RequestException) as error:
        return f"{type(error).__name__}: {error}"
    return ""


@dataclass
class StormUser:
    name: str
    session: requests.Session | None = None
    elapsed: float | None = None
    error: str = ""


def storm_user(url: str, user: StormUser, password: str, start: threading.Event,
               started: list[float]) -> None:
    start.wait()
    try:
        user.session, response = helpers.login(url, user.name, password)
        if response.status_code != 302:
            user.error = f"login HTTP {response.status_code}"
            return
        # The browser's next request after login: the spawn page starts the server.
        spawn = user.session.get(f"{url}/hub/spawn", allow_redirects=False, timeout=600)
        if spawn.status_code not in (200, 302, 303):
            user.error = f"spawn page HTTP {spawn.status_code}"
            return
        user.error = wait_spawned(user.session, url, user.name, LAB_TIMEOUT)
        if not user.error:
            user.elapsed = time.perf_counter() - started[0]
    except Exception as error:  # noqa: BLE001 - one user's failure is a figure, not a crash
        user.error = f"{type(error).__name__}: {error}"


class LatencyProbe(threading.Thread):
    """GET /hub/api/user back to back through the proxy, with a user's API token."""

    def __init__(self, url: str, token: str):
        super().__init__(daemon=True)
        self.url, self.token = url, token
        self.latencies: list[float] = []
        self.errors = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            begin = time.perf_counter()
            try:
                ok = token_get(self.url, self.token, "user", timeout=60).status_code == 200
            except requests.RequestException:
                ok = False
            if ok:
                self.latencies.append(time.perf_counter() - begin)
            else:
                self.errors += 1
            time.sleep(0.05)


def storm(variant: Variant, users: int, password: str, probe_token: str) -> dict:
    start, started = threading.Event(), [0.0]
    crowd = [StormUser(variant.user("s", number)) for number in range(users)]
    threads = [threading.Thread(target=storm_user, daemon=True,
                                args=(variant.url, user, password, start, started))
               for user in crowd]
    for thread in threads:
        thread.start()
    probe = LatencyProbe(variant.url, probe_token)
    probe.start()
    time.sleep(1)  # every thread waits at the start line; the probe has a baseline
    started[0] = time.perf_counter()
    start.set()
    for thread in threads:
        thread.join()
    probe.done.set()
    probe.join()
    ready = [user.elapsed for user in crowd if user.elapsed is not None]
    failures = [user for user in crowd if user.elapsed is None]
    for user in failures:
        log(f"  {variant.title}: {user.name} failed: {user.error[:200]}")
    return {
        "crowd": crowd,
        "failures": len(failures),
        "last_ready": max(ready) if ready else None,
        "median_ready": statistics.median(ready) if ready else None,
        "api_p50": percentile(probe.latencies, 0.50) if probe.latencies else None,
        "api_p95": percentile(probe.latencies, 0.95) if probe.latencies else None,
        "api_calls": len(probe.latencies),
        "api_errors": probe.errors,
    }


def memory_mib(containers: list[str]) -> dict[str, float]:
    """Memory use as `docker stats` shows it (without the page cache), in MiB."""
    units = {"B": 1 / 2**20, "KiB": 1 / 2**10, "MiB": 1.0, "GiB": 2**10, "kB": 1e3 / 2**20,
             "MB": 1e6 / 2**20, "GB": 1e9 / 2**20}
    listing = subprocess.run(
        ["docker", "stats", "--no-stream", "--format", "{{.Name}}\t{{.MemUsage}}", *containers],
        capture_output=True, text=True, check=True,
    ).stdout
    usage = {}
    for line in listing.splitlines():
        name, _, value = line.partition("\t")
        amount = value.split("/")[0].strip()
        number = amount.rstrip("KMGiBk")
        usage[name] = float(number) * units[amount[len(number):]]
    return usage


def wait_server_gone(url: str, token: str, user: str, timeout: float = 300) -> None:
    def stopped():
        model = token_get(url, token, f"users/{user}").json()
        return "" not in model.get("servers", {})

    helpers.wait_for(stopped, timeout=timeout, what=f"{user}'s server to stop", interval=0.5)


def restart_hub(variant: Variant, admin_token: str, probe: StormUser, crowd: list[StormUser],
                total_users: int, running: int, password: str) -> dict:
    """`docker restart` the hub with `total_users` users and `running` servers; proxied
    requests of the running servers' users meanwhile."""
    url = variant.url
    keep = [probe] + [user for user in crowd if user.elapsed is not None][: running - 1]
    for user in crowd:
        if user.elapsed is not None and user not in keep:
            stopped = requests.delete(
                f"{url}/hub/api/users/{user.name}/server",
                headers={"Authorization": f"token {admin_token}"}, timeout=60)
            if stopped.status_code not in (202, 204):
                raise SystemExit(f"stopping {user.name}'s server: HTTP {stopped.status_code}")
    for user in crowd:
        if user.elapsed is not None and user not in keep:
            wait_server_gone(url, admin_token, user.name)
    # Too few running (failed storm spawns): start more, one at a time.
    for user in crowd:
        if len(keep) >= running:
            break
        if user.elapsed is None and user.session is not None:
            wait_server_gone(url, admin_token, user.name)
            user.session.post(f"{url}/hub/api/users/{user.name}/server",
                              headers=xsrf_header(user.session), timeout=600)
            problem = wait_spawned(user.session, url, user.name, LAB_TIMEOUT)
            if problem:
                raise SystemExit(f"{variant.title}: could not start {user.name}: {problem}")
            keep.append(user)
    listing = "users?limit=200"  # one page: JupyterHub pages user lists by 50
    existing = {model["name"] for model in token_get(url, admin_token, listing).json()}
    extra = [variant.user("r", number) for number in range(total_users)]
    extra = [name for name in extra if name not in existing][: max(0, total_users - len(existing))]
    if extra:
        created = requests.post(f"{url}/hub/api/users", json={"usernames": extra},
                                headers={"Authorization": f"token {admin_token}"}, timeout=120)
        if created.status_code != 201:
            raise SystemExit(f"creating users: HTTP {created.status_code} {created.text[:300]}")
    users_now = len(token_get(url, admin_token, listing).json())

    results: list[tuple[float, str]] = []
    lock, stop = threading.Lock(), threading.Event()

    def poll(user: StormUser) -> None:
        while not stop.is_set():
            try:
                status = str(user.session.get(f"{url}/user/{user.name}/api/status",
                                              timeout=10).status_code)
            except requests.RequestException as error:
                status = type(error).__name__
            with lock:
                results.append((time.monotonic(), status))
            time.sleep(0.2)

    pollers = [threading.Thread(target=poll, args=(user,), daemon=True) for user in keep]
    for thread in pollers:
        thread.start()
    time.sleep(3)  # a baseline: every server answers before the restart
    begin = time.monotonic()
    subprocess.run(["docker", "restart", variant.container("hub")], check=True,
                   capture_output=True, timeout=300)

    def hub_answers():
        return token_get(url, admin_token, "user", timeout=5).status_code == 200

    helpers.wait_for(hub_answers, timeout=600, what="the hub to answer after the restart",
                     interval=0.1)
    back = time.monotonic() - begin
    time.sleep(10)
    stop.set()
    for thread in pollers:
        thread.join()
    # The servers that found the hub unreachable while it restarted (upstream answers 500
    # then; personal-hub's image keeps serving the logins the hub confirmed).
    asked_hub = [user.name for user in keep if "Error connecting to" in container_logs(
        f"jupyter-{user.name}", tail=400)]
    codes = Counter(status for _, status in results if status != "200")
    still_running = sum(
        "" in token_get(url, admin_token, f"users/{user.name}").json().get("servers", {})
        for user in keep)
    return {
        "restart_failed": sum(codes.values()),
        "restart_requests": len(results),
        "restart_codes": dict(codes),
        "restart_seconds": back,
        "restart_users": users_now,
        "restart_servers": len(keep),
        "restart_still_running": still_running,
        "restart_servers_asked_hub": len(asked_hub),
    }


def measure(variant: Variant, args: argparse.Namespace) -> dict:
    log(f"{variant.title}: bringing the stack up on {variant.url} (log: {variant.log_path})")
    variant.up()
    env = variant.env()
    password = env["JUPYTER_PASSWORD"]
    url = variant.url
    figures: dict = {}

    log(f"{variant.title}: solo first spawn and respawn, {args.runs} runs")
    firsts, respawns = [], []
    for run in range(args.runs):
        user = variant.user("o", run)
        elapsed, session = first_spawn(url, user, password)
        firsts.append(elapsed)
        respawns.append(respawn(url, user, session))
        log(f"  {user}: first spawn {elapsed:.1f} s, respawn {respawns[-1]:.1f} s")
        if run < args.runs - 1:
            session.delete(f"{url}/hub/api/users/{user}/server", headers=xsrf_header(session),
                           timeout=60)
    figures.update(first=statistics.median(firsts), respawn=statistics.median(respawns),
                   firsts=firsts, respawns=respawns)
    # The last solo user keeps its server: the running user of the later figures.
    probe = StormUser(variant.user("o", args.runs - 1), session=session, elapsed=0.0)
    if variant.solo_only:
        return figures

    log(f"{variant.title}: idle memory after {args.settle:.0f} s")
    time.sleep(args.settle)
    server = f"jupyter-{probe.name}"
    usage = memory_mib([variant.container("hub"), variant.container("proxy"), server])
    figures.update(rss_hub=usage[variant.container("hub")],
                   rss_proxy=usage[variant.container("proxy")], rss_server=usage[server])

    log(f"{variant.title}: storm of {args.users} first logins")
    probe_token = api_token(url, probe.name, password)
    result = storm(variant, args.users, password, probe_token)
    crowd = result.pop("crowd")
    figures.update(result)
    log(f"  {args.users - result['failures']}/{args.users} ready, last "
        f"{result['last_ready'] or 0:.1f} s, hub API p95 {(result['api_p95'] or 0) * 1000:.0f} ms")

    log(f"{variant.title}: hub restart with {args.restart_users} users and "
        f"{args.restart_servers} running servers")
    admin_token = api_token(url, env["JUPYTER_ADMIN_USER"], env["JUPYTER_ADMIN_PASSWORD"])
    figures.update(restart_hub(variant, admin_token, probe, crowd, args.restart_users,
                               args.restart_servers, password))
    log(f"  {figures['restart_failed']} of {figures['restart_requests']} proxied requests "
        f"failed {figures['restart_codes'] or ''}; hub answering after "
        f"{figures['restart_seconds']:.1f} s")
    return figures


# ---------------------------------------------------------------- report


def ram() -> str:
    with open("/proc/meminfo") as info:
        kib = next(int(line.split()[1]) for line in info if line.startswith("MemTotal"))
    return f"{kib / 2**20:.1f} GiB RAM"


def checkout() -> str:
    """The commit measured, and whether uncommitted changes were copied along with it."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True,
                              text=True).stdout.strip()

    changed = len(git("status", "--porcelain").splitlines())
    return f"{git('rev-parse', '--short', 'HEAD')}" + (
        f" plus uncommitted changes to {changed} files" if changed else "")


def lean_lines(b: dict, lean: dict, args: argparse.Namespace, lean_image: str) -> list[str]:
    """B's solo figures against the same personal-hub stack with the lean image."""
    rows = [(f"solo first spawn, login -> /lab (median of {args.runs})", "first"),
            (f"respawn, stopped -> /lab (median of {args.runs})", "respawn")]
    lines = ["", f"personal-hub with the batteries image (B) and with the lean image "
             f"{lean_image} (L), same stack configuration, same run:", "",
             "| Figure | L: lean image | B: batteries image | B/L |", "|---|---|---|---|"]
    for title, key in rows:
        lines.append(f"| {title} | {lean[key]:.1f} s | {b[key]:.1f} s "
                     f"| {b[key] / lean[key]:.2f} |")
    lines.append(f"solo runs, first spawn / respawn (s): L {fmt(lean['firsts'])} / "
                 f"{fmt(lean['respawns'])}")
    return lines


def report(a: dict, b: dict, args: argparse.Namespace, image: str, base: str) -> str:
    def seconds(figures, value):
        return "-" if value is None else f"{value:.1f} s"

    def ms(figures, value):
        return "-" if value is None else f"{value * 1000:.0f} ms"

    def mib(figures, value):
        return f"{value:.0f} MiB"

    def of_storm(figures, value):
        return f"{value}/{args.users}"

    def of_requests(figures, value):
        return f"{value}/{figures['restart_requests']}"

    def ratio(key):
        left, right = a.get(key), b.get(key)
        if left is None or right is None or (left == 0 and right != 0):
            return "-"
        return "=" if left == right == 0 else f"{right / left:.2f}"

    rows = [
        (f"solo first spawn, login -> /lab (median of {args.runs})", "first", seconds),
        (f"respawn, stopped -> /lab (median of {args.runs})", "respawn", seconds),
        (f"storm of {args.users}: failed spawns", "failures", of_storm),
        (f"storm of {args.users}: last /lab answering (of the ready)", "last_ready", seconds),
        (f"storm of {args.users}: median /lab answering (of the ready)", "median_ready",
         seconds),
        ("hub API during the storm: p50", "api_p50", ms),
        ("hub API during the storm: p95", "api_p95", ms),
        ("idle memory: hub", "rss_hub", mib),
        ("idle memory: proxy", "rss_proxy", mib),
        ("idle memory: one user server", "rss_server", mib),
        ("hub restart: failed proxied requests", "restart_failed", of_requests),
        ("hub restart: until the hub answers again", "restart_seconds", seconds),
    ]
    lines = [
        f"machine: {machine()}, {ram()}",
        f"checkout: {checkout()}",
        f"single-user image: {image} (base {base})",
        f"hub restart with: A {a['restart_users']} users, {a['restart_servers']} running "
        f"servers; B {b['restart_users']} users, {b['restart_servers']} running servers",
        "",
        "| Figure | A: stock JupyterHub | B: personal-hub | B/A |",
        "|---|---|---|---|",
    ]
    for title, key, show in rows:
        lines.append(f"| {title} | {show(a, a.get(key))} | {show(b, b.get(key))} "
                     f"| {ratio(key)} |")
    lines += [
        "",
        "solo runs, first spawn / respawn (s): "
        f"A {fmt(a['firsts'])} / {fmt(a['respawns'])}; "
        f"B {fmt(b['firsts'])} / {fmt(b['respawns'])}",
        f"hub API calls during the storm, answered / failed: A {a['api_calls']}/"
        f"{a['api_errors']}, B {b['api_calls']}/{b['api_errors']}",
        f"hub restart, failed requests by answer: A {a['restart_codes'] or 'none'}, "
        f"B {b['restart_codes'] or 'none'}; servers still running afterwards: "
        f"A {a['restart_still_running']}/{a['restart_servers']}, "
        f"B {b['restart_still_running']}/{b['restart_servers']}; servers that had to ask "
        f"the hub about a login while it was down: "
        f"A {a['restart_servers_asked_hub']}, B {b['restart_servers_asked_hub']}",
    ]
    return "\n".join(lines)


def fmt(values: list[float]) -> str:
    return ", ".join(f"{value:.1f}" for value in values)


# ---------------------------------------------------------------- images and main


def docker_image_exists(image: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", image],
                          capture_output=True).returncode == 0


def standin_images() -> dict[str, str]:
    """Build (or reuse) the Docker tier's stand-in bases; {variable: tag}."""
    built = subprocess.run(["sh", str(REPO / "tests/standins/build.sh")], capture_output=True,
                           text=True, timeout=STACK_TIMEOUT)
    if built.returncode != 0:
        raise SystemExit(f"tests/standins/build.sh failed:\n{built.stderr[-3000:]}")
    tags = dict(line.split("=", 1) for line in built.stdout.split() if "=" in line)
    return {name: tags[name] for name in STANDIN_VARIABLES}


def interrupted(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=20, help="users in the storm (20)")
    parser.add_argument("--runs", type=int, default=3, help="solo spawns per figure (3)")
    parser.add_argument("--image", help="single-user image for both (default: built here "
                        "from the stand-in base, or the one ./hub build made)")
    parser.add_argument("--images", choices=("auto", "built", "standins"), default="auto",
                        help="built: the ./hub build single-user image and real bases; "
                        "standins: the tests' stand-in bases, images built here; auto: "
                        "built if that image exists")
    parser.add_argument("--restart-users", type=int, default=50,
                        help="users in the database at the hub restart (50)")
    parser.add_argument("--restart-servers", type=int, default=10,
                        help="servers running at the hub restart (10)")
    parser.add_argument("--settle", type=float, default=20,
                        help="seconds a server is up before idle memory is read (20)")
    parser.add_argument("--lean-image", help="single-user image for L, personal-hub's solo "
                        "spawns with a lean image (default: the single-user base image)")
    parser.add_argument("--only", nargs="+", choices=("a", "b", "l"),
                        help="run only these configurations")
    parser.add_argument("--keep", action="store_true",
                        help="keep the stacks and their files (names are printed)")
    args = parser.parse_args()
    if args.runs < 1 or args.users < 1 or args.restart_servers < 1:
        parser.error("--runs, --users and --restart-servers must be at least 1")

    prefix = "phbench" + secrets.token_hex(3)
    stack = ComposeStack.load(str(REPO / "stack.env"), os.environ, required=False)
    mode = args.images
    if mode == "auto":
        mode = "built" if docker_image_exists(args.image or stack.image("singleuser")) \
            else "standins"
    images = {"HUB_IMAGE": f"{prefix}-hub:latest"}
    own_images = [images["HUB_IMAGE"]]
    if mode == "standins":
        log("building the stand-in base images (tests/standins/build.sh)")
        images.update(standin_images())
        base = images["SINGLEUSER_BASE_IMAGE"]
        image = args.image or f"{prefix}-singleuser:latest"
        if not args.image:
            own_images.append(image)
    else:
        base = stack.value("SINGLEUSER_BASE_IMAGE")
        image = args.image or stack.image("singleuser")
        if not docker_image_exists(image):
            raise SystemExit(f"no image {image}: build it with ./hub build (or use "
                             "--images standins)")
    images["HUB_SINGLEUSER_IMAGE"] = image
    lean_image = args.lean_image or base
    workdir = Path(tempfile.mkdtemp(prefix=f"{prefix}-"))
    log(f"prefix {prefix}, files in {workdir}, single-user image {image}")

    variants = [
        Variant("a", "A stock", True, prefix, workdir, images),
        Variant("b", "B personal-hub", False, prefix, workdir, images),
        Variant("l", "L personal-hub, lean image", False, prefix, workdir,
                {**images, "HUB_SINGLEUSER_IMAGE": lean_image}, solo_only=True),
    ]
    if args.only:
        variants = [v for v in variants if v.key in args.only]
    # SIGTERM ends the run like Ctrl-C: the finally below removes what was created.
    signal.signal(signal.SIGTERM, interrupted)
    figures, finished = {}, False
    try:
        for variant in variants:
            try:
                figures[variant.key] = measure(variant, args)
            finally:
                variant.save_logs()
                if not args.keep:
                    log(f"{variant.title}: removing its stack, containers and volumes")
                    variant.remove()
        finished = True
    finally:
        if args.keep:
            log(f"kept: projects {', '.join(v.project for v in variants)}, files in {workdir}")
        else:
            for variant in variants:
                remove_docker_objects(variant.owns)
            for own in own_images:
                subprocess.run(["docker", "image", "rm", "-f", "--no-prune", own],
                               capture_output=True)
            for variant in variants:
                shutil.rmtree(variant.workdir / variant.key, ignore_errors=True)
            if finished:
                shutil.rmtree(workdir, ignore_errors=True)
            else:
                log(f"the stacks' logs are in {workdir}")
    if {"a", "b"} <= figures.keys():
        print(report(figures["a"], figures["b"], args, image, base))
    if {"b", "l"} <= figures.keys():
        print("\n".join(lean_lines(figures["b"], figures["l"], args, lean_image)))
    if not ({"a", "b"} <= figures.keys() or {"b", "l"} <= figures.keys()):
        print(json.dumps(figures, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
