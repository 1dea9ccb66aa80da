"""Parsers of setting values: each turns the text of one variable into a typed value.

A parser is a small callable object: `parser(text)` returns the value or raises
`Invalid` with a message that never contains a secret's value, and `parser.allowed`
says in a few words which values it takes (for the configuration reference and for the
fix of a problem). Standard library only: `personal-hub check` runs on a bare host.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from decimal import Decimal

from .usernames import USERNAME_RULE, normalize_username, username_problem


class Invalid(ValueError):
    """A value that cannot be used; `fix` replaces the variable's usual fix when set."""

    def __init__(self, message: str, fix: str | None = None):
        super().__init__(message)
        self.fix = fix


# ---------------------------------------------------------------- numbers and sizes


@dataclass(frozen=True)
class Integer:
    minimum: int
    maximum: int

    @property
    def allowed(self) -> str:
        return f"a whole number from {self.minimum} to {self.maximum}"

    def __call__(self, text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise Invalid(f"{text!r} is not a whole number.") from None
        if not self.minimum <= value <= self.maximum:
            raise Invalid(
                f"{value} is out of range; it must be from {self.minimum} to {self.maximum}."
            )
        return value


@dataclass(frozen=True)
class Cores:
    minimum: float
    maximum: float

    @property
    def allowed(self) -> str:
        return f"a number of CPU cores from {self.minimum:g} to {self.maximum:g}, e.g. 1.5"

    def __call__(self, text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise Invalid(f"{text!r} is not a number of cores.") from None
        if not self.minimum <= value <= self.maximum:  # also refuses nan
            raise Invalid(f"{text!r} cores is out of range.")
        return value


BYTE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_SIZE_PATTERN = re.compile(r"(\d{1,20}(?:\.\d{1,20})?)\s*([KMGT]?)(?:I?B)?", re.IGNORECASE)


def format_bytes(value: int) -> str:
    """The shortest exact spelling of a size: 2G, 1536M, 100."""
    for unit in ("T", "G", "M", "K"):
        if value % BYTE_UNITS[unit] == 0:
            return f"{value // BYTE_UNITS[unit]}{unit}"
    return str(value)


@dataclass(frozen=True)
class Size:
    """A size in bytes, written 2G, 512M, 1.5G (binary units)."""

    minimum: int
    maximum: int

    @property
    def allowed(self) -> str:
        return (
            f"a size such as 512M or 2G, from {format_bytes(self.minimum)} "
            f"to {format_bytes(self.maximum)}"
        )

    def __call__(self, text: str) -> int:
        match = _SIZE_PATTERN.fullmatch(text)
        if not match:
            raise Invalid(f"{text!r} is not a size.")
        number, unit = match.groups()
        value = int(Decimal(number) * BYTE_UNITS[unit.upper()])
        if value < self.minimum:
            raise Invalid(f"{format_bytes(value)} is less than {format_bytes(self.minimum)}.")
        if value > self.maximum:
            raise Invalid(f"{format_bytes(value)} is more than {format_bytes(self.maximum)}.")
        return value


DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION_PATTERN = re.compile(r"(\d{1,12})\s*([smhd]?)", re.IGNORECASE)


def format_duration(seconds: int) -> str:
    for unit in ("d", "h", "m"):
        if seconds and seconds % DURATION_UNITS[unit] == 0:
            return f"{seconds // DURATION_UNITS[unit]}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True)
class Duration:
    """Seconds, written 90, 90s, 5m, 2h or 1d."""

    minimum: int
    maximum: int
    # What 0 means, when it is allowed below `minimum` (e.g. "off").
    zero_means: str = ""

    @property
    def allowed(self) -> str:
        zero = f"; 0: {self.zero_means}" if self.zero_means else ""
        return (
            f"a duration from {format_duration(self.minimum)} to "
            f"{format_duration(self.maximum)}: seconds, or a whole number with s, m, h or d "
            f"(90s, 5m, 2h){zero}"
        )

    def __call__(self, text: str) -> int:
        match = _DURATION_PATTERN.fullmatch(text)
        if not match:
            raise Invalid(f"{text!r} is not a duration.")
        number, unit = match.groups()
        seconds = int(number) * DURATION_UNITS[unit.lower()]
        if seconds == 0 and self.zero_means:
            return 0
        if seconds < self.minimum:
            raise Invalid(f"{seconds} seconds is shorter than {format_duration(self.minimum)}.")
        if seconds > self.maximum:
            raise Invalid(f"{seconds} seconds is longer than {format_duration(self.maximum)}.")
        return seconds


@dataclass(frozen=True)
class OrWord:
    """`inner`, or a word that means None: 'unlimited' for no limit, 'auto' for decided
    by the machine."""

    inner: object
    word: str

    @property
    def allowed(self) -> str:
        return f"{self.inner.allowed}, or {self.word}"

    def __call__(self, text: str):
        return None if text.lower() == self.word else self.inner(text)


@dataclass(frozen=True)
class OrWords:
    """`inner`, or one of `words`, which stand for themselves (e.g. auto, none)."""

    inner: object
    words: tuple[str, ...]

    @property
    def allowed(self) -> str:
        return f"{self.inner.allowed}, {' or '.join(self.words)}"

    def __call__(self, text: str):
        return text.lower() if text.lower() in self.words else self.inner(text)


# ---------------------------------------------------------------- words and names


@dataclass(frozen=True)
class Choice:
    options: tuple[str, ...]
    upper: bool = False  # spelled in capitals (log levels)

    @property
    def allowed(self) -> str:
        return " or ".join([", ".join(self.options[:-1]), self.options[-1]])

    def __call__(self, text: str) -> str:
        value = text.upper() if self.upper else text.lower()
        if value not in self.options:
            raise Invalid(f"{text!r} is not one of {', '.join(self.options)}.")
        return value


_BOOLEANS = {"true": True, "yes": True, "1": True, "on": True,
             "false": False, "no": False, "0": False, "off": False}


@dataclass(frozen=True)
class Boolean:
    allowed: str = "true or false"

    def __call__(self, text: str) -> bool:
        try:
            return _BOOLEANS[text.lower()]
        except KeyError:
            raise Invalid(f"{text!r} is not true or false.") from None


_HOSTNAME = re.compile(
    r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Pattern:
    """Text that must match a regular expression, such as a host or image name."""

    regex: re.Pattern
    allowed: str

    def __call__(self, text: str) -> str:
        if not self.regex.fullmatch(text):
            raise Invalid(f"{text!r} is not {self.allowed}.")
        return text


HOSTNAME = Pattern(_HOSTNAME, "a host name")
# A model as LiteLLM names it: provider/model, e.g. openai/gpt-5.4-mini.
MODEL_ID = Pattern(
    re.compile(r"[a-z0-9_]+/[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,199}"),
    "a model as LiteLLM names it, provider/model (e.g. openai/gpt-5.4-mini)",
)
DOCKER_NAME = Pattern(
    re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*"), "a Docker name (letters, digits, _ . -)"
)
IMAGE = Pattern(re.compile(r"[a-z0-9][a-z0-9._/:@-]*", re.IGNORECASE), "a Docker image name")
PATH = Pattern(re.compile(r"/[^\0]*"), "an absolute path")


@dataclass(frozen=True)
class HttpUrl:
    need_port: bool
    # Whether user:password@ may be part of it; where not, the URL is never echoed back
    # when it has them (a password in it would be).
    credentials: bool = True

    @property
    def allowed(self) -> str:
        return "an http(s) URL with a port" if self.need_port else "an http(s) URL"

    def __call__(self, text: str) -> str:
        from urllib.parse import urlsplit

        parts = urlsplit(text)
        if not self.credentials and "@" in parts.netloc:
            raise Invalid("has a user name or password in it.",
                          "leave them out of the URL; keys have variables of their own.")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise Invalid(f"{text!r} is not an http(s) URL.")
        try:
            port = parts.port
        except ValueError:
            raise Invalid(f"{text!r} has an invalid port.") from None
        if self.need_port and port is None:
            raise Invalid(f"{text!r} has no port.")
        return text.rstrip("/") if self.need_port else text


@dataclass(frozen=True)
class IpAddress:
    allowed: str = "an IP address"

    def __call__(self, text: str) -> str:
        try:
            return str(ipaddress.ip_address(text))
        except ValueError:
            raise Invalid(f"{text!r} is not an IP address.") from None


@dataclass(frozen=True)
class TimeZone:
    allowed: str = "an IANA time zone name such as Europe/Berlin"

    def __call__(self, text: str) -> str:
        import zoneinfo

        try:
            zoneinfo.ZoneInfo(text)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            try:
                zoneinfo.ZoneInfo("UTC")
            except zoneinfo.ZoneInfoNotFoundError:
                return text  # no zone database here at all: nothing to check against
            raise Invalid(f"{text!r} is not a known time zone.") from None
        return text


@dataclass(frozen=True)
class Username:
    allowed: str = f"a username of {USERNAME_RULE}"

    def __call__(self, text: str) -> str:
        name = normalize_username(text)
        problem = username_problem(name)
        if problem:
            raise Invalid(problem)
        return name


# ---------------------------------------------------------------- comma-separated lists


def _items(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _are(names: list[str]) -> str:
    return "is" if len(names) == 1 else "are"


@dataclass(frozen=True)
class Usernames:
    allowed: str = f"usernames of {USERNAME_RULE}, comma-separated"

    def __call__(self, text: str) -> frozenset[str]:
        names = [normalize_username(name) for name in _items(text)]
        bad = [name for name in names if username_problem(name)]
        if bad:
            raise Invalid(
                f"{', '.join(map(repr, bad))} {_are(bad)} not a valid username."
            )
        return frozenset(names)


# Linux capabilities Docker knows (without the CAP_ prefix).
CAPABILITIES = frozenset(
    """AUDIT_CONTROL AUDIT_READ AUDIT_WRITE BLOCK_SUSPEND BPF CHECKPOINT_RESTORE CHOWN
    DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID IPC_LOCK IPC_OWNER KILL LEASE
    LINUX_IMMUTABLE MAC_ADMIN MAC_OVERRIDE MKNOD NET_ADMIN NET_BIND_SERVICE NET_BROADCAST
    NET_RAW PERFMON SETFCAP SETGID SETPCAP SETUID SYS_ADMIN SYS_BOOT SYS_CHROOT
    SYS_MODULE SYS_NICE SYS_PACCT SYS_PTRACE SYS_RAWIO SYS_RESOURCE SYS_TIME
    SYS_TTY_CONFIG SYSLOG WAKE_ALARM""".split()
)


@dataclass(frozen=True)
class Capabilities:
    allowed: str = "Linux capability names such as CHOWN,SETUID, comma-separated"

    def __call__(self, text: str) -> tuple[str, ...]:
        names = [name.upper().removeprefix("CAP_") for name in _items(text)]
        unknown = [name for name in names if name not in CAPABILITIES]
        if unknown:
            raise Invalid(f"{', '.join(unknown)} {_are(unknown)} not a Linux capability.")
        return tuple(sorted(set(names)))


@dataclass(frozen=True)
class Addresses:
    """IP addresses, networks (CIDR) or host names."""

    allowed: str = "IP addresses, networks such as 172.18.0.0/16, or host names, comma-separated"

    def __call__(self, text: str) -> tuple[str, ...]:
        entries = tuple(_items(text))
        for entry in entries:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                if not _HOSTNAME.fullmatch(entry):
                    raise Invalid(
                        f"{entry!r} is neither an IP address, a network nor a host name."
                    ) from None
        return entries


# ---------------------------------------------------------------- secrets

GENERATE_HINT = (
    "generate one with `python3 -c 'import secrets; print(secrets.token_urlsafe(32))'` "
    "or create a fresh stack.env with `personal-hub init`"
)
# Values people put in by hand that are as good as no secret at all.
PLACEHOLDER = "change-me"
WEAK_SECRETS = frozenset(
    {PLACEHOLDER, "changeme", "change_me", "password", "secret", "admin", "jupyter", "123456"}
)


@dataclass(frozen=True)
class Secret:
    """A secret taken exactly as written; no message ever shows it."""

    min_length: int = 0

    @property
    def allowed(self) -> str:
        return f"at least {self.min_length} characters" if self.min_length else "any value"

    def __call__(self, text: str) -> str:
        if text != text.strip():
            raise Invalid(
                "has leading or trailing whitespace (a copy-paste accident?).",
                "remove the spaces around the value.",
            )
        if text.lower() in WEAK_SECRETS:
            raise Invalid(
                "is a placeholder or a well-known weak value.", f"replace it; {GENERATE_HINT}."
            )
        if len(text) < self.min_length:
            raise Invalid(
                f"is {len(text)} characters long; at least {self.min_length} are needed.",
                f"use a longer value; {GENERATE_HINT}.",
            )
        return text


_CONNECTION_NAME = re.compile(r"[a-z][a-z0-9_]{0,30}")
_URL_SCHEME = re.compile(r"[a-z][a-z0-9+._-]*")


@dataclass(frozen=True)
class Connections(Secret):
    """Database connections, `name=URL` separated by spaces; the URLs hold passwords, so
    no message shows one (only names and positions)."""

    @property
    def allowed(self) -> str:
        return ("name=URL pairs separated by spaces, e.g. sales=postgresql://reader:PASSWORD@"
                "db.lan:5432/sales (a name: a lower-case letter, then lower-case letters, "
                "digits or _)")

    def __call__(self, text: str) -> dict[str, str]:
        super().__call__(text)
        connections: dict[str, str] = {}
        for position, entry in enumerate(text.split(), start=1):
            name, equals, url = entry.partition("=")
            if not equals or not _CONNECTION_NAME.fullmatch(name):
                raise Invalid(f"entry {position} does not start with a name and =.",
                              f"write name=URL, e.g. sales=postgresql://..., {self.allowed}.")
            scheme, colon, rest = url.partition("://")
            if not colon or not _URL_SCHEME.fullmatch(scheme) or not rest:
                raise Invalid(f"the URL of {name} is not a database URL (driver://...).",
                              "use a SQLAlchemy URL such as postgresql://user:PASSWORD@host/db "
                              "(a password with @ : / % in it is written %40 %3A %2F %25).")
            if name in connections:
                raise Invalid(f"{name} is declared more than once.")
            connections[name] = url
        return connections


@dataclass(frozen=True)
class Destinations:
    """Addresses or networks user containers may reach whatever HUB_EGRESS says."""

    allowed: str = ("IP addresses or networks, each with an optional :port, comma-separated, "
                    "e.g. 192.168.1.20:11434, 10.0.5.0/24, [fd00::5]:5432")

    def __call__(self, text: str) -> tuple:
        from .egress import parse_destinations

        try:
            return parse_destinations(text)
        except ValueError as error:
            raise Invalid(f"{error}".rstrip(".") + ".") from None



# ---------------------------------------------------------------- Docker Swarm and volumes

_OPTION_KEY = re.compile(r"[a-z][a-z0-9_.-]*")
# The one placeholder a volume option may hold: the user's escaped name.
USERNAME_PLACEHOLDER = "{username}"


@dataclass(frozen=True)
class VolumeOptions:
    """Options of a volume driver, as `docker volume create --opt KEY=VALUE` takes them,
    separated by spaces; values may hold {username}."""

    allowed: str = ("driver options KEY=VALUE separated by spaces, as docker volume create "
                    "--opt takes them; {username} is the user's name, e.g. type=nfs "
                    "o=addr=nas.lan,rw,nfsvers=4.1 device=:/export/jupyter/{username}")

    def __call__(self, text: str) -> tuple[tuple[str, str], ...]:
        options = {}
        for word in text.split():
            key, equals, value = word.partition("=")
            if not equals or not _OPTION_KEY.fullmatch(key) or not value:
                raise Invalid(f"{word!r} is not KEY=VALUE.")
            if "{" in value.replace(USERNAME_PLACEHOLDER, "") or "}" in value.replace(
                    USERNAME_PLACEHOLDER, ""):
                raise Invalid(f"{word!r} has a placeholder other than {USERNAME_PLACEHOLDER}.")
            if key in options:
                raise Invalid(f"{key} is given twice.")
            options[key] = value
        return tuple(options.items())


_CONSTRAINT = re.compile(r"([A-Za-z0-9_.-]+)\s*(==|!=)\s*([A-Za-z0-9_.:/-]+)")


@dataclass(frozen=True)
class Constraints:
    """Swarm placement constraints, as `docker service create --constraint` takes them."""

    allowed: str = ("placement constraints such as node.labels.personal-hub.servers==true or "
                    "node.role!=manager, comma-separated")

    def __call__(self, text: str) -> tuple[str, ...]:
        constraints = []
        for item in _items(text):
            match = _CONSTRAINT.fullmatch(item)
            if not match:
                raise Invalid(f"{item!r} is not a constraint (ATTRIBUTE==VALUE or "
                              "ATTRIBUTE!=VALUE).")
            constraints.append("{} {} {}".format(*match.groups()))
        return tuple(constraints)
