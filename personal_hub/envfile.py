"""The env file format (stack.env): read the way `docker compose` reads an env_file.

Standard library only, Python 3.9 and newer: `./hub` reads stack.env with the host's
python3 before anything is installed.
"""

from __future__ import annotations

from pathlib import Path


class EnvFileError(Exception):
    pass


def parse_env_file(text: str, source: str = "env file") -> dict[str, str]:
    """Parse KEY=VALUE lines the way `docker compose` reads an env_file.

    Blank lines and `#` comments are skipped; a quoted value ends at its closing quote;
    an unquoted value ends before ` #` (an inline comment). Nothing is expanded: see
    `values_compose_would_expand` for values that compose would change.
    """
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("export "):
            stripped = stripped[len("export ") :].lstrip()
        name, sep, value = stripped.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            # Never echo the line: it may hold a secret.
            raise EnvFileError(
                f"{source}, line {number}: expected NAME=value (a name of letters, digits "
                "and '_', then '=')."
            )
        values[name] = _env_value(value.strip(), f"{source}, line {number}")
    return values


def _env_value(value: str, where: str) -> str:
    if value[:1] in ("'", '"'):
        quote = value[0]
        end = value.find(quote, 1)
        if end == -1:
            raise EnvFileError(f"{where}: the value's opening {quote} has no closing {quote}.")
        return value[1:end]
    comment = value.find(" #")
    return value[:comment].rstrip() if comment != -1 else value


def values_compose_would_expand(text: str) -> list[str]:
    """Names whose value has a `$` that docker compose would interpolate (not single-quoted)."""
    names = []
    for line in text.splitlines():
        name, sep, value = line.strip().partition("=")
        value = value.strip()
        if sep and not name.startswith("#") and "$" in value and not value.startswith("'"):
            names.append(name.strip())
    return names


def read_env_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EnvFileError(
            f"{path} does not exist. Create it with `personal-hub init --env-file {path}`."
        ) from None
    except OSError as error:
        raise EnvFileError(f"{path} cannot be read: {error.strerror}.") from None


def read_env_file(path: Path) -> dict[str, str]:
    return parse_env_file(read_env_text(path), str(path))
