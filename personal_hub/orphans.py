"""Server containers the hub has no record of, removed before it starts.

The hub records a server (and its container's id) only once the start has finished. If
the hub dies in between (killed, out of memory, the host lost power), the container
keeps running, but no route and no record lead to it: nobody can reach it, and the idle
culler cannot see it. `personal-hub run` removes such containers before JupyterHub
starts, when no start can be under way. The user's files stay in their volume; their
next visit starts a new server.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

# On every server container PersonalDockerSpawner creates: "<user>" or "<user>:<server>".
SERVER_LABEL = "personal-hub.server"


def recorded_container_ids(states: Iterable[str | Mapping | None]) -> set[str]:
    """Container ids in the saved states of spawners that have a server."""
    ids = set()
    for state in states:
        if isinstance(state, str):
            try:
                state = json.loads(state)
            except ValueError:
                continue
        if isinstance(state, Mapping) and state.get("object_id"):
            ids.add(state["object_id"])
    return ids


def orphans(containers: Iterable, recorded: set[str]) -> list:
    """Server containers (with our label: never the stack's services, nor anything else
    someone attached to the users' network) that the hub has no record of."""
    return [container for container in containers
            if SERVER_LABEL in (container.labels or {}) and container.id not in recorded]


def recorded_states(db_url: str) -> list:
    """Saved states of the spawners that have a server; none when the database has no
    hub tables yet (a first start)."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(db_url)
    try:
        with engine.connect() as connection:
            if not sqlalchemy.inspect(connection).has_table("spawners"):
                return []
            rows = connection.execute(sqlalchemy.text(
                "SELECT state FROM spawners WHERE server_id IS NOT NULL"))
            return [row[0] for row in rows]
    finally:
        engine.dispose()


def remove_orphans(db_url: str, network: str, log) -> list[str]:
    """Remove the orphaned server containers on `network`; their names."""
    import docker

    recorded = recorded_container_ids(recorded_states(db_url))
    client = docker.from_env()
    try:
        found = orphans(client.containers.list(filters={"network": network}), recorded)
        for container in found:
            container.remove(force=True)
            log(f"removed {container.name}: a server container the hub has no record of "
                "(a start the hub did not live to finish); its files are kept")
        return [container.name for container in found]
    finally:
        client.close()


def orphan_services(services: Iterable[Mapping], network_id: str, recorded: set[str]) -> list:
    """On Swarm: server services (`docker service inspect` objects with our label, on the
    users' network) that the hub has no record of."""
    found = []
    for service in services:
        spec = service.get("Spec") or {}
        networks = [n.get("Target") for n in (spec.get("TaskTemplate") or {}).get("Networks")
                    or ()]
        if (SERVER_LABEL in (spec.get("Labels") or {}) and network_id in networks
                and service.get("ID") not in recorded):
            found.append(service)
    return found


def remove_orphan_services(db_url: str, network: str, log) -> list[str]:
    """Remove the orphaned server services on `network`; their names."""
    import docker

    recorded = recorded_container_ids(recorded_states(db_url))
    client = docker.from_env()
    try:
        network_id = client.api.inspect_network(network)["Id"]
        services = client.api.services(filters={"label": SERVER_LABEL})
        found = orphan_services(services, network_id, recorded)
        for service in found:
            client.api.remove_service(service["ID"])
            log(f"removed {service['Spec']['Name']}: a server service the hub has no record "
                "of (a start the hub did not live to finish); its files are kept")
        return [service["Spec"]["Name"] for service in found]
    finally:
        client.close()
