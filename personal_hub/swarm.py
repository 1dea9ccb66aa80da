"""Docker Swarm facts shared by the hub (`personal-hub run`) and `./hub up`: the users'
overlay network and the node that keeps the hub's state.

On Swarm the egress policy is the users' network itself: `none` makes it an internal
overlay network (Docker then gives its containers no way out, on every node), `all`
an ordinary one. The network is made before the stack is deployed (the stack file names
it as external), so the hub checks at start-up that it is what HUB_EGRESS says.
Standard library only: `./hub up` runs this with the host's python3.
"""

from __future__ import annotations

from collections.abc import Mapping

# What compose/swarm.yml's hub service sets over stack.env (besides HUB_DOCKER_NETWORK),
# for a one-off container of the hub image that must see what the hub sees.
HUB_WIRING = {
    "HUB_SPAWNER": "swarm",
    "HUB_DATA_DIR": "/srv/jupyterhub",
    "POSTGRES_HOST": "db",
    "POSTGRES_PORT": "5432",
}
# The node label that pins the hub, its proxy and its database (and their volumes).
STATE_LABEL = "personal-hub.state"
STACK_FILE = "compose/swarm.yml"
# Added when JUPYTER_DOMAIN is set: Traefik's Swarm provider routes that domain to the proxy.
TRAEFIK_STACK_FILE = "compose/swarm-traefik.yml"


def users_network_internal(egress: str) -> bool:
    """Whether HUB_EGRESS asks for an internal users' network (reaching nothing else)."""
    return egress == "none"


def network_create_command(name: str, egress: str) -> list[str]:
    """`docker network create` of the users' overlay network: attachable, so the hub's
    services can run their containers on it."""
    command = ["docker", "network", "create", "--driver", "overlay", "--attachable"]
    if users_network_internal(egress):
        command.append("--internal")
    return [*command, name]


def network_problem(network: Mapping | None, name: str, egress: str) -> str | None:
    """What is wrong with the users' network (`docker network inspect`'s object, or None
    when it does not exist) for HUB_EGRESS=`egress`, with the fix; None when it is right."""
    if network is None:
        return (f"the users' network {name} does not exist. Fix: "
                f"{' '.join(network_create_command(name, egress))} (./hub up does it).")
    if network.get("Driver") != "overlay" or network.get("Scope") != "swarm":
        return (f"the users' network {name} is a {network.get('Driver')} network, not a Swarm "
                "overlay network. Fix: stop what uses it (./hub down), remove it (docker "
                "network rm), and start again with ./hub up.")
    internal = bool(network.get("Internal"))
    if internal != users_network_internal(egress):
        wanted = "internal" if users_network_internal(egress) else "not internal"
        return (f"the users' network {name} is {'internal' if internal else 'not internal'} "
                f"but HUB_EGRESS={egress} needs it {wanted}. Fix: ./hub down, docker network "
                f"rm {name}, then ./hub up (it makes the network as HUB_EGRESS says).")
    return None
