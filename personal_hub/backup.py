"""One archive that holds a whole stack, and the checks that make restoring it safe.

`./hub backup FILE` writes a gzip-compressed tar archive:

- `personal-hub-backup.json` first: what this is (format and version), when and from
  which project it was made, the users and their home volumes;
- `stack.env`: the settings and secrets (the archive is as secret as stack.env);
- `database.dump`: `pg_dump --format=custom` of the hub's database, one consistent
  snapshot taken while the stack runs;
- `volumes/hub-data/...`: the hub's data volume (cookie secret, config.d);
- `volumes/home/<volume>/...`: every user's home volume, owners and modes kept;
- `personal-hub-backup.end` last: how many entries each part holds, and the database
  dump's SHA-256, so a cut-short archive is noticed even where gzip would not notice.

`./hub restore FILE` reads the whole archive once to check it (`check_archive`) before it
touches anything. Standard library only: it runs with the host's python3.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import PurePosixPath

FORMAT = "personal-hub-backup"
FORMAT_VERSION = 1
MANIFEST = "personal-hub-backup.json"
END = "personal-hub-backup.end"
ENV_FILE = "stack.env"
DATABASE = "database.dump"
HUB_DATA = "volumes/hub-data"
HOMES = "volumes/home"


class BackupError(Exception):
    """A problem with an archive or a stack that the message explains."""


@dataclass
class Contents:
    """What an archive holds, as read from it (or as written into it)."""

    manifest: dict = field(default_factory=dict)
    entries: dict[str, int] = field(default_factory=dict)  # part -> entries
    database_sha256: str = ""
    env_text: str | None = None

    def count(self, part: str) -> None:
        self.entries[part] = self.entries.get(part, 0) + 1


def manifest_for(project: str, volumes: dict[str, str], now: float | None = None) -> dict:
    """The manifest of a backup of `project` whose users have the `volumes` {user: volume}."""
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        "project": project,
        "home_volumes": dict(sorted(volumes.items())),
    }


def manifest_problem(manifest: object) -> str | None:
    """Why `manifest` is not one this version restores, or None."""
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        return "it is not a personal-hub backup"
    version = manifest.get("version")
    if not isinstance(version, int):
        return "its format version is missing"
    if version != FORMAT_VERSION:
        age = "an older" if version < FORMAT_VERSION else "a newer"
        return (f"it was made by {age} personal-hub (backup format {version}; this one "
                f"restores format {FORMAT_VERSION})")
    volumes = manifest.get("home_volumes")
    if not isinstance(volumes, dict) or not all(
            isinstance(name, str) and is_volume_name(volume) for name, volume in volumes.items()):
        return "its list of home volumes is damaged"
    return None


def is_volume_name(name: object) -> bool:
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
    return isinstance(name, str) and 0 < len(name) <= 255 and name[0].isalnum() \
        and set(name) <= allowed


def part_of(member_name: str, home_volumes: set[str]) -> tuple[str, str] | None:
    """(part, path inside it) for an archive entry: part is `stack.env`, `database.dump`,
    `hub-data` or a home volume's name. None for anything else, including paths that
    would leave their volume (absolute, `..`)."""
    path = PurePosixPath(member_name)
    if path.is_absolute() or ".." in path.parts:
        return None
    if member_name in (ENV_FILE, DATABASE):
        return member_name, ""
    parts = path.parts
    if parts[:2] == ("volumes", "hub-data"):
        return "hub-data", "/".join(parts[2:]) or "."
    if parts[:2] == ("volumes", "home") and len(parts) >= 3 and parts[2] in home_volumes:
        return parts[2], "/".join(parts[3:]) or "."
    return None


def check_archive(fileobj, database_out=None) -> Contents:
    """Read a whole archive and return what it holds (the database dump goes to
    `database_out`, a binary file, when given); BackupError if it is not a personal-hub
    backup this version restores, or damaged (cut short, corrupted)."""
    contents = Contents()
    digest = hashlib.sha256()
    end = None
    try:
        unpacked = gzip.GzipFile(fileobj=fileobj, mode="rb")
        with tarfile.open(fileobj=unpacked, mode="r|") as archive:
            first = True
            for member in archive:
                if first:
                    contents.manifest = read_manifest(archive, member)
                    first = False
                    continue
                if end is not None:
                    raise BackupError("it has entries after its end marker")
                if member.name == END:
                    end = read_json(archive, member)
                    continue
                part = part_of(member.name, set(contents.manifest["home_volumes"].values()))
                if part is None or not (member.isfile() or member.isdir() or member.issym()
                                        or member.islnk()):
                    raise BackupError(f"it holds an unexpected entry: {member.name!r}")
                contents.count(part[0])
                if member.name == DATABASE:
                    for chunk in chunks(archive.extractfile(member)):
                        digest.update(chunk)
                        if database_out is not None:
                            database_out.write(chunk)
                elif member.name == ENV_FILE:
                    if member.size > 1 << 20:
                        raise BackupError("its stack.env is too large to be one")
                    contents.env_text = archive.extractfile(member).read().decode(
                        "utf-8", "replace")
        for _ in chunks(unpacked):  # to the end: gzip checks its length and CRC there
            pass
    except (tarfile.TarError, EOFError, zlib.error, OSError) as error:
        raise BackupError(f"it is damaged or not a backup ({error})") from None
    if not contents.manifest:
        raise BackupError("it is empty")
    contents.database_sha256 = digest.hexdigest()
    if end is None:
        raise BackupError("it is incomplete (cut short: its end marker is missing)")
    if end.get("entries") != contents.entries or \
            end.get("database_sha256") != contents.database_sha256:
        raise BackupError("it is damaged (its contents do not match its end marker)")
    if contents.env_text is None or DATABASE not in contents.entries:
        raise BackupError("it lacks stack.env or the database")
    return contents


def chunks(stream, size: int = 1 << 20) -> Iterator[bytes]:
    while True:
        chunk = stream.read(size)
        if not chunk:
            return
        yield chunk


def read_json(archive: tarfile.TarFile, member: tarfile.TarInfo) -> dict:
    if not member.isfile() or member.size > 10 << 20:
        raise BackupError(f"it is not a personal-hub backup ({member.name!r})")
    try:
        data = json.loads(archive.extractfile(member).read().decode())
    except (ValueError, UnicodeDecodeError):
        raise BackupError(f"its {member.name} is damaged") from None
    if not isinstance(data, dict):
        raise BackupError(f"its {member.name} is damaged")
    return data


def read_manifest(archive: tarfile.TarFile, member: tarfile.TarInfo) -> dict:
    if member.name != MANIFEST:
        raise BackupError("it is not a personal-hub backup (no manifest at its start)")
    manifest = read_json(archive, member)
    problem = manifest_problem(manifest)
    if problem:
        raise BackupError(problem)
    return manifest


def add_bytes(archive: tarfile.TarFile, name: str, data: bytes, mode: int = 0o600) -> None:
    add_stream(archive, name, io.BytesIO(data), len(data), mode)


def add_stream(archive: tarfile.TarFile, name: str, stream, size: int,
               mode: int = 0o600) -> None:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = mode
    info.mtime = int(time.time())
    archive.addfile(info, stream)


def copy_volume(source: tarfile.TarFile, archive: tarfile.TarFile, prefix: str,
                contents: Contents, part: str) -> None:
    """Every entry of a volume's tar stream (`tar -C VOLUME -cf - .`) into the archive,
    under `prefix`, owners and modes as they are."""
    for member in source:
        relative = PurePosixPath(member.name)
        if relative.is_absolute() or ".." in relative.parts:
            continue
        member.name = str(PurePosixPath(prefix, relative))  # "./x" -> prefix/x, "." -> prefix
        archive.addfile(member, source.extractfile(member) if member.isfile() else None)
        contents.count(part)


def end_marker(contents: Contents) -> bytes:
    return json.dumps({"entries": contents.entries,
                       "database_sha256": contents.database_sha256}).encode()
