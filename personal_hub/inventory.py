"""What a backup of the hub must hold, as the hub sees it: every user and their home
volume. Runs inside the hub container (`personal-hub home-volumes`), where JupyterHub's
database and DockerSpawner's naming are at hand."""

from __future__ import annotations


def home_volume_of(username: str) -> str:
    """The user's home volume under the spawner's default `home_volume_template`,
    with DockerSpawner's own escaping of the name."""
    from .spawner import PersonalDockerSpawner

    template = PersonalDockerSpawner.class_traits()["home_volume_template"].default_value
    escaped = PersonalDockerSpawner._escape(username)
    return template.format(username=escaped, safe_username=escaped, raw_username=username)


def home_volumes(db_url: str) -> dict[str, str]:
    """{user name: home volume} for every user in the hub's database."""
    from jupyterhub import orm

    session = orm.new_session_factory(db_url)()
    try:
        names = [user.name for user in session.query(orm.User).order_by(orm.User.name)]
    finally:
        session.close()
    return {name: home_volume_of(name) for name in names}
