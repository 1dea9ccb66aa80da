"""The Swarm tier: the stack deployed with `docker stack deploy` (HUB_SPAWNER=swarm) on a
single-node swarm the test makes (or the engine's own swarm, left as it was).

Home volumes are on "shared storage": a directory of the test bound through the local
driver's options, as a NAS mounted at the same path on every node would be, so a home
volume made afresh (as on a node that never ran the user's server) finds the files.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from tests.docker.conftest import (  # noqa: F401 - standins is a fixture used by name
    Stack,
    container_logs,
    managed,
    remove_docker_objects,
    run,
    standins,
)
from tests.helpers import require

# Overlay networks of a swarm made here come from this pool (clear of the engine's own
# address pools and of the host's networks).
SWARM_ADDRESS_POOL = "10.215.0.0/16"


def node_labels(node: str) -> dict[str, str]:
    spec = json.loads(run(["docker", "node", "inspect", node]).stdout)[0]["Spec"]
    return spec.get("Labels") or {}


@pytest.fixture(scope="module")
def swarm_node(standins) -> str:  # noqa: F811 - the fixture imported above
    """The id of this engine's node in a swarm: made here if the engine is in none (and
    left at the end), else the existing one, whose labels are put back as they were."""
    state = run(["docker", "info", "--format", "{{.Swarm.LocalNodeState}}"]).stdout.strip()
    require(state in ("inactive", "active"), f"the engine's swarm state is {state!r}")
    made = state == "inactive"
    if made:
        run(["docker", "swarm", "init", "--advertise-addr", "127.0.0.1",
             "--default-addr-pool", SWARM_ADDRESS_POOL, "--default-addr-pool-mask-length",
             "24"])
    node = run(["docker", "info", "--format", "{{.Swarm.NodeID}}"]).stdout.strip()
    labels = node_labels(node)
    try:
        yield node
    finally:
        if made:
            run(["docker", "swarm", "leave", "--force"], check=False, timeout=120)
        else:
            added = set(node_labels(node)) - set(labels)
            for label in added:
                run(["docker", "node", "update", "--label-rm", label, node], check=False)
            for label, value in labels.items():
                run(["docker", "node", "update", "--label-add", f"{label}={value}", node],
                    check=False)


class SwarmStack(Stack):
    """A fresh copy of the repository deployed to Swarm with `./hub up`."""

    def __init__(self, images: dict[str, str]):
        super().__init__(images)
        self.homes = Path(tempfile.mkdtemp(prefix=f"{self.prefix}-homes-"))
        # The notebook user makes their directory there (the docs' NAS setup).
        os.chown(self.homes, 1000, 100)

    def environ(self) -> dict[str, str]:
        # No HUB_PUBLISH_ADDRESS: Swarm publishes on every interface; tests use 127.0.0.1.
        return {**super().environ(), "HUB_SPAWNER": "swarm"}

    def write_settings(self, **values: str) -> None:
        """A stack.env made by `personal-hub init`, with the Swarm settings of the test."""
        run([sys.executable, "-m", "personal_hub", "init", "--env-file", "stack.env"],
            cwd=self.repo, env={**self.environ(), "PYTHONPATH": str(self.repo)})
        self.set_env(
            HUB_SPAWNER="swarm",
            HUB_EGRESS="none",
            HUB_HOME_VOLUME_OPTIONS=f"type=none o=bind device={self.homes}/{{username}}",
            **values,
        )

    def service(self, name: str) -> str:
        return f"{self.prefix}_{name}"

    def services(self) -> list[str]:
        listed = run(["docker", "service", "ls", "--format", "{{.Name}}"], check=False)
        return [name for name in listed.stdout.split() if self.owns(name)]

    def live_logs(self) -> list[tuple[str, str]]:
        logs = [(f"docker service logs {name} (tail)",
                 run(["docker", "service", "logs", "--tail", "80", name], check=False).stdout)
                for name in self.services()]
        tasks = run(["docker", "stack", "ps", "--no-trunc", self.prefix], check=False).stdout
        return [*logs, ("docker stack ps", tasks), *super().live_logs()]

    def save_logs(self) -> None:
        with open(self.log_path, "a") as log:
            for title, text in self.live_logs():
                log.write(f"\n--- {title}\n{text[-10000:]}")

    def owns(self, name: str) -> bool:
        return super().owns(name) or name.startswith(f"jupyter-{self.prefix}")

    def cleanup(self) -> None:
        for name in self.services():
            if name.startswith("jupyter-"):
                run(["docker", "service", "rm", name], check=False)
        run(["docker", "stack", "rm", self.prefix], check=False, timeout=120)
        # Tasks end after `stack rm` returns; their containers go with them.
        for _ in range(60):
            if not [n for n in run(["docker", "ps", "-a", "--format", "{{.Names}}"],
                                   check=False).stdout.split() if self.owns(n)]:
                break
            run(["sleep", "1"])
        remove_docker_objects(self.owns)
        for volume in run(["docker", "volume", "ls", "-q"], check=False).stdout.split():
            if volume.startswith("personal-hub-homes-") and self.homes_root_volume(volume):
                run(["docker", "volume", "rm", "-f", volume], check=False)
        shutil.rmtree(self.homes, ignore_errors=True)
        super().cleanup()

    def homes_root_volume(self, volume: str) -> bool:
        """Whether `volume` is the volume of this stack's homes directory."""
        found = run(["docker", "volume", "inspect", volume], check=False)
        if found.returncode != 0:
            return False
        options = json.loads(found.stdout)[0].get("Options") or {}
        return options.get("device") == str(self.homes)


@pytest.fixture(scope="module")
def swarm_stack(standins, swarm_node):  # noqa: F811 - the fixture imported above
    with managed(SwarmStack(standins)) as stack:
        yield stack


@contextlib.contextmanager
def node_label(node: str, label: str):
    """A label on the node while in use."""
    run(["docker", "node", "update", "--label-add", f"{label}=true", node])
    try:
        yield
    finally:
        run(["docker", "node", "update", "--label-rm", label, node], check=False)
