"""Someone left: `personal-hub rotate` on a real hub. Their cookie, their tokens (even one
minted for someone else) and the old password stop working; files and users stay; the
settings decide who is admin."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.helpers import create_token, login, login_error, xsrf_from
from tests.services.test_hub import spawn_and_open

pytestmark = pytest.mark.security


@pytest.fixture(scope="module")
def hub(make_hub):
    return make_hub()


def write_env_file(hub, path: Path) -> None:
    lines = [f"{name}={value}" for name, value in hub.environ.items()]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)


def personal_hub(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "personal_hub", *args],
        capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})},
    )


def mint_token(session, hub, for_user: str) -> str:
    return create_token(session, hub.url, for_user, "minted before rotation")


def token_works(hub, token: str) -> bool:
    response = requests.get(
        f"{hub.url}/hub/api/user", headers={"Authorization": f"token {token}"}, timeout=10
    )
    return response.status_code == 200


def test_rotate_locks_out_everything_issued_before_and_keeps_files(hub, tmp_path):
    old_password = hub.environ["JUPYTER_PASSWORD"]
    leaver, response = login(hub.url, "leaver", old_password)
    assert response.status_code == 302, login_error(response)
    spawn_and_open(leaver, hub.url, "leaver")
    leaver_token = mint_token(leaver, hub, "leaver")
    admin, _ = login(hub.url, "admin", hub.environ["JUPYTER_ADMIN_PASSWORD"])
    token_for_someone_else = mint_token(admin, hub, "leaver")
    home = Path(hub.environ["HUB_DATA_DIR"], "users", "leaver")
    (home / "work.txt").write_text("kept")
    assert token_works(hub, leaver_token) and token_works(hub, token_for_someone_else)

    env_file = tmp_path / "stack.env"
    write_env_file(hub, env_file)
    hub.stop()
    rotated = personal_hub("rotate", "--env-file", str(env_file),
                           env={"PATH": os.environ["PATH"]})
    assert rotated.returncode == 0, rotated.stderr
    new_password = rotated.stdout.splitlines()[1]  # printed once, after its heading
    assert new_password != old_password and new_password in env_file.read_text()
    assert "stopped servers: leaver" in rotated.stdout
    assert oct(env_file.stat().st_mode & 0o777) == "0o600"
    hub.environ["JUPYTER_PASSWORD"] = new_password
    hub.start()

    home_page = leaver.get(f"{hub.url}/hub/home", timeout=10, allow_redirects=False)
    assert home_page.status_code == 302 and "/hub/login" in home_page.headers["Location"]
    assert not token_works(hub, leaver_token)
    assert not token_works(hub, token_for_someone_else)
    assert login(hub.url, "leaver", old_password)[1].status_code == 403
    again, response = login(hub.url, "leaver", new_password)
    assert response.status_code == 302
    spawn_and_open(again, hub.url, "leaver")
    assert (home / "work.txt").read_text() == "kept"


def test_renaming_the_admin_takes_the_rights_away(hub):
    admin, response = login(hub.url, "admin", hub.environ["JUPYTER_ADMIN_PASSWORD"])
    assert response.status_code == 302
    hub.stop()
    hub.environ["JUPYTER_ADMIN_USER"] = "newboss"
    hub.start()

    boss, response = login(hub.url, "newboss", hub.environ["JUPYTER_ADMIN_PASSWORD"])
    assert response.status_code == 302, login_error(response)
    users = boss.get(f"{hub.url}/hub/api/users", headers={"X-XSRFToken": xsrf_from(boss)},
                     timeout=10)
    admins = {user["name"] for user in users.json() if user.get("admin")}
    assert admins == {"newboss"}
    # The old admin's cookie no longer opens the admin panel.
    panel = admin.get(f"{hub.url}/hub/admin", timeout=10, allow_redirects=False)
    assert panel.status_code != 200


def test_rotate_refuses_a_missing_env_file_clearly(tmp_path):
    result = personal_hub("rotate-password", "--env-file", str(tmp_path / "nope.env"))
    assert result.returncode == 1
    assert "does not exist" in result.stderr and "Traceback" not in result.stderr
