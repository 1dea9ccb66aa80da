"""A git identity for the hub user, once: the Git panel's first commit needs a name and
an e-mail address, and the image's user (jovyan) has neither.

Called at each server start by the image's jupyter_server_config.py: when the person's
~/.gitconfig has no user.name (or user.email), it gets their hub user name
(JUPYTERHUB_USER) and the address the hub passes (EMAIL, a placeholder until they set
their own). A value they set is never changed. Never fails the server's start.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping


def default_identity(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """Set what is missing; returns what was set."""
    wanted = {"user.name": environ.get("JUPYTERHUB_USER", ""),
              "user.email": environ.get("EMAIL", "")}
    done = {}
    for key, value in wanted.items():
        if not value:
            continue
        try:
            present = subprocess.run(["git", "config", "--global", "--get", key],
                                     capture_output=True, timeout=10, env=dict(environ))
            if present.returncode == 1:  # not set (other codes: leave it alone)
                subprocess.run(["git", "config", "--global", key, value], check=True,
                               capture_output=True, timeout=10, env=dict(environ))
                done[key] = value
        except (OSError, subprocess.SubprocessError):
            break  # no git, a read-only home: the Git panel will say so
    return done
