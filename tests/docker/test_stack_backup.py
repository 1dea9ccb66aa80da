"""`./hub backup` and `./hub restore` on real stacks: back up a running stack with users,
files and a share, destroy it with its volumes, restore it into a fresh copy under another
project name, and find everything again; damaged archives and occupied targets are
refused with nothing changed.

Tests run in file order against this module's own stacks.
"""

from __future__ import annotations

import base64
import hashlib
import stat
import tarfile

import pytest
import requests

from tests.docker.conftest import Stack, managed, run
from tests.docker.test_stack import api, open_server, read_file, write_file
from tests.helpers import login, login_error

pytestmark = pytest.mark.docker

# Text, a nested path, bytes that are not text, and an empty file.
FILES = {
    "notes.txt": "kept across a backup\n",
    "project/data/table.csv": "a,b\n1,2\n",
    "project/blob.bin": bytes(range(256)) * 64,
    "empty.txt": "",
}


@pytest.fixture(scope="module")
def original(standins):
    with managed(Stack(standins)) as stack:
        stack.hub_up()
        yield stack


@pytest.fixture(scope="module")
def fresh(standins):
    """A fresh copy of the checkout with another compose project name: a new host."""
    with managed(Stack(standins)) as stack:
        yield stack


def hub(stack: Stack, *args: str, check: bool = True):
    return run(["sh", "./hub", *args], cwd=stack.repo, env=stack.environ(), timeout=1800,
               check=check)


def put_bytes(session: requests.Session, url: str, user: str, path: str, data: bytes):
    """Upload like JupyterLab does (base64 for anything that is not text)."""
    if "/" in path:
        folder = ""
        for part in path.split("/")[:-1]:
            folder = f"{folder}/{part}".lstrip("/")
            api_put(session, url, user, folder, {"type": "directory"})
    api_put(session, url, user, path, {"type": "file", "format": "base64",
                                        "content": base64.b64encode(data).decode()})


def api_put(session, url, user, path, model):
    xsrf = session.cookies.get("_xsrf", path=f"/user/{user}/")
    response = session.put(f"{url}/user/{user}/api/contents/{path}", json=model,
                           headers={"X-XSRFToken": xsrf} if xsrf else {}, timeout=30)
    assert response.status_code in (200, 201), response.text


def get_bytes(session: requests.Session, url: str, user: str, path: str) -> bytes:
    response = session.get(f"{url}/user/{user}/files/{path}", timeout=30)
    assert response.status_code == 200, response.text
    return response.content


def digests(session, url, user) -> dict[str, str]:
    return {path: hashlib.sha256(get_bytes(session, url, user, path)).hexdigest()
            for path in FILES}


def user_names(session: requests.Session, url: str) -> set[str]:
    listed = api(session, "GET", f"{url}/hub/api/users")
    assert listed.status_code == 200, listed.text
    return {user["name"] for user in listed.json()}


@pytest.fixture(scope="module")
def before(original):
    """Two people working, files written, a share, and the admin: then the backup."""
    password = original.env_file()["JUPYTER_PASSWORD"]
    people = {}
    for role in ("ann", "ben"):
        name = f"{original.prefix}{role}"
        session, response = login(original.url, name, password)
        assert response.status_code == 302, login_error(response)
        open_server(session, original.url, name)
        people[role] = (name, session)
    ann, ann_session = people["ann"]
    for path, content in FILES.items():
        data = content if isinstance(content, bytes) else content.encode()
        put_bytes(ann_session, original.url, ann, path, data)
    write_file(people["ben"][1], original.url, people["ben"][0], "ben.txt", "ben's own")
    shared = api(ann_session, "POST", f"{original.url}/hub/api/shares/{ann}/",
                 json={"user": people["ben"][0]})
    assert shared.status_code == 200, shared.text
    env = original.env_file()
    admin, response = login(original.url, env["JUPYTER_ADMIN_USER"],
                            env["JUPYTER_ADMIN_PASSWORD"])
    assert response.status_code == 302, login_error(response)
    archive = original.dir / "backup.tar.gz"
    # While both servers run.
    result = hub(original, "backup", str(archive))
    return {
        "people": people, "archive": archive, "output": result.stderr,
        "users": user_names(admin, original.url), "env": env,
        "files": digests(ann_session, original.url, ann),
    }


def test_backup_of_a_running_stack_is_one_private_archive(original, before):
    archive = before["archive"]
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    assert f"saved {archive}" in before["output"] and "MiB" in before["output"]
    assert "keep it as safe as that file" in before["output"]
    with tarfile.open(archive) as opened:
        names = opened.getnames()
    ann = before["people"]["ann"][0]
    assert names[0] == "personal-hub-backup.json" and names[-1] == "personal-hub-backup.end"
    assert f"volumes/home/jupyterhub-user-{ann}/project/blob.bin" in names
    assert "database.dump" in names and "stack.env" in names
    # The servers kept running through it.
    for name, session in before["people"].values():
        assert session.get(f"{original.url}/user/{name}/api/status", timeout=30).ok


def test_backup_refuses_to_replace_a_file(original, before):
    result = hub(original, "backup", str(before["archive"]), check=False)
    assert result.returncode == 1
    assert "never replaces a file" in result.stderr


def test_damaged_archives_are_refused_and_nothing_is_created(fresh, before):
    whole = before["archive"].read_bytes()
    truncated = fresh.dir / "truncated.tar.gz"
    truncated.write_bytes(whole[: len(whole) * 2 // 3])
    wrong = fresh.dir / "notes.txt"
    wrong.write_text("not an archive\n")
    for path, reason in ((truncated, "damaged"), (wrong, "not a backup")):
        result = hub(fresh, "restore", str(path), check=False)
        assert result.returncode == 1, result.stderr
        assert reason in result.stderr and "Nothing was changed" in result.stderr
        assert "Traceback" not in result.stderr
    assert not (fresh.repo / "stack.env").exists()
    volumes = run(["docker", "volume", "ls", "--format", "{{.Name}}"]).stdout.split()
    assert not [name for name in volumes if name.startswith(fresh.prefix)]


def test_restore_refuses_a_target_that_has_data(original, before):
    result = hub(original, "restore", str(before["archive"]), check=False)
    assert result.returncode == 1
    assert "restore only into a new stack" in result.stderr
    assert "Nothing was changed" in result.stderr


def test_everything_comes_back_after_the_stack_and_its_volumes_are_gone(
        original, fresh, before):
    hub(original, "down")
    original.compose("down", "--volumes")
    homes = [f"jupyterhub-user-{name}" for name, _ in before["people"].values()]
    run(["docker", "volume", "rm", *homes])

    restored = hub(fresh, "restore", str(before["archive"]))
    assert "restored 2 users' files" in restored.stderr, restored.stderr
    assert stat.S_IMODE((fresh.repo / "stack.env").stat().st_mode) == 0o600

    # The same password, the same files, byte for byte.
    ann = before["people"]["ann"][0]
    password = before["env"]["JUPYTER_PASSWORD"]
    session, response = login(fresh.url, ann, password)
    assert response.status_code == 302, login_error(response)
    open_server(session, fresh.url, ann)
    assert digests(session, fresh.url, ann) == before["files"]
    ben, _ = before["people"]["ben"]
    ben_session, response = login(fresh.url, ben, password)
    assert response.status_code == 302, login_error(response)
    open_server(ben_session, fresh.url, ben)
    assert read_file(ben_session, fresh.url, ben, "ben.txt") == "ben's own"
    # The share is back: ben may open ann's server, as before.
    shares = api(session, "GET", f"{fresh.url}/hub/api/shares/{ann}/")
    assert shares.status_code == 200, shares.text
    assert [item["user"]["name"] for item in shares.json()["items"]] == [ben]
    # The same users, and the admin with the admin password.
    env = before["env"]
    admin, response = login(fresh.url, env["JUPYTER_ADMIN_USER"], env["JUPYTER_ADMIN_PASSWORD"])
    assert response.status_code == 302, login_error(response)
    assert user_names(admin, fresh.url) == before["users"]
