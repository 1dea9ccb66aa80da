"""Log everyone out and revoke every credential issued so far, keeping users and files.

For "someone left": run with the hub stopped, after the shared password changed. It
gives every user a new cookie id (every login cookie stops working), deletes every
token that belongs to a user (API tokens, OAuth tokens of shares and servers, servers'
own tokens) and every pending OAuth code, stops every running user server (its token is
gone; its files stay in the home volume) and removes the cookie secret, which the hub
then makes anew. Users, shares, groups, roles and service tokens are kept.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

COOKIE_SECRET_FILE = "jupyterhub_cookie_secret"


@dataclass(frozen=True)
class Revoked:
    users: int
    tokens: int
    servers: list[str]

    def summary(self) -> str:
        stopped = ", ".join(self.servers) or "none running"
        return (
            f"Logged out {self.users} users, revoked {self.tokens} tokens, "
            f"stopped servers: {stopped}. Files and users are kept."
        )


def stop_docker_server(state: dict) -> None:
    """Remove a DockerSpawner container (the home volume stays)."""
    import docker

    name = state.get("object_id") or state.get("object_name")
    if not name:
        return
    try:
        docker.from_env().containers.get(name).remove(force=True)
    except docker.errors.NotFound:
        pass


def stop_swarm_server(state: dict) -> None:
    """Remove a SwarmSpawner service (the home volume stays)."""
    import docker

    name = state.get("object_id") or state.get("object_name")
    if not name:
        return
    try:
        docker.from_env().api.remove_service(name)
    except docker.errors.NotFound:
        pass


def stop_local_server(state: dict) -> None:
    pid = state.get("pid")
    if pid:
        try:
            os.kill(int(pid), signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass


def revoke_logins(
    db_url: str, data_dir: str, stop_server: Callable[[dict], None]
) -> Revoked:
    from jupyterhub import orm
    from jupyterhub.utils import new_token

    session = orm.new_session_factory(db_url)()
    try:
        users = session.query(orm.User).all()
        for user in users:
            user.cookie_id = new_token()
        tokens = session.query(orm.APIToken).filter(orm.APIToken.user_id.isnot(None))
        token_count = tokens.count()
        tokens.delete(synchronize_session=False)
        session.query(orm.OAuthCode).delete(synchronize_session=False)
        stopped = []
        for spawner in session.query(orm.Spawner).filter(orm.Spawner.server_id.isnot(None)):
            stop_server(dict(spawner.state or {}))
            stopped.append(f"{spawner.user.name}/{spawner.name}".rstrip("/"))
            server = spawner.server
            spawner.server = None
            spawner.state = {}
            if server is not None:
                session.delete(server)
        session.commit()
    finally:
        session.close()
    Path(data_dir, COOKIE_SECRET_FILE).unlink(missing_ok=True)
    return Revoked(users=len(users), tokens=token_count, servers=stopped)
