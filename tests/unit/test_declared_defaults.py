"""The defaults that the compose files and Dockerfiles repeat are the declared ones.

docker compose and `docker build` cannot import Python, so `${X:-default}` and
`ARG X=default` must spell the default again; these tests keep every copy equal to
its declaration in personal_hub/variables.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from personal_hub.variables import BY_NAME

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILES = sorted(REPO.glob("compose/*.yml"))
# A Dockerfile's build argument -> the variable whose value compose passes to it.
BUILD_ARGS = {
    "docker/hub.Dockerfile": {"PYTHON_IMAGE": "PYTHON_IMAGE"},
    "docker/singleuser.Dockerfile": {"BASE_IMAGE": "SINGLEUSER_BASE_IMAGE"},
}
SUBSTITUTION = re.compile(r"\$\{(?P<name>[A-Z0-9_]+)(?P<operator>:?[-?])(?P<default>[^}]*)\}")


def substitutions(path: Path) -> list[tuple[str, str, str]]:
    return [match.group("name", "operator", "default") for match in SUBSTITUTION.finditer(
        path.read_text()
    )]


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda path: path.name)
def test_compose_defaults_are_the_declared_defaults(path):
    found = substitutions(path)
    assert found, f"{path.name} reads no variables?"
    for name, operator, default in found:
        assert name in BY_NAME, f"{path.name} reads {name}, which no Variable declares"
        if operator == ":-":
            assert default == BY_NAME[name].default, (
                f"{path.name}: ${{{name}:-{default}}} but the declared default is "
                f"{BY_NAME[name].default!r}"
            )
        else:
            assert operator == ":?", f"{path.name}: use :- or :? for {name}"
            assert BY_NAME[name].generated or name == "JUPYTER_DOMAIN", (
                f"{path.name} requires {name}, which nothing generates"
            )


def test_every_variable_compose_reads_is_substituted_with_the_same_default_everywhere():
    seen: dict[str, set[str]] = {}
    for path in COMPOSE_FILES:
        for name, operator, default in substitutions(path):
            if operator == ":-":
                seen.setdefault(name, set()).add(default)
    assert {name: defaults for name, defaults in seen.items() if len(defaults) > 1} == {}


@pytest.mark.parametrize("dockerfile", sorted(BUILD_ARGS))
def test_dockerfile_build_arguments_default_to_the_declared_values(dockerfile):
    arguments = dict(re.findall(r"^ARG (\w+)=(\S+)$", (REPO / dockerfile).read_text(), re.M))
    expected = {arg: BY_NAME[name].default for arg, name in BUILD_ARGS[dockerfile].items()}
    assert arguments == expected
