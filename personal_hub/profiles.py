"""Server profiles (HUB_PROFILES): the kinds of server a person may pick when it starts.

One line of stack.env declares them, e.g.::

    HUB_PROFILES=small: cpu=1 memory=2G; large: cpu=4 memory=8G; gpu: memory=16G gpus=all

Each profile has a name (as JupyterHub's server names: a lower-case letter, then up to 29
lower-case letters, digits or -) and any of `cpu` (cores), `memory` (a size), `gpus`
(`all` or a number of NVIDIA GPUs) and `image`. What a profile leaves out is the hub's
setting (HUB_CPU_LIMIT, HUB_MEM_LIMIT, HUB_SINGLEUSER_IMAGE); the first profile is the
one pre-selected. Standard library only (`personal-hub init`/`check` run on bare hosts).
"""

from __future__ import annotations

import html
import re
from dataclasses import asdict, dataclass

from .parsers import IMAGE, Cores, Invalid, Size, format_bytes

NAME = re.compile(r"[a-z][a-z0-9-]{0,29}")
KEYS = ("cpu", "memory", "gpus", "image")
ALL_GPUS = -1
MAX_PROFILES = 20
_CORES = Cores(0.01, 1024)
_MEMORY = Size(64 * 1024**2, 1024**5)


@dataclass(frozen=True)
class Profile:
    name: str
    cpu: float | None = None
    memory: int | None = None  # bytes
    gpus: int | None = None  # a number, or ALL_GPUS
    image: str | None = None

    def description(self) -> str:
        """What it gives, in a few words: '1 CPU, 2G memory, all GPUs'."""
        parts = []
        if self.cpu is not None:
            parts.append(f"{self.cpu:g} CPU" + ("" if self.cpu == 1 else "s"))
        if self.memory is not None:
            parts.append(f"{format_bytes(self.memory)} memory")
        if self.gpus is not None:
            count = "all" if self.gpus == ALL_GPUS else str(self.gpus)
            parts.append(f"{count} GPU" + ("" if self.gpus == 1 else "s"))
        if self.image:
            parts.append(f"image {self.image}")
        return ", ".join(parts) or "the hub's standard server"

    def as_config(self) -> dict:
        """The profile as a trait value (`PersonalSpawner.profiles`): only what it sets."""
        return {key: value for key, value in asdict(self).items() if value is not None}

    @classmethod
    def from_config(cls, values: dict) -> Profile:
        """A profile from a trait value (e.g. set in jupyterhub_config.d)."""
        unknown = set(values) - {"name", *KEYS}
        if unknown or "name" not in values:
            raise ValueError(f"a profile needs a name and may have {', '.join(KEYS)}; "
                             f"not {sorted(unknown)}.")
        return cls(**values)


def parse_gpus(text: str) -> int:
    if text.lower() == "all":
        return ALL_GPUS
    if not text.isdigit() or not 1 <= int(text) <= 64:
        raise Invalid(f"{text!r} is not all or a number from 1 to 64.")
    return int(text)


def parse_profile(text: str) -> Profile:
    """One profile, 'name: key=value ...'."""
    name, colon, rest = text.partition(":")
    name = name.strip()
    if not colon or not NAME.fullmatch(name):
        raise Invalid(
            f"{text.strip()!r} does not start with a profile name and a colon.",
            "write each profile as name: key=value ..., e.g. small: cpu=1 memory=2G; a "
            "name is a lower-case letter, then lower-case letters, digits or - (30 at most).",
        )
    values: dict = {}
    for word in rest.split():
        key, equals, value = word.partition("=")
        if not equals or key not in KEYS:
            raise Invalid(f"profile {name}: {word!r} is not one of "
                          f"{', '.join(k + '=...' for k in KEYS)}.")
        if key in values:
            raise Invalid(f"profile {name}: {key} is given twice.")
        try:
            values[key] = {"cpu": _CORES, "memory": _MEMORY, "gpus": parse_gpus,
                           "image": IMAGE}[key](value)
        except Invalid as error:
            raise Invalid(f"profile {name}: {key}: {error}") from None
    return Profile(name, **values)


class Profiles:
    """Parser of HUB_PROFILES: profiles separated by `;`."""

    allowed = ("profiles as name: key=value ..., separated by ; (keys: cpu, memory, gpus, "
               "image), e.g. small: cpu=1 memory=2G; gpu: memory=16G gpus=all")

    def __call__(self, text: str) -> tuple[Profile, ...]:
        profiles = tuple(parse_profile(part) for part in text.split(";") if part.strip())
        names = [profile.name for profile in profiles]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise Invalid(f"profile {', '.join(duplicates)} is declared more than once.")
        if len(profiles) > MAX_PROFILES:
            raise Invalid(f"has {len(profiles)} profiles; at most {MAX_PROFILES}.")
        return profiles


def options_form(profiles: list[Profile], chosen: str | None = None) -> str:
    """The spawn page's choice (JupyterHub's options form): one radio button a profile."""
    chosen = chosen if chosen in {p.name for p in profiles} else profiles[0].name
    rows = []
    for profile in profiles:
        name = html.escape(profile.name)
        checked = " checked" if profile.name == chosen else ""
        rows.append(
            f'<div class="form-check"><input class="form-check-input" type="radio" '
            f'name="profile" id="profile-{name}" value="{name}"{checked}>'
            f'<label class="form-check-label" for="profile-{name}"><strong>{name}</strong>'
            f" &mdash; {html.escape(profile.description())}</label></div>"
        )
    return '<fieldset><legend>Server profile</legend>' + "".join(rows) + "</fieldset>"


def chosen_profile(profiles: list[Profile], user_options: object) -> Profile | None:
    """The profile that `user_options` (from the form or the REST API) names; the first
    when it names none; None without profiles. Raises ValueError for anything else:
    user options are user input, and only the profile's name is taken from them."""
    if not profiles:
        if user_options:
            raise ValueError("This hub has no server profiles to choose from.")
        return None
    if not isinstance(user_options, dict) or set(user_options) - {"profile"}:
        raise ValueError("Only a server profile can be chosen here.")
    name = user_options.get("profile") or profiles[0].name
    for profile in profiles:
        if profile.name == name:
            return profile
    raise ValueError(
        f"There is no server profile {str(name)[:40]!r}; choose one of "
        f"{', '.join(p.name for p in profiles)}."
    )
