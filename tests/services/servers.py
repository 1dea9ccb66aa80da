"""Real server processes for the tiers that need no Docker: a throwaway PostgreSQL, an
external configurable-http-proxy and JupyterHub from the packaged config, each on a free
127.0.0.1 port in a temporary directory, as the compose stack wires them. The services
and security tiers start them through their fixtures.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg2
import requests

from personal_hub.devenv import postgres_bin_dir
from tests.helpers import Process, free_port, require, wait_for

DB_NAME = "jupyterhub"
DB_USER = "jupyterhub"


class Postgres:
    """A throwaway PostgreSQL server. Run as the `postgres` user when we are root."""

    def __init__(self, base: Path):
        bin_dir = postgres_bin_dir()
        require(bin_dir is not None, "PostgreSQL server binaries (initdb) not found")
        self.bin_dir = bin_dir
        self.dir = base / "pg"
        self.dir.mkdir()
        self.port = free_port()
        self.superuser_password = secrets.token_urlsafe(24)
        self.password = secrets.token_urlsafe(24)
        self.run_as = None
        if os.geteuid() == 0:
            self.run_as = pwd.getpwnam("postgres")
            os.chown(self.dir, self.run_as.pw_uid, self.run_as.pw_gid)
        pwfile = self.dir / "pwfile"
        pwfile.write_text(self.superuser_password)
        if self.run_as:
            os.chown(pwfile, self.run_as.pw_uid, self.run_as.pw_gid)
        self._run(
            [
                str(bin_dir / "initdb"),
                "-D", str(self.dir / "data"),
                "-U", "postgres",
                "--auth=scram-sha-256",
                f"--pwfile={pwfile}",
                "--no-sync",
            ]
        )
        self.process = Process(
            "postgres",
            self._as_user(
                [
                    str(bin_dir / "postgres"),
                    "-D", str(self.dir / "data"),
                    "-p", str(self.port),
                    "-h", "127.0.0.1",
                    "-k", str(self.dir),
                    "-c", "fsync=off",
                ]
            ),
            base,
        )
        wait_for(self._ready, timeout=60, what="PostgreSQL to accept connections")
        conn = self.connect("postgres")
        conn.autocommit = True
        try:
            with conn.cursor() as cursor:
                cursor.execute(f"CREATE ROLE {DB_USER} LOGIN PASSWORD %s", (self.password,))
                cursor.execute(f"CREATE DATABASE {DB_NAME} OWNER {DB_USER}")
        finally:
            conn.close()

    def _as_user(self, command: list[str]) -> list[str]:
        if self.run_as:
            return ["runuser", "-u", "postgres", "--", *command]
        return command

    def _run(self, command: list[str]) -> None:
        subprocess.run(self._as_user(command), check=True, capture_output=True, timeout=120)

    def connect(self, database: str = DB_NAME):
        return psycopg2.connect(
            host="127.0.0.1",
            port=self.port,
            user="postgres",
            password=self.superuser_password,
            dbname=database,
            connect_timeout=5,
        )

    def _ready(self) -> bool:
        self.connect("postgres").close()
        return True

    def query(self, sql: str, params=(), database: str = DB_NAME) -> list[tuple]:
        conn = self.connect(database)
        try:
            with conn.cursor() as cursor:
                cursor.execute(sql, params)
                return cursor.fetchall()
        finally:
            conn.close()

    def stop(self) -> None:
        self.process.stop()


class Proxy:
    """configurable-http-proxy started on its own, as the compose stack runs it."""

    def __init__(self, base: Path, hub_port: int):
        self.chp = shutil.which("configurable-http-proxy")
        require(self.chp is not None,
                "configurable-http-proxy is not on PATH (./hub test installs it)")
        self.base = base
        self.hub_port = hub_port
        self.port = free_port()
        self.api_port = free_port()
        self.token = secrets.token_urlsafe(32)
        self.url = f"http://127.0.0.1:{self.port}"
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.starts = 0
        self.start()

    def start(self) -> None:
        """Start on the same ports with the same token; a new proxy has no routes."""
        self.starts += 1
        hub = f"http://127.0.0.1:{self.hub_port}"
        self.process = Process(
            f"proxy-{self.starts}",
            [
                self.chp,
                "--ip", "127.0.0.1",
                "--port", str(self.port),
                "--api-ip", "127.0.0.1",
                "--api-port", str(self.api_port),
                "--default-target", hub,
                "--error-target", f"{hub}/hub/error",
            ],
            self.base,
            env={**os.environ, "CONFIGPROXY_AUTH_TOKEN": self.token},
        )
        wait_for(self._ready, timeout=30, what="configurable-http-proxy API")

    def _ready(self) -> bool:
        response = requests.get(
            f"{self.api_url}/api/routes",
            headers={"Authorization": f"token {self.token}"},
            timeout=2,
        )
        return response.status_code == 200

    def routes(self) -> dict:
        response = requests.get(
            f"{self.api_url}/api/routes",
            headers={"Authorization": f"token {self.token}"},
            timeout=5,
        )
        response.raise_for_status()
        return response.json()

    def stop(self) -> None:
        self.process.stop()


class Hub:
    """JupyterHub run from the packaged config with an environment like stack.env, by
    `personal-hub run` (settings checked, JupyterHub in that same process)."""

    def __init__(self, base: Path, environ: dict[str, str], hub_port: int, url: str):
        self.base = base
        self.environ = environ
        self.hub_port = hub_port
        self.url = url
        self.process: Process | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        # The venv's bin holds jupyterhub-singleuser, which the local spawner runs.
        path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        env = {**self.environ, "PATH": path, "HOME": os.environ.get("HOME", "/root")}
        self.process = Process(
            f"hub-{self.starts}",
            [sys.executable, "-m", "personal_hub", "run"],  # as the hub image runs it
            self.base,
            env=env,
            cwd=self.environ["HUB_DATA_DIR"],
        )
        wait_for(self._ready, timeout=90, what="the hub to answer through the proxy")

    def _ready(self) -> bool:
        assert self.process and self.process.running, "the hub process exited"
        response = requests.get(f"{self.url}/hub/api/", timeout=2)
        return response.status_code == 200

    def stop(self) -> int:
        assert self.process
        return self.process.stop(timeout=30)


def hub_environment(base: Path, postgres: Postgres, proxy: Proxy, hub_port: int) -> dict:
    data_dir = base / "hub-data"
    config_d = data_dir / "jupyterhub_config.d"
    config_d.mkdir(parents=True)
    # The hub's internal API port is not a stack.env setting (it is fixed inside the
    # compose network); tests pick a free one through the documented override hook.
    (config_d / "10-test-ports.py").write_text(f"c.JupyterHub.hub_port = {hub_port}\n")
    return {
        "JUPYTER_PASSWORD": secrets.token_urlsafe(16),
        "JUPYTER_ADMIN_USER": "admin",
        "JUPYTER_ADMIN_PASSWORD": secrets.token_urlsafe(32),
        "HUB_PROXY_API_URL": proxy.api_url,
        "CONFIGPROXY_AUTH_TOKEN": proxy.token,
        "HUB_BIND_URL": proxy.url,
        "POSTGRES_HOST": "127.0.0.1",
        "POSTGRES_PORT": str(postgres.port),
        "POSTGRES_DB": DB_NAME,
        "POSTGRES_USER": DB_USER,
        "POSTGRES_PASSWORD": postgres.password,
        "HUB_SPAWNER": "local",
        "HUB_DATA_DIR": str(data_dir),
        "HUB_IDLE_TIMEOUT": "1h",
        "TZ": "Europe/Berlin",
        "OPENAI_API_KEY": "sk-test-" + secrets.token_hex(8),
    }


def stop_user_servers(hub: Hub) -> None:
    """Stop user servers through the hub API: with an external proxy they outlive the hub."""
    token = getattr(hub, "admin_token", None)
    if not token or not hub.process or not hub.process.running:
        return
    headers = {"Authorization": f"token {token}"}
    users = requests.get(f"{hub.url}/hub/api/users", headers=headers, timeout=10).json()
    for user in users:
        if user.get("server"):
            requests.delete(
                f"{hub.url}/hub/api/users/{user['name']}/server", headers=headers, timeout=30
            )


def kill_leftover_servers(postgres: Postgres, database: str = DB_NAME) -> None:
    """Last resort: stop the single-user processes this test's hub started, by pid."""
    import json
    import signal

    try:
        rows = postgres.query("SELECT state FROM spawners WHERE state IS NOT NULL",
                              database=database)
    except Exception:  # noqa: BLE001 - the database may already be gone
        return
    for (state,) in rows:
        pid = (json.loads(state) if isinstance(state, str) else state or {}).get("pid")
        if pid:
            try:
                os.kill(int(pid), signal.SIGTERM)
            except ProcessLookupError:
                pass


def create_database(server: Postgres, name: str) -> None:
    conn = server.connect("postgres")
    conn.autocommit = True
    try:
        with conn.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {name} OWNER {DB_USER}")
    finally:
        conn.close()


def own_hub(base: Path, postgres: Postgres, database: str, **changes: str) -> Hub:
    """A hub (not started yet) with its own database, proxy and data directory under
    `base`, for tests whose settings differ from the session's hub. `stop_own_hub`
    stops it and what it started."""
    create_database(postgres, database)
    hub_port = free_port()
    proxy = Proxy(base, hub_port)
    environ = hub_environment(base, postgres, proxy, hub_port)
    environ.update(POSTGRES_DB=database, **changes)
    hub = Hub(base, environ, hub_port, proxy.url)
    hub.proxy, hub.postgres, hub.database = proxy, postgres, database
    return hub


def stop_own_hub(hub: Hub) -> None:
    stop_user_servers(hub)
    if hub.process and hub.process.running:
        hub.stop()
    hub.proxy.stop()
    kill_leftover_servers(hub.postgres, hub.database)
