"""Shared fixtures of the unit tier: a strong, valid stack.env environment.

Every secret has a distinctive value, so a test can check that no report, log line or
summary ever contains one of them.
"""

from __future__ import annotations

import pytest
from sample_secrets import (
    ADMIN_PASSWORD,
    ANTHROPIC_KEY,
    OPENAI_KEY,
    POSTGRES_PASSWORD,
    PROXY_TOKEN,
    USER_PASSWORD,
)

from personal_hub.settings import load_settings
from personal_hub.variables import BY_NAME


@pytest.fixture
def environ() -> dict[str, str]:
    """The smallest valid environment: the shared and the admin password."""
    return {"JUPYTER_PASSWORD": USER_PASSWORD, "JUPYTER_ADMIN_PASSWORD": ADMIN_PASSWORD}


@pytest.fixture
def full_environ(environ) -> dict[str, str]:
    """A valid environment that sets every secret (external proxy, PostgreSQL, AI keys)."""
    return {
        **environ,
        "HUB_PROXY_API_URL": "http://proxy:8001",
        "CONFIGPROXY_AUTH_TOKEN": PROXY_TOKEN,
        "POSTGRES_HOST": "db",
        "POSTGRES_PASSWORD": POSTGRES_PASSWORD,
        "OPENAI_API_KEY": OPENAI_KEY,
        "ANTHROPIC_API_KEY": ANTHROPIC_KEY,
    }


@pytest.fixture
def make_settings(environ):
    """`make_settings(NAME=value, ...)`: settings from the minimal environment plus changes."""

    def make(**changes: str):
        return load_settings({**environ, **changes})

    return make


def secret_values(env: dict[str, str]) -> dict[str, str]:
    """{name: value} of the secret variables that `env` sets."""
    return {
        name: value
        for name, value in env.items()
        if value and name in BY_NAME and BY_NAME[name].secret
    }


@pytest.fixture
def assert_no_secret():
    """`assert_no_secret(text, env)`: fail if `text` contains any secret value of `env`.

    Values shorter than 8 characters are skipped: they are not secret enough to be
    told apart from ordinary words of a report (and are refused as too short anyway).
    """

    def check(text: str, env: dict[str, str]) -> None:
        for name, value in secret_values(env).items():
            if len(value.strip()) >= 8 and value.strip() in text:
                # the failure message names the variable, not the value
                pytest.fail(f"the value of {name} appears in the text", pytrace=False)

    return check
