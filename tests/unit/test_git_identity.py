"""The single-user image gives git the hub user's name and the hub's placeholder address
once, and never changes what the person set (docker/singleuser/personal_hub_git.py)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import image_module


@pytest.fixture(scope="module")
def git_identity():
    return image_module("personal_hub_git")


def config(home: Path, key: str) -> str:
    return subprocess.run(["git", "config", "--global", "--get", key], capture_output=True,
                          text=True, env={"HOME": str(home), "PATH": "/usr/bin:/bin"}
                          ).stdout.strip()


@pytest.fixture
def environ(tmp_path):
    if shutil.which("git") is None:
        pytest.fail("git is not installed")
    return {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "JUPYTERHUB_USER": "ann",
            "EMAIL": "ann@personal-hub.invalid"}


def test_a_first_identity_from_the_hub(git_identity, environ, tmp_path):
    assert git_identity.default_identity(environ) == {
        "user.name": "ann", "user.email": "ann@personal-hub.invalid"}
    assert config(tmp_path, "user.name") == "ann"
    assert git_identity.default_identity(environ) == {}  # once


def test_what_the_person_set_stays(git_identity, environ, tmp_path):
    subprocess.run(["git", "config", "--global", "user.email", "ann@example.org"],
                   env=environ, check=True)
    assert git_identity.default_identity(environ) == {"user.name": "ann"}
    assert config(tmp_path, "user.email") == "ann@example.org"


def test_no_git_is_no_error(git_identity, environ):
    assert git_identity.default_identity({**environ, "PATH": "/nonexistent"}) == {}
