"""`personal_hub.backup`: what `./hub restore` accepts, and every archive it must refuse
before touching anything (the Docker tier restores a real stack from a real backup)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile

import pytest

from personal_hub import backup
from personal_hub.backup import BackupError, Contents, check_archive

VOLUMES = {"ann": "jupyterhub-user-ann"}
DUMP = b"PGDMP fake dump"


def entry(archive: tarfile.TarFile, name: str, data: bytes | None = None) -> None:
    info = tarfile.TarInfo(name)
    if data is None:
        info.type = tarfile.DIRTYPE
        archive.addfile(info)
    else:
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))


def make_archive(*, manifest: dict | None = None, extra: list[tuple[str, bytes | None]] = (),
                 end: dict | None = None, skip_end: bool = False) -> bytes:
    """An archive as ./hub backup writes it, with the given changes."""
    manifest = manifest or backup.manifest_for("demo", VOLUMES, now=0)
    contents = Contents(manifest=manifest)
    entries = [(backup.ENV_FILE, b"JUPYTER_PASSWORD=x\n"), (backup.DATABASE, DUMP),
               ("volumes/hub-data", None), ("volumes/hub-data/jupyterhub_cookie_secret", b"c"),
               ("volumes/home/jupyterhub-user-ann", None),
               ("volumes/home/jupyterhub-user-ann/notes.txt", b"hello"), *extra]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        entry(archive, backup.MANIFEST, json.dumps(manifest).encode())
        for name, data in entries:
            entry(archive, name, data)
            found = backup.part_of(name, set(VOLUMES.values()))
            if found:
                contents.count(found[0])
        contents.database_sha256 = hashlib.sha256(DUMP).hexdigest()
        if not skip_end:
            marker = end if end is not None else json.loads(backup.end_marker(contents))
            entry(archive, backup.END, json.dumps(marker).encode())
    return buffer.getvalue()


def check(data: bytes, database_out=None) -> Contents:
    return check_archive(io.BytesIO(data), database_out)


def refused(data: bytes) -> str:
    with pytest.raises(BackupError) as error:
        check(data)
    return str(error.value)


def test_a_backup_as_written_is_accepted_with_its_parts():
    dump = io.BytesIO()
    contents = check(make_archive(), dump)
    assert contents.manifest["home_volumes"] == VOLUMES
    assert contents.env_text == "JUPYTER_PASSWORD=x\n"
    assert dump.getvalue() == DUMP
    assert contents.entries == {"stack.env": 1, "database.dump": 1, "hub-data": 2,
                                "jupyterhub-user-ann": 2}


def test_a_cut_short_archive_is_refused_wherever_it_is_cut():
    whole = make_archive()
    for cut in (10, len(whole) // 2, len(whole) - 30, len(whole) - 1):
        assert "damaged" in refused(whole[:cut]) or "incomplete" in refused(whole[:cut])


def test_a_cleanly_closed_archive_without_its_end_is_refused():
    assert "incomplete" in refused(make_archive(skip_end=True))


def test_contents_that_do_not_match_the_end_marker_are_refused():
    assert "do not match" in refused(make_archive(end={"entries": {}, "database_sha256": ""}))


def test_other_kinds_of_file_are_refused():
    assert "damaged or not a backup" in refused(b"just some text, not gzip")
    assert "damaged or not a backup" in refused(gzip.compress(b"gzip, but no tar inside"))
    plain = io.BytesIO()
    with tarfile.open(fileobj=plain, mode="w:gz") as archive:
        entry(archive, "photo.jpg", b"...")
    assert "no manifest" in refused(plain.getvalue())
    assert "empty" in refused(gzip.compress(b"\0" * 1024))


def test_other_format_versions_are_refused_with_which_one():
    older = {**backup.manifest_for("demo", VOLUMES, now=0), "version": 0}
    newer = {**older, "version": backup.FORMAT_VERSION + 1}
    assert "an older personal-hub (backup format 0" in refused(make_archive(manifest=older))
    assert "a newer personal-hub" in refused(make_archive(manifest=newer))
    other = {**older, "format": "something-else"}
    assert "not a personal-hub backup" in refused(make_archive(manifest=other))


@pytest.mark.parametrize("name", [
    "/etc/passwd", "volumes/home/jupyterhub-user-ann/../../escape",
    "volumes/home/jupyterhub-user-bob/notes.txt",  # a volume the manifest does not list
    "elsewhere.txt",
])
def test_entries_outside_the_listed_volumes_are_refused(name):
    assert "unexpected entry" in refused(make_archive(extra=[(name, b"x")]))


def test_volume_names_in_the_manifest_must_be_docker_names():
    bad = backup.manifest_for("demo", {"ann": "../../x"}, now=0)
    assert "home volumes is damaged" in refused(make_archive(manifest=bad))


def test_entries_of_a_volume_keep_their_place_inside_it():
    homes = set(VOLUMES.values())
    assert backup.part_of("volumes/home/jupyterhub-user-ann", homes) == (
        "jupyterhub-user-ann", ".")
    assert backup.part_of("volumes/home/jupyterhub-user-ann/a/b.txt", homes) == (
        "jupyterhub-user-ann", "a/b.txt")
    assert backup.part_of("volumes/hub-data/jupyterhub_cookie_secret", homes) == (
        "hub-data", "jupyterhub_cookie_secret")
