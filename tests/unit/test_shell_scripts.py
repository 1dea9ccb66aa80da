"""Every shell script of the checkout passes shellcheck, and stays thin: what the stack
is (compose files, image names and bases, paths) lives in personal_hub, not in sh."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from personal_hub.variables import BY_NAME
from tests.helpers import require

REPO = Path(__file__).resolve().parents[2]
SHELL_SHEBANG = re.compile(rb"^#!\s*(/usr)?/bin/(env\s+)?(sh|bash|dash|ash|ksh)\b")


def checkout_files() -> list[Path]:
    """Tracked files and new ones not ignored: a fresh clone's files."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO, capture_output=True, check=True,
    ).stdout.decode().split("\0")
    return [REPO / name for name in listed if name and (REPO / name).is_file()]


def is_shell_script(path: Path) -> bool:
    if path.suffix == ".sh":
        return True
    with open(path, "rb") as file:
        return bool(SHELL_SHEBANG.match(file.readline()))


SHELL_SCRIPTS = sorted(path for path in checkout_files() if is_shell_script(path))


def test_the_known_scripts_are_found():
    found = {str(path.relative_to(REPO)) for path in SHELL_SCRIPTS}
    assert {"hub", "build.sh", ".ci/run", "tests/standins/build.sh"} <= found


@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=lambda path: str(path.relative_to(REPO)))
def test_shellcheck(script):
    shellcheck = shutil.which("shellcheck")
    require(shellcheck is not None, "shellcheck is not installed (./hub test installs it)")
    result = subprocess.run([shellcheck, "--external-sources", str(script)], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("script", ["hub", "build.sh"])
def test_scripts_do_not_repeat_what_personal_hub_knows(script):
    text = (REPO / script).read_text()
    for name in ("HUB_SINGLEUSER_IMAGE", "SINGLEUSER_BASE_IMAGE", "HUB_IMAGE", "PYTHON_IMAGE",
                 "CHP_IMAGE", "HUB_PUBLISH_PORT"):
        assert BY_NAME[name].default not in text, f"{script} repeats the default of {name}"
    for fact in ("compose/", ".personal-hub/", "/usr/lib/postgresql", "default-address-pools"):
        assert fact not in text, f"{script} repeats {fact!r} (personal_hub knows it)"


def test_ci_never_lets_a_tier_skip():
    """tests/helpers.py's require() fails instead of skipping when CI is set."""
    result = subprocess.run(
        ["sh", "-c", 'sed "s#^exec .*#echo CI=\\$CI#; s#^cd .*##" "$1" | sh', "sh",
         str(REPO / ".ci/run")],
        env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, check=True,
    )
    assert result.stdout.strip() == "CI=true"
