"""Username rules shared by the settings loader and the authenticator.

Standard library only. Usernames become Docker container and volume names (through
DockerSpawner's injective escaping), URL path segments and home directory names, so
they are kept to a small, unambiguous character set.
"""

from __future__ import annotations

import re

MAX_USERNAME_LENGTH = 32
USERNAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]*")
USERNAME_RULE = (
    f"1 to {MAX_USERNAME_LENGTH} characters: lowercase letters, digits, '.', '_' or '-', "
    "starting with a letter or digit"
)


def normalize_username(username: str) -> str:
    """Usernames are case-insensitive: `Alice ` and `alice` are the same user."""
    return username.strip().lower()


def username_problem(username: str) -> str | None:
    """Why `username` (already normalized) is not acceptable, or None if it is."""
    if not username:
        return "The username is empty."
    if len(username) > MAX_USERNAME_LENGTH:
        return f"The username is {len(username)} characters long; usernames are {USERNAME_RULE}."
    if not USERNAME_PATTERN.fullmatch(username):
        return f"The username has characters that are not allowed; usernames are {USERNAME_RULE}."
    return None
