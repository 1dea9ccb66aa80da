#!/usr/bin/env python3
"""What each Jupyter server extension costs a single-user server's start.

    python3 bench/extensions.py [--image IMAGE] [--lean-image IMAGE] [--runs 3]

Starts the single-user server (`jupyter lab`, as the image's start command does without a
hub) in a container of each image, with a probe that times every step the server's own
ExtensionManager takes for each extension -- import, link, load, start -- and the server
process's resident memory (RSS) before and after each step. Reports, per extension, the
seconds and the RSS it added (a shared dependency is charged to the first extension that
imports it; jupyter_server and jupyterlab themselves are imported before any extension)
and whether it was loaded at start or on first use (by the image's
`personal_hub_deferred` extension). Then, per image (median of --runs): container start
to `/api/status` answering, the server's RSS 20 s later (idle), and a first use of the
AI assistant (GET --first-use): how long it took and the RSS after it.
`--import-alone` adds each extension's import time in a fresh interpreter.

The images default to the ones `./hub up` and `./build.sh` use (stack.env, else the
defaults); the lean image is the single-user base (SINGLEUSER_BASE_IMAGE). Containers are
named `phext<hex>…` and removed afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from personal_hub.stack import ComposeStack  # noqa: E402

TOKEN = secrets.token_hex(16)
IDLE_SECONDS = 20
TIMEOUT = 300

# Runs inside the container: wraps the ExtensionManager's steps, then starts `jupyter lab`.
# Each step prints one JSON line to stderr; the clock is the container's (time.time()).
PROBE = r"""
import functools, importlib, json, sys, time
from jupyter_server.extension.manager import ExtensionManager

STARTED = {"answering": False}

def rss_mb():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0

def report(**fields):
    sys.stderr.write("PHEXT " + json.dumps(fields) + "\n")
    sys.stderr.flush()

def timed(method, step):
    original = getattr(ExtensionManager, method)
    if step == "start":
        @functools.wraps(original)
        async def wrapper(self, name, *args, **kwargs):
            began, rss = time.perf_counter(), rss_mb()
            try:
                return await original(self, name, *args, **kwargs)
            finally:
                report(ext=name, step=step, s=time.perf_counter() - began,
                       mb=rss_mb() - rss, after_answering=STARTED["answering"], t=time.time())
    else:
        @functools.wraps(original)
        def wrapper(self, name, *args, **kwargs):
            began, rss = time.perf_counter(), rss_mb()
            try:
                return original(self, name, *args, **kwargs)
            finally:
                report(ext=name, step=step, s=time.perf_counter() - began,
                       mb=rss_mb() - rss, after_answering=STARTED["answering"], t=time.time())
    setattr(ExtensionManager, method, wrapper)

timed("link_extension", "link")
timed("load_extension", "load")
timed("start_extension", "start")

# Imports: the manager's own (jupyter_server.extension.utils.get_metadata) and those of
# personal_hub_deferred (in a worker thread) both go through importlib.import_module.
from jupyter_core.paths import jupyter_config_path
from jupyter_server.extension.config import ExtensionConfigManager
EXTENSIONS = set(ExtensionConfigManager(read_config_path=jupyter_config_path())
                 .get_jpserver_extensions())
original_import = importlib.import_module

def import_module(name, package=None):
    if name not in EXTENSIONS or name in sys.modules:
        return original_import(name, package)
    began, rss = time.perf_counter(), rss_mb()
    try:
        return original_import(name, package)
    finally:
        report(ext=name, step="import", s=time.perf_counter() - began, mb=rss_mb() - rss,
               after_answering=STARTED["answering"], t=time.time())

importlib.import_module = import_module

from jupyter_server.serverapp import ServerApp
original_start_app = ServerApp.start_app

def start_app(self):
    original_start_app(self)
    STARTED["answering"] = True  # the HTTP server listens from here on
    report(step="listening", t=time.time(), rss=rss_mb())

ServerApp.start_app = start_app
sys.argv = ["jupyter-lab", "--ip=0.0.0.0", "--port=8888", "--no-browser"] + sys.argv[1:]
from jupyterlab.labapp import main
sys.exit(main())
"""

IMPORT_ALONE = r"""
import json, subprocess, sys
from jupyter_server.extension.config import ExtensionConfigManager
from jupyter_core.paths import jupyter_config_path
names = sorted(n for n, on in ExtensionConfigManager(read_config_path=jupyter_config_path())
               .get_jpserver_extensions().items())
code = "import importlib, sys, time; t = time.perf_counter(); " \
       "importlib.import_module(sys.argv[1]); print(time.perf_counter() - t)"
for name in names:
    out = subprocess.run([sys.executable, "-c", code, name], capture_output=True, text=True)
    print(json.dumps({"ext": name, "s": float(out.stdout.strip() or "nan")}), flush=True)
"""


def docker(*args: str, check: bool = True) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True,
                          check=check).stdout.strip()


def server_rss_mb(name: str) -> float:
    """VmRSS of the container's jupyter server: the largest process whose command line
    holds the probe (tini's, PID 1, holds it too)."""
    code = (
        "import glob\n"
        "for path in glob.glob('/proc/[0-9]*'):\n"
        "    try:\n"
        "        cmd = open(path + '/cmdline', 'rb').read()\n"
        "        if b'ExtensionManager' in cmd:\n"
        "            for line in open(path + '/status'):\n"
        "                if line.startswith('VmRSS:'): print(int(line.split()[1]) / 1024)\n"
        "    except OSError: pass\n"
    )
    return max(map(float, docker("exec", name, "python", "-c", code).split()))


def get(port: int, path: str) -> int:
    """GET a path of the server (following redirects); its HTTP status, 0 if none."""
    separator = "&" if "?" in path else "?"
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}{separator}token={TOKEN}",
                                    timeout=120) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


def records(name: str) -> list[dict]:
    logs = subprocess.run(["docker", "logs", name], capture_output=True, text=True)
    return [json.loads(line.split("PHEXT ", 1)[1]) for line in logs.stderr.splitlines()
            if line.startswith("PHEXT ")]


def started_at(docker_time: str) -> float:
    """Docker's StartedAt (RFC 3339, nanoseconds) as a time.time()."""
    return datetime.fromisoformat(docker_time[:26].rstrip("Z") + "+00:00").timestamp()


def one_start(image: str, name: str, first_use: str) -> dict:
    """Start the server once: container start -> answering, the idle RSS, then a first
    use (GET `first_use`), how long it took and the RSS after it."""
    docker("run", "-d", "--name", name, "-p", "127.0.0.1::8888", image, "python", "-c",
           PROBE, f"--IdentityProvider.token={TOKEN}")
    try:
        started = docker("inspect", "--format", "{{.State.StartedAt}}", name)
        port = int(docker("port", name, "8888/tcp").splitlines()[0].rsplit(":", 1)[1])
        deadline = time.monotonic() + TIMEOUT
        while get(port, "/api/status") != 200:
            if time.monotonic() > deadline:
                raise SystemExit(f"{image} did not answer within {TIMEOUT}s:\n"
                                 + subprocess.run(["docker", "logs", "--tail", "40", name],
                                                  capture_output=True, text=True).stderr)
            time.sleep(0.1)
        answered = time.time()  # the host's and the container's clocks are the same clock
        time.sleep(IDLE_SECONDS)
        idle_rss = server_rss_mb(name)
        began = time.perf_counter()
        status = get(port, first_use)
        first_use_s = time.perf_counter() - began
        time.sleep(IDLE_SECONDS / 2)
        return {"answering": answered - started_at(started), "idle_rss": idle_rss,
                "status": status, "first_use": first_use_s, "used_rss": server_rss_mb(name),
                "steps": records(name)}
    finally:
        docker("rm", "-f", name, check=False)


def per_extension(steps: list[dict]) -> dict[str, dict]:
    """{extension: seconds per step, RSS added, loaded after the server answered}."""
    table: dict[str, dict] = {}
    for step in steps:
        if "ext" not in step:
            continue
        row = table.setdefault(step["ext"], {"import": 0.0, "link": 0.0, "load": 0.0,
                                             "start": 0.0, "mb": 0.0, "deferred": False})
        row[step["step"]] += step["s"]
        row["mb"] += step["mb"]
        row["deferred"] |= step["after_answering"] and step["step"] in ("import", "load")
    return table


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
               platform.processor())
    return (f"{cpu}, {os.cpu_count()} cores, Docker "
            f"{docker('version', '--format', '{{.Server.Version}}', check=False)}")


def median(values) -> float:
    return statistics.median(list(values))


def report_image(label: str, image: str, runs: list[dict], alone: dict[str, float],
                 first_use: str) -> None:
    print(f"\n{label}: {image}")
    tables = [per_extension(run["steps"]) for run in runs]
    print(f"{'extension':30} {'import':>6} {'link':>5} {'load':>5} {'start':>5} {'total':>5} "
          f"{'RSS MB':>6}  {'loaded':10}" + (f" {'alone':>5}" if alone else ""))
    for name in sorted(tables[0], key=lambda name: (tables[0][name]["deferred"], name)):
        parts = [median(table.get(name, {}).get(key, 0.0) for table in tables)
                 for key in ("import", "link", "load", "start")]
        mb = median(table.get(name, {}).get("mb", 0.0) for table in tables)
        when = "first use" if tables[0][name]["deferred"] else "at start"
        line = (f"{name:30} {parts[0]:6.2f} {parts[1]:5.2f} {parts[2]:5.2f} {parts[3]:5.2f} "
                f"{sum(parts[:3]):5.2f} {mb:6.0f}  {when:10}")
        print(line + (f" {alone.get(name, float('nan')):5.2f}" if alone else ""))
    answering = [run["answering"] for run in runs]
    print(f"container start -> /api/status answering: median {median(answering):.1f} s "
          f"({', '.join(f'{value:.1f}' for value in answering)})")
    print(f"idle RSS of the server, {IDLE_SECONDS} s after answering: median "
          f"{median(run['idle_rss'] for run in runs):.0f} MB")
    print(f"first use, GET {first_use} -> HTTP {runs[0]['status']}: median "
          f"{median(run['first_use'] for run in runs):.1f} s; RSS after it: median "
          f"{median(run['used_rss'] for run in runs):.0f} MB")


def import_alone(image: str, name: str) -> dict[str, float]:
    out = docker("run", "--rm", "--name", name, image, "python", "-c", IMPORT_ALONE)
    return {row["ext"]: row["s"] for row in map(json.loads, out.splitlines())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    stack = ComposeStack.load(str(REPO / "stack.env"), os.environ, required=False)
    parser.add_argument("--image", default=stack.image("singleuser"),
                        help="the batteries single-user image")
    parser.add_argument("--lean-image", default=stack.value("SINGLEUSER_BASE_IMAGE"),
                        help="the image to compare with (default: the single-user base)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--first-use", default="/api/jupyternaut/config",
                        help="the request that counts as the first use of the AI assistant")
    parser.add_argument("--import-alone", action="store_true",
                        help="also time each extension's import in a fresh interpreter")
    args = parser.parse_args()
    prefix = "phext" + secrets.token_hex(3)

    print(f"machine: {machine()}")
    results = {}
    for label, image in (("lean", args.lean_image), ("batteries", args.image)):
        runs = [one_start(image, f"{prefix}-{label}{run}", args.first_use)
                for run in range(args.runs)]
        alone = import_alone(image, f"{prefix}-{label}-alone") if args.import_alone else {}
        report_image(label, image, runs, alone, args.first_use)
        results[label] = runs
    ratios = {key: median(run[key] for run in results["batteries"])
              / median(run[key] for run in results["lean"])
              for key in ("answering", "idle_rss")}
    print(f"\nbatteries / lean: answering {ratios['answering']:.2f}x, "
          f"idle RSS {ratios['idle_rss']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
