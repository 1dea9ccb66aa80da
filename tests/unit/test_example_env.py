"""The committed example-stack.env is rendered from the code, so docs and code never drift."""

from __future__ import annotations

from pathlib import Path

import pytest

from personal_hub import variables
from personal_hub.cli import main, parse_env_file
from personal_hub.variables import PLACEHOLDER, VARIABLES, render_env_file

EXAMPLE = Path(__file__).resolve().parents[2] / "example-stack.env"
CONFIGURATION_DOCS = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_example_file_is_the_rendered_template():
    assert EXAMPLE.read_text(encoding="utf-8") == render_env_file(), (
        "example-stack.env is out of date; regenerate it with "
        "python -c 'from personal_hub.variables import render_env_file as r; "
        'print(r(), end="")\' > example-stack.env'
    )


@pytest.mark.parametrize("variable", VARIABLES, ids=lambda variable: variable.name)
def test_every_variable_is_documented_in_the_example(variable):
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()

    assert sum(line.startswith(f"{variable.name}=") for line in lines) == 1
    index = next(i for i, line in enumerate(lines) if line.startswith(f"{variable.name}="))
    above = []
    for line in reversed(lines[:index]):
        if not line.startswith("# ") or line.startswith("# ---"):
            break
        above.insert(0, line.removeprefix("# "))
    assert " ".join(above) == f"{variable.description()} Values: {variable.allowed}.", (
        "the description and the allowed values are the comment above"
    )


def test_example_has_no_real_secret():
    values = parse_env_file(EXAMPLE.read_text(encoding="utf-8"))

    for variable in VARIABLES:
        if variable.generated:
            assert values[variable.name] == PLACEHOLDER
        elif variable.secret:
            assert values[variable.name] == ""


def test_check_refuses_the_unchanged_example(capsys):
    assert main(["check", "--env-file", str(EXAMPLE)]) == 1

    err = capsys.readouterr().err
    for variable in VARIABLES:
        if variable.generated:
            assert f"  - {variable.name}: is a placeholder" in err


def test_configuration_docs_document_every_variable():
    reference = CONFIGURATION_DOCS.read_text(encoding="utf-8")
    missing = [v.name for v in VARIABLES if f"| `{v.name}` |" not in reference]
    assert not missing, f"docs/configuration.md's reference lacks {missing}"


def test_configuration_docs_reference_is_the_rendered_table():
    reference = CONFIGURATION_DOCS.read_text(encoding="utf-8")
    start = reference.index(variables.REFERENCE_START)
    end = reference.index(variables.REFERENCE_END) + len(variables.REFERENCE_END) + 1
    assert reference[start:end] == variables.render_reference(), (
        "regenerate the table in docs/configuration.md with "
        "personal_hub.variables.render_reference()"
    )
