"""Shared test helpers: free ports, polling with a deadline, processes with logs, browsers-like
login through the real JupyterHub login form."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

# Log files of the processes a test started; printed when a test fails (conftest hook).
LOG_FILES: list[Path] = []
# Callables returning (title, text) pairs of live logs (e.g. containers), also printed then.
LOG_COLLECTORS: list[Callable[[], list[tuple[str, str]]]] = []


def require(condition: bool, reason: str) -> None:
    """Skip loudly when a tier cannot run here, but never in CI: there every tier must run."""
    if condition:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI must run this tier, but: {reason}")
    pytest.skip(f"SKIPPED TIER: {reason}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(
    check: Callable[[], object], *, timeout: float, what: str, interval: float = 0.25
) -> object:
    """Poll `check` until it returns something truthy; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
        except Exception as error:  # noqa: BLE001 - the last one is reported
            last_error = error
        else:
            if result:
                return result
        time.sleep(interval)
    detail = f" (last error: {last_error!r})" if last_error else ""
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")


class Process:
    """A background process whose output goes to a log file that failing tests print."""

    def __init__(self, name: str, command: list[str], log_dir: Path, **popen_kwargs):
        self.name = name
        self.command = command
        self.log_path = log_dir / f"{name}.log"
        LOG_FILES.append(self.log_path)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            command,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            **popen_kwargs,
        )

    @property
    def running(self) -> bool:
        return self.popen.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 20) -> int:
        if self.running:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        self._log.close()
        return self.popen.returncode


def xsrf_from(session: requests.Session) -> str:
    for cookie in session.cookies:
        if cookie.name == "_xsrf":
            return cookie.value
    raise AssertionError("no _xsrf cookie was set")


def login(
    base_url: str, username: str, password: str, *, session: requests.Session | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[requests.Session, requests.Response]:
    """Log in through the real login form (with its XSRF token), as a browser would."""
    session = session or requests.Session()
    page = session.get(f"{base_url}/hub/login", timeout=10)
    assert page.status_code == 200, page.text[:500]
    match = re.search(r'name="_xsrf"\s+value="([^"]+)"', page.text)
    assert match, "the login form has no _xsrf field"
    response = session.post(
        f"{base_url}/hub/login",
        data={"_xsrf": match.group(1), "username": username, "password": password},
        headers=headers,
        allow_redirects=False,
        timeout=30,
    )
    return session, response


def login_error(response: requests.Response) -> str:
    """The error text JupyterHub's login page shows, or ''."""
    match = re.search(r'class="login_error">\s*(.*?)\s*</p>', response.text, re.S)
    return match.group(1) if match else ""


class _SourceAddressAdapter(requests.adapters.HTTPAdapter):
    def __init__(self, source: str):
        self.source = source
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.source, 0)
        super().init_poolmanager(*args, **kwargs)


def session_from(source: str) -> requests.Session:
    """A session whose connections come from `source`, another loopback address
    (127.0.0.0/8 is all loopback): a second client, as the proxy and the hub see it."""
    session = requests.Session()
    adapter = _SourceAddressAdapter(source)
    session.mount("http://", adapter)
    return session


def create_token(session: requests.Session, base_url: str, user: str, note: str) -> str:
    """An API token for `user`, made with a logged-in session like the hub's Token page."""
    session.get(f"{base_url}/hub/token", timeout=10)  # a page load refreshes the XSRF cookie
    created = session.post(
        f"{base_url}/hub/api/users/{user}/tokens",
        json={"note": note, "expires_in": 3600},
        headers={"X-XSRFToken": xsrf_from(session)},
        timeout=10,
    )
    assert created.status_code == 201, created.text
    return created.json()["token"]


def progress_messages(session: requests.Session, url: str, name: str) -> list[str]:
    """The start page's progress events (its EventSource), up to the `ready` one."""
    stream = session.get(
        f"{url}/hub/api/users/{name}/server/progress",
        headers={"X-XSRFToken": xsrf_from(session)},
        stream=True,
        timeout=120,
    )
    assert stream.status_code == 200, stream.text
    messages = []
    for line in stream.iter_lines(decode_unicode=True):
        if not line.startswith("data:"):
            continue
        event = json.loads(line.removeprefix("data:"))
        assert not event.get("failed"), event
        messages.append(event.get("message", ""))
        if event.get("ready"):
            break
    stream.close()
    return messages


IMAGE_MODULES = Path(__file__).resolve().parents[1] / "docker/singleuser"


def image_module(name: str):
    """A module the single-user image installs (docker/singleuser/<name>.py), imported
    from the checkout under its own name."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, IMAGE_MODULES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

