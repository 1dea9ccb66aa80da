"""Where a checkout keeps what `./hub try` and `./hub test` install and start, and where
the PostgreSQL server binaries are.

`./hub` reads these through `personal-hub dev-env` (sh assignments), the test tiers
import them: one answer for both. Standard library only, Python 3.9 and newer.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
from collections.abc import Mapping
from pathlib import Path

from .variables import BY_NAME

VENV = ".venv"
# Everything ./hub creates besides the venv (git-ignored).
STATE_DIR = ".personal-hub"
LOCAL_DATA_DIR = f"{STATE_DIR}/data"
CHP_DIR = f"{STATE_DIR}/chp"
DOCKERD_DIR = f"{STATE_DIR}/dockerd"
# A Docker engine that `./hub test` starts gets its own address pools, which keeps the
# test networks clear of the host's networks.
DOCKERD_CONFIG = {
    "bip": "10.213.0.1/24",
    "default-address-pools": [{"base": "10.214.0.0/16", "size": 24}],
}
# Debian installs each PostgreSQL major version's server binaries under here.
POSTGRES_LIB = "/usr/lib/postgresql"


def chp_version() -> str:
    """The configurable-http-proxy version of the stack's proxy image (npm uses the same)."""
    return BY_NAME["CHP_IMAGE"].default.rpartition(":")[2]


def _major_version(directory: Path) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in directory.name.split("."))
    except ValueError:
        return ()


def postgres_bin_dir(
    lib: str | Path = POSTGRES_LIB, path: str | None = None
) -> Path | None:
    """The directory of the PostgreSQL server binaries (`initdb`, `postgres`, `pg_ctl`).

    The newest `<lib>/<major>/bin` that has an executable `initdb` (Debian keeps them off
    PATH), else the directory of `initdb` on `path` (default: PATH), else None.
    """
    candidates = sorted(
        (entry for entry in Path(lib).glob("*") if entry.is_dir()),
        key=_major_version,
        reverse=True,
    )
    for version in candidates:
        initdb = version / "bin" / "initdb"
        if initdb.is_file() and os.access(initdb, os.X_OK):
            return initdb.parent
    found = shutil.which("initdb", path=path)
    return Path(found).parent if found else None


def dev_env(root: Path, postgres_lib: str | Path = POSTGRES_LIB) -> dict[str, str]:
    """Absolute paths (and the CHP version) that `./hub try` and `./hub test` use."""
    root = root.resolve()
    postgres = postgres_bin_dir(postgres_lib)
    return {
        "VENV": str(root / VENV),
        "CHP_DIR": str(root / CHP_DIR),
        "CHP_VERSION": chp_version(),
        "LOCAL_DATA_DIR": str(root / LOCAL_DATA_DIR),
        "DOCKERD_DIR": str(root / DOCKERD_DIR),
        "DOCKERD_CONFIG": json.dumps(DOCKERD_CONFIG, separators=(",", ":")),
        "POSTGRES_BIN": str(postgres) if postgres else "",
    }


def shell_assignments(values: Mapping[str, str]) -> str:
    """`NAME='value'` lines that sh can `eval` (every value quoted)."""
    return "".join(f"{name}={shlex.quote(value)}\n" for name, value in values.items())
