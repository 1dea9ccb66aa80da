"""`personal-hub run --local`, the way `./hub try` runs it: a stack.env from `init --local`,
embedded SQLite, the proxy started by the hub itself, user servers as local processes."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
import requests

from personal_hub.cli import read_env_file
from tests.helpers import Process, free_port, login, login_error, require, wait_for

pytestmark = pytest.mark.services


@pytest.fixture
def trial_hub(tmp_path, services_dir):
    require(shutil.which("configurable-http-proxy") is not None,
            "configurable-http-proxy is not on PATH (./hub test installs it)")
    bin_dir = Path(sys.executable).parent
    env_file = tmp_path / "stack.env"
    data_dir = tmp_path / "data"
    cli = [str(bin_dir / "personal-hub")]
    init = Process("init-local", [*cli, "init", "--local", "--env-file", str(env_file),
                                  "--data-dir", str(data_dir)], tmp_path, cwd=tmp_path)
    assert init.popen.wait(30) == 0, init.log()
    port, api_port, hub_port = free_port(), free_port(), free_port()
    with open(env_file, "a") as file:
        file.write(f"HUB_BIND_URL=http://127.0.0.1:{port}\n")
    # Free ports for the hub API and the hub-managed proxy's API, through the override hook.
    config_d = data_dir / "jupyterhub_config.d"
    config_d.mkdir(parents=True)
    (config_d / "10-ports.py").write_text(
        f"c.JupyterHub.hub_port = {hub_port}\n"
        f"c.ConfigurableHTTPProxy.api_url = 'http://127.0.0.1:{api_port}'\n"
    )
    environ = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root")}
    hub = Process(
        "personal-hub-run",
        [*cli, "run", "--env-file", str(env_file), "--local"],
        services_dir,
        cwd=tmp_path,
        env=environ,
    )
    url = f"http://127.0.0.1:{port}"

    def answering():
        assert hub.running, "personal-hub run exited"
        return requests.get(f"{url}/hub/api/", timeout=2).status_code == 200

    try:
        wait_for(answering, timeout=90, what="`personal-hub run --local` to answer")
        yield url, read_env_file(env_file), data_dir, hub
    finally:
        hub.stop()


def test_run_local_serves_a_user_end_to_end(trial_hub):
    url, env, data_dir, hub = trial_hub
    session, response = login(url, "tina", env["JUPYTER_PASSWORD"])
    assert response.status_code == 302, login_error(response)
    session.get(f"{url}/hub/spawn", timeout=60)

    def lab():
        page = session.get(f"{url}/user/tina/lab", timeout=10)
        return page.status_code == 200 and "JupyterLab" in page.text

    wait_for(lab, timeout=90, what="tina's local server")
    assert session.get(f"{url}/user/tina/api/status", timeout=10).status_code == 200
    # Embedded SQLite and per-user directories live in the data directory.
    assert (data_dir / "jupyterhub.sqlite").exists()
    assert (data_dir / "users" / "tina").is_dir()
    assert (data_dir / "jupyterhub_cookie_secret").exists()
    # Stop tina's server through the hub before the hub goes (hub-managed mode).
    xsrf = next(c.value for c in session.cookies if c.name == "_xsrf")
    stopped = session.delete(
        f"{url}/hub/api/users/tina/server", headers={"X-XSRFToken": xsrf}, timeout=60
    )
    assert stopped.status_code in (202, 204)
    assert env["JUPYTER_PASSWORD"] not in hub.log()
