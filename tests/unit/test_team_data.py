"""Team database connections: HUB_DATA_CONNECTIONS on the hub, and the image's team_data
module that turns them into a jupysql connections file and SQLAlchemy engines."""

from __future__ import annotations

import configparser
import json
import os
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from personal_hub.parsers import Connections, Invalid
from personal_hub.spawner import DATA_CONNECTIONS_VARIABLE
from tests.helpers import image_module

PASSWORD = "te%am@pw:1/x"  # everything that must be percent-encoded in a URL
ENCODED = "te%25am%40pw%3A1%2Fx"


@pytest.fixture(scope="module")
def team_data():
    return image_module("team_data")


def test_connections_as_written_in_stack_env():
    text = (f"sales=postgresql://reader:{ENCODED}@db.lan:5432/sales  "
            "lake=duckdb:////data/lake.duckdb\tbi=mysql+pymysql://bi@nas/warehouse?charset=utf8")
    assert Connections()(text) == {
        "sales": f"postgresql://reader:{ENCODED}@db.lan:5432/sales",
        "lake": "duckdb:////data/lake.duckdb",
        "bi": "mysql+pymysql://bi@nas/warehouse?charset=utf8",
    }


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("postgresql://u:Secret-pw@h/db", "entry 1 does not start with a name"),
        ("Sales=postgresql://u:Secret-pw@h/db", "entry 1 does not start with a name"),
        ("a=sqlite:///x b=u:Secret-pw@h/db", "the URL of b is not a database URL"),
        ("a=sqlite:///x a=sqlite:///y", "a is declared more than once"),
        ("a=postgresql://", "the URL of a is not a database URL"),
    ],
)
def test_mistakes_name_the_connection_never_the_url(text, says):
    with pytest.raises(Invalid) as raised:
        Connections()(text)
    assert says in str(raised.value)
    assert "Secret-pw" not in str(raised.value) + (raised.value.fix or "")


def test_the_image_reads_the_variable_the_spawner_sets(team_data):
    assert team_data.VARIABLE == DATA_CONNECTIONS_VARIABLE


@pytest.mark.parametrize(
    "address",
    [
        f"postgresql+psycopg2://reader:{ENCODED}@db.lan:5432/sales",
        "postgresql://reader@db.lan/sales",
        "mysql+pymysql://bi:pw@nas/warehouse?charset=utf8mb4&ssl_disabled=true",
        "duckdb:////data/lake.duckdb",
        "sqlite:///relative.db",
    ],
)
def test_the_connections_file_gives_jupysql_the_same_url(team_data, address):
    """jupysql builds the URL from a section with URL.create after reading the file with
    ConfigParser (interpolation on, as jupysql does)."""
    from sqlalchemy.engine import URL

    parser = configparser.ConfigParser()
    parser.read_string(team_data.connections_file({"team": address}))
    values = dict(parser.items("team"))
    if "query" in values:
        import ast
        values["query"] = ast.literal_eval(values["query"])
    assert URL.create(**values) == make_url(address)


def test_own_connections_come_after_the_teams(team_data):
    own = "[sales]\ndrivername = sqlite\n\n[mine]\ndrivername = duckdb\ndatabase = /tmp/x\n"
    text = team_data.connections_file({"sales": "postgresql://r@db/sales"}, own)
    parser = configparser.ConfigParser()
    parser.read_string(text)
    assert parser.sections() == ["sales", "mine"]
    assert parser["sales"]["drivername"] == "postgresql"  # the team's name wins
    # A damaged file of one's own is left out, the team's connections stay.
    assert "[sales]" in team_data.connections_file({"sales": "sqlite://"}, "[broken")


def test_the_file_is_private_and_in_tmp(team_data, monkeypatch, tmp_path):
    monkeypatch.setattr(team_data, "OWN_FILE", tmp_path / "none.ini")
    environ = {DATA_CONNECTIONS_VARIABLE: json.dumps({"sales": "sqlite:///s.db"})}
    path = Path(team_data.write_connections_file(environ))
    try:
        assert path.parent.parent == Path("/tmp")
        assert oct(path.stat().st_mode & 0o777) == oct(0o600)
        assert "[sales]" in path.read_text()
    finally:
        path.unlink()
    assert team_data.write_connections_file({}) is None
    assert team_data.write_connections_file({DATA_CONNECTIONS_VARIABLE: "{not json"}) is None


def test_engines_by_name(team_data, monkeypatch, tmp_path):
    database = tmp_path / "s.db"
    monkeypatch.setenv(DATA_CONNECTIONS_VARIABLE, json.dumps({"sales": f"sqlite:///{database}"}))
    assert team_data.names() == ["sales"]
    import sqlalchemy
    with team_data.engine("sales").connect() as connection:
        assert connection.execute(sqlalchemy.text("SELECT 6 * 7")).scalar() == 42
    with pytest.raises(KeyError, match="no team connection 'other'; there are: sales"):
        team_data.url("other")
    assert os.environ[DATA_CONNECTIONS_VARIABLE]  # (monkeypatch restores it)
