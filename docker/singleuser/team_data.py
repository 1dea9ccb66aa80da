"""The team's database connections, by name (HUB_DATA_CONNECTIONS on the hub).

In a notebook::

    %load_ext sql
    %sql --section sales          # connect by name; then %%sql cells query it

    import team_data, pandas
    team_data.names()             # ['sales', ...]
    pandas.read_sql("SELECT ...", team_data.engine("sales"))

The hub puts the connections into the server's environment (PERSONAL_HUB_DATA_CONNECTIONS,
{name: SQLAlchemy URL} as JSON). Every kernel writes them into a jupysql connections
file of its own in /tmp (never the home volume, so a changed password is not kept in
old copies or backups) and points `SqlMagic.dsn_filename` at it; the person's own
~/.jupysql/connections.ini sections are added after the team's. Standard library only,
and nothing that can fail a kernel's start.
"""

from __future__ import annotations

import configparser
import json
import os
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

VARIABLE = "PERSONAL_HUB_DATA_CONNECTIONS"
OWN_FILE = Path("~/.jupysql/connections.ini").expanduser()


def connections(environ=os.environ) -> dict[str, str]:
    """{name: URL} of the team's connections ({} when there are none or they are unreadable)."""
    try:
        found = json.loads(environ.get(VARIABLE) or "{}")
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}


def names() -> list[str]:
    """The names of the team's connections."""
    return sorted(connections())


def url(name: str) -> str:
    """The SQLAlchemy URL of a team connection (with its password)."""
    try:
        return connections()[name]
    except KeyError:
        raise KeyError(f"no team connection {name!r}; there are: "
                       f"{', '.join(names()) or 'none'}") from None


def engine(name: str, **kwargs):
    """A SQLAlchemy engine for a team connection (it connects when first used)."""
    import sqlalchemy

    return sqlalchemy.create_engine(url(name), **kwargs)


def url_parts(address: str) -> dict[str, str]:
    """The parts of a URL as jupysql's connections file names them (drivername, username,
    password, host, port, database, query), decoded."""
    scheme, _, rest = address.partition("://")
    parts = urlsplit(f"//{rest}")
    values = {"drivername": scheme}
    if parts.username:
        values["username"] = unquote(parts.username)
    if parts.password is not None:
        values["password"] = unquote(parts.password)
    if parts.hostname:
        values["host"] = parts.hostname
    if parts.port:
        values["port"] = str(parts.port)
    database = unquote(parts.path[1:]) if parts.path.startswith("/") else unquote(parts.path)
    if database:
        values["database"] = database
    if parts.query:
        values["query"] = repr(dict(parse_qsl(parts.query)))
    return values


def connections_file(team: dict[str, str], own: str = "") -> str:
    """A jupysql connections file: the team's sections, then the person's own (`own`, the
    text of their file) under names the team does not use."""
    # jupysql reads the file with ConfigParser's interpolation: a % is written %%. The
    # person's own sections are copied as they wrote them.
    parser = configparser.ConfigParser(interpolation=None)
    for name, address in team.items():
        parser[name] = {k: v.replace("%", "%%") for k, v in url_parts(address).items()}
    mine = configparser.ConfigParser(interpolation=None)
    try:
        mine.read_string(own)
    except configparser.Error:
        pass
    for section in mine.sections():
        if section not in parser:
            parser[section] = dict(mine[section])
    lines = []
    for section in parser.sections():
        lines.append(f"[{section}]")
        lines += [f"{key} = {value}" for key, value in parser[section].items()]
        lines.append("")
    return "\n".join(lines)


def write_connections_file(environ=os.environ) -> str | None:
    """Write this kernel's connections file (mode 600) and return its path; None without
    team connections."""
    team = connections(environ)
    if not team:
        return None
    try:
        own = OWN_FILE.read_text()
    except (OSError, UnicodeDecodeError):
        own = ""
    directory = Path("/tmp") / f"personal-hub-{os.getuid()}"
    directory.mkdir(mode=0o700, exist_ok=True)
    path = directory / "connections.ini"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(connections_file(team, own))
    return str(path)
