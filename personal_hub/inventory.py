"""What a backup of the hub must hold, as the hub sees it: every user and their home
volume. Runs inside the hub container (`personal-hub home-volumes`), where JupyterHub's
database and DockerSpawner's naming are at hand."""

from __future__ import annotations


def escaped_username(username: str) -> str:
    """The name as DockerSpawner escapes it in the names of containers and volumes."""
    from .spawner import PersonalDockerSpawner

    return PersonalDockerSpawner._escape(username)


def home_volume_of(username: str) -> str:
    """The user's home volume under the spawner's default `home_volume_template`,
    with DockerSpawner's own escaping of the name."""
    from .spawner import PersonalDockerSpawner

    template = PersonalDockerSpawner.class_traits()["home_volume_template"].default_value
    escaped = escaped_username(username)
    return template.format(username=escaped, safe_username=escaped, raw_username=username)


def ensure_home_volume(client, username: str, storage: dict | None) -> str:
    """The user's home volume for a container of the hub's own services (a scheduled
    run, a report's rendering): with shared storage (`storage`: {"driver", "options"}),
    created on this engine with its options when missing, so that such a container never
    gets an empty plain volume of the same name. Returns its name."""
    from docker.errors import NotFound

    from . import homes

    volume = home_volume_of(username)
    driver = (storage or {}).get("driver", homes.LOCAL_DRIVER)
    options = (storage or {}).get("options") or {}
    if homes.is_shared(driver, options):
        try:
            client.volumes.get(volume)
        except NotFound:
            client.volumes.create(volume, driver=driver,
                                  driver_opts=homes.for_user(options, escaped_username(username)))
    return volume


def home_volumes(db_url: str) -> dict[str, str]:
    """{user name: home volume} for every user in the hub's database."""
    from jupyterhub import orm

    session = orm.new_session_factory(db_url)()
    try:
        names = [user.name for user in session.query(orm.User).order_by(orm.User.name)]
    finally:
        session.close()
    return {name: home_volume_of(name) for name in names}
