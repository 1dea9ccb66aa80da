#!/usr/bin/env python3
"""Time from login to the user's server answering through the proxy.

Against a running stack (`./hub up`), from the repository root:

    python3 bench/spawn_time.py --runs 5

Two figures, each the median of --runs runs:
- first spawn: a new user logs in; the timer stops when the user's own server answers
  `/user/<name>/api/status` through the proxy (new home volume, image already built);
- respawn: the same user's server is stopped (container removed) and started again.
The machine (CPU, cores, Docker version) is printed with the figures. Bench users are
named `bench<hex>…`; they, their containers and their home volumes are removed afterwards.
"""

from __future__ import annotations

import argparse
import os
import platform
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from personal_hub.envfile import read_env_file  # noqa: E402
from personal_hub.stack import ComposeStack  # noqa: E402
from tests import helpers  # noqa: E402 - the tests' login, as a browser does it

TIMEOUT = 300


def login(url: str, username: str, password: str) -> requests.Session:
    session, response = helpers.login(url, username, password)
    if response.status_code != 302:
        raise SystemExit(f"login as {username} failed with HTTP {response.status_code}")
    return session


def wait_until_serving(session: requests.Session, url: str, user: str) -> None:
    """Poll the hub (one light API call every 0.2 s, as the spawn page does) until the
    server is ready, then load it through the proxy: /lab completes the OAuth handshake,
    and the clock stops when /api/status answers. Heavier polling would slow the very
    start it measures on a small machine."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        model = session.get(f"{url}/hub/api/users/{user}", headers=xsrf_header(session),
                            timeout=30)
        if model.status_code == 200 and model.json().get("servers", {}).get("", {}).get("ready"):
            break
        time.sleep(0.2)
    else:
        raise SystemExit(f"{user}'s server was not ready within {TIMEOUT}s")
    page = session.get(f"{url}/user/{user}/lab", timeout=30)
    status = session.get(f"{url}/user/{user}/api/status", timeout=30)
    if page.status_code != 200 or status.status_code != 200:
        raise SystemExit(f"{user}'s server is ready but answered {page.status_code}/"
                         f"{status.status_code} through the proxy")


def xsrf_header(session: requests.Session) -> dict[str, str]:
    return {"X-XSRFToken": helpers.xsrf_from(session)}


def container_gone(user: str) -> bool:
    return subprocess.run(["docker", "inspect", f"jupyter-{user}"],
                          capture_output=True).returncode != 0


def first_spawn(url: str, user: str, password: str) -> tuple[float, requests.Session]:
    start = time.perf_counter()
    session = login(url, user, password)
    session.get(f"{url}/hub/spawn", timeout=TIMEOUT)
    wait_until_serving(session, url, user)
    return time.perf_counter() - start, session


def respawn(url: str, user: str, session: requests.Session) -> float:
    session.delete(f"{url}/hub/api/users/{user}/server", headers=xsrf_header(session), timeout=60)
    deadline = time.monotonic() + 60
    while not container_gone(user):
        if time.monotonic() > deadline:
            raise SystemExit(f"{user}'s container was not removed")
        time.sleep(0.2)
    start = time.perf_counter()
    session.post(f"{url}/hub/api/users/{user}/server", headers=xsrf_header(session), timeout=60)
    wait_until_serving(session, url, user)
    return time.perf_counter() - start


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if "model name" in line)
    except (OSError, StopIteration):
        pass
    docker = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"],
                            capture_output=True, text=True).stdout.strip()
    return f"{cpu}, {os.cpu_count()} cores, Docker engine {docker or 'unknown'}"


def cleanup(url: str, env: dict[str, str], users: list[str]) -> None:
    """Remove the bench users from the hub, then their containers and home volumes."""
    admin_name = env.get("JUPYTER_ADMIN_USER")
    if admin_name and env.get("JUPYTER_ADMIN_PASSWORD"):
        admin = login(url, admin_name, env["JUPYTER_ADMIN_PASSWORD"])
        admin.get(f"{url}/hub/home", timeout=30)  # a page load refreshes the XSRF cookie
        for user in users:
            admin.delete(f"{url}/hub/api/users/{user}", headers=xsrf_header(admin), timeout=60)
    for user in users:
        subprocess.run(["docker", "rm", "-f", f"jupyter-{user}"], capture_output=True)
        deadline = time.monotonic() + 30
        # The engine releases the volume once the container is really gone.
        while subprocess.run(["docker", "volume", "rm", "-f", f"jupyterhub-user-{user}"],
                             capture_output=True).returncode != 0:
            if time.monotonic() > deadline:
                print(f"warning: could not remove volume jupyterhub-user-{user}", file=sys.stderr)
                break
            time.sleep(0.5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env-file", default="stack.env", help="the stack's env file")
    parser.add_argument("--url", help="hub URL (default: where ./hub up published it)")
    parser.add_argument("--runs", type=int, default=5, help="runs per figure (median)")
    args = parser.parse_args()
    env = read_env_file(Path(args.env_file))
    url = args.url or ComposeStack(args.env_file, env, os.environ).url
    prefix = "bench" + secrets.token_hex(3)
    firsts, respawns, users = [], [], []
    try:
        for run in range(args.runs):
            user = f"{prefix}u{run}"
            users.append(user)
            elapsed, session = first_spawn(url, user, env["JUPYTER_PASSWORD"])
            firsts.append(elapsed)
            respawns.append(respawn(url, user, session))
            session.delete(f"{url}/hub/api/users/{user}/server", headers=xsrf_header(session),
                           timeout=60)
    finally:
        cleanup(url, env, users)
    print(f"machine: {machine()}")
    print(f"runs: {args.runs}")
    print(f"first spawn (login -> server answering via proxy): median "
          f"{statistics.median(firsts):.2f} s  (all: {', '.join(f'{t:.2f}' for t in firsts)})")
    print(f"respawn (stopped -> server answering via proxy):   median "
          f"{statistics.median(respawns):.2f} s  (all: {', '.join(f'{t:.2f}' for t in respawns)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
