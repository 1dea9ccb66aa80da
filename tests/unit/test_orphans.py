"""Which containers `personal-hub run` removes before the hub starts (the faults tier kills
the hub during a real start)."""

from __future__ import annotations

import json
from types import SimpleNamespace

from personal_hub.orphans import (
    SERVER_LABEL,
    orphan_services,
    orphans,
    recorded_container_ids,
)


def container(name: str, id: str, **labels: str):
    return SimpleNamespace(name=name, id=id, labels=labels)


def test_recorded_ids_come_from_saved_states_in_any_form():
    states = [json.dumps({"object_id": "aaa", "object_name": "jupyter-ann"}),
              {"object_id": "bbb"}, None, "not json", json.dumps({"pid": 12})]
    assert recorded_container_ids(states) == {"aaa", "bbb"}


def test_only_unrecorded_server_containers_are_orphans():
    server = {SERVER_LABEL: "ann"}
    found = orphans(
        [container("jupyter-ann", "aaa", **server), container("jupyter-cat", "ccc", **server),
         container("personal-hub-hub-1", "hhh", **{"com.docker.compose.project": "ph"}),
         container("team-postgres", "ttt"),  # someone's own service on the users' network
         container("jupyter-old", "ooo")],  # a server from before the label: left alone
        recorded={"aaa"},
    )
    assert [c.name for c in found] == ["jupyter-cat"]


def service(name: str, id: str, networks: list[str], **labels: str) -> dict:
    return {"ID": id, "Spec": {"Name": name, "Labels": labels,
                               "TaskTemplate": {"Networks": [{"Target": n} for n in networks]}}}


def test_only_unrecorded_server_services_on_the_users_network_are_orphans():
    server = {SERVER_LABEL: "ann"}
    found = orphan_services(
        [service("jupyter-ann", "aaa", ["users"], **server),
         service("jupyter-cat", "ccc", ["users"], **server),
         service("jupyter-dan", "ddd", ["another-hubs-users"], **server),
         service("personal-hub_hub", "hhh", ["users", "db"]),
         service("team-postgres", "ttt", ["users"])],
        "users", recorded={"aaa"})
    assert [s["Spec"]["Name"] for s in found] == ["jupyter-cat"]
