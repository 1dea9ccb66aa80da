"""Home volumes on shared storage (HUB_HOME_VOLUME_DRIVER, HUB_HOME_VOLUME_OPTIONS).

With driver options, a user's home volume is a view of one directory on shared storage
(an NFS export, a share every node mounts at the same path), so whichever host or Swarm
node runs their server, and whichever creates the volume there, finds the same files.
Such a directory must exist before a volume can mount it: the spawner makes it through
a volume of the parent directory (`user_directory`). Pure functions; the spawner does
the Docker calls.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

from .parsers import USERNAME_PLACEHOLDER

LOCAL_DRIVER = "local"
DEVICE_OPTION = "device"
# The volume of the directory that holds every user's directory: named after its driver
# and options, so that changed options never reuse a volume made with the old ones.
ROOT_VOLUME_PREFIX = "personal-hub-homes-"


def is_shared(driver: str, options: Mapping[str, str]) -> bool:
    """Whether home volumes are anything but Docker's plain local volumes."""
    return driver != LOCAL_DRIVER or bool(options)


def for_user(options: Mapping[str, str], username: str) -> dict[str, str]:
    """The driver options of one user's volume: {username} is their escaped name."""
    return {key: value.replace(USERNAME_PLACEHOLDER, username) for key, value in options.items()}


@dataclass(frozen=True)
class UserDirectory:
    """Where a user's directory is made: a volume of its parent, and its name there."""

    root_volume: str
    root_options: dict
    name: str


def user_directory(driver: str, options: Mapping[str, str], username: str) -> UserDirectory | None:
    """The directory to make before a user's first start, when the `device` option ends
    in /{username} (an NFS export's or a shared path's sub-directory); else None: the
    storage needs no directory per user, or the administrator makes them."""
    device = options.get(DEVICE_OPTION, "")
    parent, slash, last = device.rpartition("/")
    if not slash or last != USERNAME_PLACEHOLDER or USERNAME_PLACEHOLDER in parent:
        return None
    root_options = {**options, DEVICE_OPTION: parent or "/"}
    if any(USERNAME_PLACEHOLDER in value for value in root_options.values()):
        return None  # the parent differs per user too: nothing shared to make it in
    digest = hashlib.sha256(json.dumps([driver, root_options], sort_keys=True).encode())
    return UserDirectory(f"{ROOT_VOLUME_PREFIX}{digest.hexdigest()[:12]}", root_options,
                         username)


def volume_mismatch(volume: Mapping, driver: str, options: Mapping[str, str]) -> str | None:
    """Why an existing volume (as `docker volume inspect` shows it) is not the one the
    settings describe, or None when it is."""
    found_driver = volume.get("Driver") or LOCAL_DRIVER
    found_options = volume.get("Options") or {}
    if found_driver != driver:
        return f"its driver is {found_driver}, not {driver}"
    if dict(found_options) != dict(options):
        shown = " ".join(f"{key}={value}" for key, value in found_options.items()) or "none"
        return f"its options are {shown}"
    return None
