#!/usr/bin/env python3
"""What the batteries cost, and what building them into the image saves.

    python3 bench/batteries.py --runs 3 [--url http://127.0.0.1:8000]

Reports, in one run on this machine:
- the size of the single-user image and of its base image;
- start to JupyterLab answering, for a container of the built image (packages
  pre-installed), median of --runs;
- the same start when the packages are installed with pip when the container starts
  (how images without the batteries get them): the base image runs `pip install -r
  docker/singleuser-requirements.txt` first. One run: it is slow. The ratio of the two
  is the figure that matters;
- with --url (a running stack, stack.env here): login to the user's JupyterLab
  answering through the proxy, warm image, median of --runs (bench/spawn_time.py's
  measurement).
Containers are named `phbatt<hex>…` and removed afterwards.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from bench.spawn_time import cleanup, first_spawn, machine  # noqa: E402
from personal_hub.stack import ComposeStack  # noqa: E402

TOKEN = secrets.token_hex(16)
LAB = ["jupyter", "lab", "--ip=0.0.0.0", "--port=8888", "--no-browser",
       f"--ServerApp.token={TOKEN}"]


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True,
                          check=True).stdout.strip()


def image_size(image: str) -> int:
    return int(docker("image", "inspect", "--format", "{{.Size}}", image))


def published_port(container: str) -> int:
    return int(docker("port", container, "8888/tcp").splitlines()[0].rsplit(":", 1)[1])


def wait_answering(container: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    port = None
    while time.monotonic() < deadline:
        try:
            port = port or published_port(container)
            url = f"http://127.0.0.1:{port}/api/status?token={TOKEN}"
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except (OSError, subprocess.CalledProcessError, ValueError, IndexError):
            pass
        time.sleep(0.2)
    logs = subprocess.run(["docker", "logs", "--tail", "30", container], capture_output=True,
                          text=True)
    raise SystemExit(f"{container} did not answer within {timeout:.0f}s:\n{logs.stderr[-3000:]}")


def timed_start(name: str, image: str, command: list[str], timeout: float,
                mounts: list[str] = ()) -> float:
    start = time.perf_counter()
    volumes = [arg for mount in mounts for arg in ("-v", mount)]
    docker("run", "-d", "--name", name, "-p", "127.0.0.1::8888", *volumes, image, *command)
    try:
        wait_answering(name, timeout)
        return time.perf_counter() - start
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    # The images ./hub up and ./build.sh use: the shell's names, else stack.env's, else the
    # defaults.
    stack = ComposeStack.load(str(REPO / "stack.env"), os.environ, required=False)
    env = stack.file_values
    parser.add_argument("--image", default=stack.image("singleuser"))
    parser.add_argument("--base", default=stack.value("SINGLEUSER_BASE_IMAGE"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--url", help="a running stack: also time login -> JupyterLab")
    parser.add_argument("--skip-runtime-install", action="store_true",
                        help="leave out the slow pip-at-start comparison")
    args = parser.parse_args()
    prefix = "phbatt" + secrets.token_hex(3)

    size, base_size = image_size(args.image), image_size(args.base)
    prebuilt = [timed_start(f"{prefix}-pre{run}", args.image, LAB, 300)
                for run in range(args.runs)]
    runtime = None
    if not args.skip_runtime_install:
        requirements = REPO / "docker" / "singleuser-requirements.txt"
        command = ["sh", "-c", "pip install --no-cache-dir --quiet -r /tmp/requirements.txt"
                   " && exec " + " ".join(LAB)]
        runtime = timed_start(f"{prefix}-rt", args.base, command, 1800,
                              mounts=[f"{requirements}:/tmp/requirements.txt:ro"])
    logins = []
    if args.url:
        users = [f"{prefix}u{run}" for run in range(args.runs)]
        try:
            for user in users:
                logins.append(first_spawn(args.url, user, env["JUPYTER_PASSWORD"])[0])
        finally:
            cleanup(args.url, env, users)

    print(f"machine: {machine()}")
    print(f"image {args.image}: {size / 1e9:.2f} GB (base {args.base}: {base_size / 1e9:.2f} GB,"
          f" batteries add {(size - base_size) / 1e9:.2f} GB)")
    print(f"container start -> JupyterLab answering, packages in the image: median "
          f"{statistics.median(prebuilt):.1f} s over {len(prebuilt)} runs")
    if runtime is not None:
        print(f"container start -> JupyterLab answering, packages installed at start: "
              f"{runtime:.1f} s ({runtime / statistics.median(prebuilt):.0f}x slower)")
    if logins:
        print(f"login -> own JupyterLab answering through the proxy (warm image): median "
              f"{statistics.median(logins):.1f} s over {len(logins)} runs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
