"""Write docker/singleuser-constraints.txt: every package the single-user image installs
besides its requirements and the base's data stack, at versions resolved together.

    python3 docker/pin-singleuser.py [--python-version 3.11.2] [--base-stack FILE]
                                     [--constraint FILE ...]

Run it after changing docker/singleuser-requirements.txt. `--python-version` is the
base image's Python (`docker run --rm <base> python --version`); `--base-stack` a file
of the base's data stack (`pip list --format=freeze` in the base, the lines the
Dockerfile keeps), which the resolution must fit; `--constraint` a file of bounds that
steer pip past releases it cannot install (e.g. `langchain-core<=1.8.0` on 2026-12-04:
1.8.4 needs a langchain-protocol the index did not serve). Standard library and pip only.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REQUIREMENTS = HERE / "singleuser-requirements.txt"
CONSTRAINTS = HERE / "singleuser-constraints.txt"
# The base's data stack: the Dockerfile keeps the base's own versions (its grep list).
BASE_STACK = {"numpy", "pandas", "scipy", "scikit-learn", "matplotlib", "seaborn",
              "statsmodels", "sqlalchemy", "ipywidgets", "numba", "pyarrow"}
HEADER = """\
# Every other package the single-user image installs, at the versions resolved together
# with docker/singleuser-requirements.txt (Python {python}, x86_64), so that pip never has
# to search: with newer releases whose dependencies the package index does not serve, it
# backtracked for more than an hour. The base image's data stack (numpy, pandas, scipy,
# ...) is not here: the Dockerfile keeps the base's own versions of it.
# Made by `python3 docker/pin-singleuser.py`; run it again after changing the requirements.
"""


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_names(text: str) -> set[str]:
    names = set()
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.add(canonical(re.split(r"[\[=<>~! ]", line, maxsplit=1)[0]))
    return names


def pins(report: dict, leave_out: set[str]) -> list[str]:
    """`name==version` of every package pip would install, but those in `leave_out`."""
    found = sorted((canonical(item["metadata"]["name"]), item["metadata"]["version"])
                   for item in report["install"])
    return [f"{name}=={version}" for name, version in found if name not in leave_out]


def resolve(python_version: str, constraints: list[Path]) -> dict:
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch, "report.json")
        command = [sys.executable, "-m", "pip", "install", "--quiet", "--dry-run",
                   "--ignore-installed", "--python-version", python_version,
                   "--only-binary=:all:", "--target", str(Path(scratch, "target")),
                   "--report", str(report), "--requirement", str(REQUIREMENTS)]
        for constraint in constraints:
            command += ["--constraint", str(constraint)]
        subprocess.run(command, check=True)
        return json.loads(report.read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python-version", default="3.11.2")
    parser.add_argument("--base-stack", type=Path)
    parser.add_argument("--constraint", type=Path, action="append", default=[])
    args = parser.parse_args()
    report = resolve(args.python_version,
                     [*([args.base_stack] if args.base_stack else []), *args.constraint])
    leave_out = BASE_STACK | requirement_names(REQUIREMENTS.read_text())
    lines = pins(report, leave_out)
    CONSTRAINTS.write_text(HEADER.format(python=args.python_version) + "\n".join(lines) + "\n")
    print(f"wrote {CONSTRAINTS.name}: {len(lines)} packages", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
