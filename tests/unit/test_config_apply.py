"""`apply(settings, c)` on a bare traitlets Config, overrides, and import hygiene."""

from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys
import textwrap
from importlib.metadata import entry_points

import pytest
from sample_secrets import ADMIN_PASSWORD, PROXY_TOKEN, USER_PASSWORD
from traitlets.config import Config

import personal_hub
from personal_hub.authenticator import PersonalAuthenticator
from personal_hub.config import apply, load_overrides, load_settings_or_exit, override_files
from personal_hub.settings import load_settings
from personal_hub.spawner import PersonalDockerSpawner, PersonalLocalSpawner
from personal_hub.variables import BY_NAME


@pytest.fixture
def configure(make_settings):
    """`configure(NAME=value, ...)`: a bare Config with the settings applied."""

    def configured(**changes: str) -> Config:
        c = Config()
        apply(make_settings(**changes), c)
        return c

    return configured


# ---------------------------------------------------------------- authenticator


def test_authenticator_traits(configure):
    c = configure(
        HUB_LOGIN_MAX_FAILURES="3", HUB_LOGIN_MAX_FAILURES_PER_IP="9", HUB_LOGIN_LOCKOUT="2m"
    )

    assert c.JupyterHub.authenticator_class == "personal"
    auth = c.PersonalAuthenticator
    assert auth.user_password == USER_PASSWORD
    assert auth.admin_password == ADMIN_PASSWORD
    assert auth.admin_users == {"admin"}
    assert (auth.max_failures_per_user, auth.max_failures_per_ip) == (3, 9)
    assert auth.lockout_seconds == 120


def test_anyone_with_the_password_may_log_in_without_an_allowed_list(configure):
    auth = configure().PersonalAuthenticator

    assert auth.allow_all is True
    assert "allowed_users" not in auth


def test_only_listed_users_may_log_in_with_an_allowed_list(configure):
    # That a name removed from the list is refused after a restart is shown by the services
    # tier (test_hub_policies.py) and by test_authenticator.py, through the hub's own calls.
    auth = configure(HUB_ALLOWED_USERS="Alice,bob").PersonalAuthenticator

    assert auth.allow_all is False
    assert auth.allowed_users == {"alice", "bob"}


def test_no_admin_users_without_an_admin(make_settings):
    c = Config()
    apply(make_settings(JUPYTER_ADMIN_USER="", JUPYTER_ADMIN_PASSWORD=""), c)

    assert c.PersonalAuthenticator.admin_users == set()
    assert c.PersonalAuthenticator.admin_password is None


def test_applied_config_builds_the_authenticator(configure):
    auth = PersonalAuthenticator(config=configure(HUB_ALLOWED_USERS="alice"))

    assert auth.admin_users == {"admin"}
    assert auth.allowed_users == {"alice"}
    assert auth.lockout_seconds == 300


# ---------------------------------------------------------------- spawner


def test_docker_mode(configure):
    c = configure(
        HUB_SINGLEUSER_IMAGE="example/nb:1.2",
        HUB_DOCKER_NETWORK="labnet",
        HUB_CONNECT_HOST="jupyterhub",
        TZ="Europe/Berlin",
    )

    assert c.JupyterHub.spawner_class == "personal-docker"
    assert c.JupyterHub.hub_ip == "0.0.0.0"
    assert c.JupyterHub.hub_connect_ip == "jupyterhub"
    assert c.DockerSpawner.image == "example/nb:1.2"
    assert c.DockerSpawner.network_name == "labnet"
    assert c.DockerSpawner.remove is True
    assert c.DockerSpawner.use_internal_ip is True
    assert c.PersonalSpawner.timezone == "Europe/Berlin"


def test_local_mode(configure):
    c = configure(HUB_SPAWNER="local", HUB_DATA_DIR="/data/hub")

    assert c.JupyterHub.spawner_class == "personal-local"
    assert c.JupyterHub.hub_ip == "127.0.0.1"
    assert c.PersonalLocalSpawner.home_dir_template == "/data/hub/users/{username}"
    assert "DockerSpawner" not in c


@pytest.mark.parametrize(
    ("changes", "mem_limit", "cpu_limit"),
    [
        # A memory limit by default (protects the host from one user); CPU unlimited.
        ({}, 2 * 1024**3, None),
        ({"HUB_MEM_LIMIT": ""}, 2 * 1024**3, None),
        ({"HUB_MEM_LIMIT": "unlimited"}, None, None),
        ({"HUB_MEM_LIMIT": "4G"}, 4 * 1024**3, None),
        ({"HUB_CPU_LIMIT": "1.5"}, 2 * 1024**3, 1.5),
        ({"HUB_MEM_LIMIT": "512M", "HUB_CPU_LIMIT": "2"}, 512 * 1024**2, 2.0),
    ],
)
def test_limits(configure, changes, mem_limit, cpu_limit):
    spawner_config = configure(**changes).Spawner

    assert spawner_config.get("mem_limit") == mem_limit
    assert spawner_config.get("cpu_limit") == cpu_limit


def test_ai_keys_are_passed_to_the_spawner(full_environ):
    c = Config()
    apply(load_settings(full_environ), c)

    assert c.PersonalSpawner.ai_api_keys == {
        "OPENAI_API_KEY": full_environ["OPENAI_API_KEY"],
        "ANTHROPIC_API_KEY": full_environ["ANTHROPIC_API_KEY"],
    }
    assert c.PersonalSpawner.ai_model == "openai/gpt-5.4-mini"  # auto: the OpenAI key's
    assert c.PersonalSpawner.ai_base_url is None


def test_the_assistants_own_model_server_is_passed_to_the_spawner(configure):
    c = configure(HUB_AI_MODEL="openai/llama3.2", HUB_AI_BASE_URL="http://ollama:11434/v1")

    assert c.PersonalSpawner.ai_model == "openai/llama3.2"
    assert c.PersonalSpawner.ai_base_url == "http://ollama:11434/v1"


@pytest.mark.parametrize(
    ("group", "name", "cls"),
    [
        ("jupyterhub.authenticators", "personal", PersonalAuthenticator),
        ("jupyterhub.spawners", "personal-docker", PersonalDockerSpawner),
        ("jupyterhub.spawners", "personal-local", PersonalLocalSpawner),
    ],
)
def test_configured_class_names_resolve_through_entry_points(group, name, cls):
    (entry_point,) = entry_points(group=group, name=name)

    assert entry_point.load() is cls


# ---------------------------------------------------------------- hub, database, proxy


def test_hub_files_live_in_the_data_dir(configure):
    c = configure(
        HUB_DATA_DIR="/var/lib/hub",
        HUB_LOG_LEVEL="debug",
        HUB_BIND_URL="http://0.0.0.0:9000/jupyter/",
    )

    assert c.JupyterHub.cookie_secret_file == "/var/lib/hub/jupyterhub_cookie_secret"
    assert c.JupyterHub.pid_file == "/var/lib/hub/jupyterhub.pid"
    assert c.JupyterHub.bind_url == "http://0.0.0.0:9000/jupyter/"
    assert c.JupyterHub.log_level == "DEBUG"


def test_database(configure):
    c = configure(HUB_DATA_DIR="/var/lib/hub")

    assert c.JupyterHub.db_url == "sqlite:////var/lib/hub/jupyterhub.sqlite"
    assert c.JupyterHub.upgrade_db is True


def test_postgres_database(configure):
    c = configure(POSTGRES_HOST="db", POSTGRES_PASSWORD="pg-Password-1234567")

    assert c.JupyterHub.db_url == (
        "postgresql+psycopg2://jupyterhub:pg-Password-1234567@db:5432/jupyterhub"
    )


def test_external_proxy(configure):
    c = configure(HUB_PROXY_API_URL="http://proxy:8001", CONFIGPROXY_AUTH_TOKEN=PROXY_TOKEN)

    proxy = c.ConfigurableHTTPProxy
    assert proxy.should_start is False
    assert proxy.api_url == "http://proxy:8001"
    assert proxy.auth_token == PROXY_TOKEN
    # user servers must outlive a hub restart when the proxy keeps routing to them
    assert c.JupyterHub.cleanup_servers is False


def test_hub_managed_proxy(configure):
    c = configure()

    proxy = c.ConfigurableHTTPProxy
    assert proxy.should_start is True
    assert "api_url" not in proxy
    assert "cleanup_servers" not in c.JupyterHub


# ---------------------------------------------------------------- idle culler, named servers


def service(c: Config, name: str) -> dict:
    (found,) = [service for service in c.JupyterHub.services if service["name"] == name]
    return found


def culler_options(c: Config) -> dict[str, int]:
    """{"timeout": ..., "cull-every": ...} from the culler service's command line."""
    service_ = service(c, "idle-culler")
    assert service_["command"][1:3] == ["-m", "jupyterhub_idle_culler"]
    options = dict(
        argument[2:].split("=", 1) for argument in service_["command"]
        if argument.startswith("--")
    )
    return {name: int(value) for name, value in options.items()}


# (HUB_IDLE_TIMEOUT, its seconds, the check interval): every half timeout, at least every
# 10 s, at most every 10 minutes. A check as seldom as the timeout would let a server idle
# for up to twice the timeout. That the culler really stops an idle server (and its role
# lets it) is shown by the services tier (test_hub_policies.py).
@pytest.mark.parametrize(
    ("timeout", "seconds", "every"),
    [
        ("2h", 7200, 600),
        ("1h", 3600, 600),
        ("30m", 1800, 600),
        ("90", 90, 45),
        ("20", 20, 10),
        ("21", 21, 10),
    ],
)
def test_idle_culler_checks_more_often_than_the_timeout(configure, timeout, seconds, every):
    c = configure(HUB_IDLE_TIMEOUT=timeout)

    assert culler_options(c) == {"timeout": seconds, "cull-every": every}
    assert every < seconds


@pytest.mark.parametrize(("timeout", "interval"), [("1h", 300), ("10m", 150), ("20", 5)])
def test_activity_reaches_the_hub_well_within_the_idle_timeout(configure, timeout, interval):
    c = configure(HUB_IDLE_TIMEOUT=timeout)

    # From the proxy's routes, and from each server itself (JupyterHub's defaults: 300 s).
    assert c.JupyterHub.last_activity_interval == interval
    environment = c.Spawner.environment.get_value({})  # merged into the spawner's own
    assert environment["JUPYTERHUB_ACTIVITY_INTERVAL"] == str(interval)


def test_idle_culler_runs_as_a_service_holding_its_own_role(configure):
    c = configure(HUB_IDLE_TIMEOUT="1h")

    admin_role, culler_role = c.JupyterHub.load_roles
    assert admin_role == {"name": "admin", "users": ["admin"]}
    assert culler_role["services"] == [service(c, "idle-culler")["name"]]
    # It stops servers, never users (so no admin:users, which could delete them).
    assert not any(scope.startswith("admin:") for scope in culler_role["scopes"])


def test_no_idle_culler_when_the_timeout_is_zero(configure):
    c = configure(HUB_IDLE_TIMEOUT="0")

    assert [service["name"] for service in c.JupyterHub.services] == ["scheduler", "reports"]
    assert c.JupyterHub.load_roles == [{"name": "admin", "users": ["admin"]}]


@pytest.mark.parametrize(("admin", "users"), [("boss", ["boss"]), ("", [])])
def test_the_admin_role_holds_exactly_the_configured_admin(configure, admin, users):
    """Exact membership: JupyterHub takes the role away from anyone else at start-up."""
    c = configure(JUPYTER_ADMIN_USER=admin)

    assert c.JupyterHub.load_roles[0] == {"name": "admin", "users": users}


@pytest.mark.parametrize(("limit", "allowed"), [("0", False), ("3", True)])
def test_named_servers(configure, limit, allowed):
    c = configure(HUB_NAMED_SERVER_LIMIT=limit)

    assert c.JupyterHub.allow_named_servers is allowed
    assert c.JupyterHub.named_server_limit_per_user == int(limit)


def test_apply_does_not_share_mutable_values(make_settings):
    """Two configs from the same settings are independent (only *set*, never shared)."""
    settings = make_settings(HUB_ALLOWED_USERS="alice")
    first, second = Config(), Config()
    apply(settings, first)
    apply(settings, second)
    culler_scopes = list(second.JupyterHub.load_roles[1]["scopes"])

    first.JupyterHub.load_roles[1]["scopes"].append("admin:users")
    first.PersonalAuthenticator.allowed_users.add("mallory")

    assert second.JupyterHub.load_roles[1]["scopes"] == culler_scopes
    assert "admin:users" not in culler_scopes
    assert second.PersonalAuthenticator.allowed_users == {"alice"}
    assert settings.allowed_users == frozenset({"alice"})


# ---------------------------------------------------------------- overrides and the config file


def test_override_files_are_sorted_python_files(tmp_path):
    for name in ["20-limits.py", "10-auth.py", "notes.txt", "99-last.py.orig"]:
        (tmp_path / name).write_text("")
    (tmp_path / "50-dir.d").mkdir()

    assert [path.name for path in override_files(str(tmp_path))] == ["10-auth.py", "20-limits.py"]


def test_missing_override_directory_is_ignored(tmp_path):
    loaded = []

    assert override_files(str(tmp_path / "missing")) == []
    assert load_overrides(str(tmp_path / "missing"), loaded.append) == []
    assert loaded == []


def test_load_overrides_loads_in_sorted_order(tmp_path):
    for name in ["b.py", "a.py", "c.py"]:
        (tmp_path / name).write_text("")
    loaded = []

    load_overrides(str(tmp_path), loaded.append)

    assert loaded == [str(tmp_path / name) for name in ["a.py", "b.py", "c.py"]]


def test_invalid_settings_stop_the_hub_with_a_report_not_a_traceback(environ, capsys):
    env = {**environ, "HUB_MEM_LIMIT": "lots"}

    with pytest.raises(SystemExit) as exited:
        load_settings_or_exit(env)

    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert "HUB_MEM_LIMIT" in err
    assert "Traceback" not in err
    assert USER_PASSWORD not in err


def test_packaged_config_applies_settings_then_overrides(monkeypatch, environ, tmp_path):
    for name in list(os.environ):
        if name.startswith("HUB_") or name in BY_NAME:
            monkeypatch.delenv(name)
    for name, value in {**environ, "HUB_CONFIG_D": str(tmp_path)}.items():
        monkeypatch.setenv(name, value)
    (tmp_path / "20-b.py").write_text("")
    (tmp_path / "10-a.py").write_text("")
    c = Config()
    loaded = []

    runpy.run_path(
        personal_hub.config_path(),
        init_globals={"get_config": lambda: c, "load_subconfig": loaded.append},
    )

    assert c.JupyterHub.authenticator_class == "personal"
    assert c.JupyterHub.spawner_class == "personal-docker"
    assert loaded == [str(tmp_path / "10-a.py"), str(tmp_path / "20-b.py")]


# ---------------------------------------------------------------- import hygiene

MODULES = [
    "personal_hub",
    "personal_hub.variables",
    "personal_hub.usernames",
    "personal_hub.settings",
    "personal_hub.config",
    "personal_hub.authenticator",
    "personal_hub.spawner",
    "personal_hub.cli",
]


def run_python(code: str, cwd, env_changes: dict[str, str] | None = None):
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **(env_changes or {})}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_importing_has_no_side_effects(tmp_path):
    """No environment read, no output, no file written: a bogus HUB_* variable is harmless."""
    result = run_python(
        f"import {', '.join(MODULES)}", cwd=tmp_path, env_changes={"HUB_BOGUS": "1"}
    )

    assert result.returncode == 0, result.stderr
    assert (result.stdout, result.stderr) == ("", "")
    assert list(tmp_path.iterdir()) == []


def test_init_and_check_work_without_jupyterhub_installed(tmp_path):
    env_file = tmp_path / "stack.env"
    code = textwrap.dedent(
        f"""
        import sys

        BLOCKED = {{"jupyterhub", "traitlets", "dockerspawner"}}

        class Blocker:
            def find_spec(self, name, path=None, target=None):
                if name.partition(".")[0] in BLOCKED:
                    raise ModuleNotFoundError(f"blocked: {{name}}", name=name)
                return None

        sys.meta_path.insert(0, Blocker())
        import personal_hub, personal_hub.variables, personal_hub.settings
        import personal_hub.usernames, personal_hub.cli

        assert personal_hub.cli.main(["init", "--env-file", {str(env_file)!r}]) == 0
        assert personal_hub.cli.main(["check", "--env-file", {str(env_file)!r}]) == 0
        loaded = sorted(m for m in sys.modules if m.partition(".")[0] in BLOCKED)
        assert not loaded, loaded
        """
    )

    result = run_python(code, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert "Settings are valid" in result.stdout
    assert env_file.is_file()


def test_sharing_grants_exactly_the_scopes_the_share_dialog_needs(configure):
    c = configure(HUB_SCHEDULED_RUNS="false", HUB_REPORTS="false")
    assert c.JupyterHub.extra_user_scopes == {
        "shares!user", "read:users:name", "read:groups:name", "list:users", "list:groups",
    }
    # Resolved for the *visitor* of a server: only this server's shares, never the
    # visitor's own (`shares!user` here would let a server's owner share the visitor's).
    assert sorted(c.Spawner.oauth_client_allowed_scopes) == [
        "access:servers!server", "list:groups", "list:users", "read:groups:name",
        "read:users:name", "shares!server",
    ]


def test_sharing_off_grants_nothing_extra(configure):
    c = configure(HUB_SHARING="false", HUB_SCHEDULED_RUNS="false", HUB_REPORTS="false")
    assert c.JupyterHub.extra_user_scopes == set()
    assert c.Spawner.oauth_client_allowed_scopes == []


def test_profiles_reach_the_spawner(configure):
    c = configure(HUB_PROFILES="small: cpu=1 memory=2G; gpu: gpus=all image=my/cuda:1")

    assert c.PersonalSpawner.profiles == [
        {"name": "small", "cpu": 1.0, "memory": 2 * 1024**3},
        {"name": "gpu", "gpus": -1, "image": "my/cuda:1"},
    ]
    assert configure().PersonalSpawner.profiles == []


def test_the_scheduler_service_and_what_its_runs_get(configure):
    c = configure(HUB_MEM_LIMIT="1G", HUB_CPU_LIMIT="1.5", HUB_CAP_ADD="CHOWN",
                  HUB_SCHEDULED_RUN_TIMEOUT="30m", OPENAI_API_KEY="sk-" + "k" * 30,
                  HUB_DATA_CONNECTIONS="sales=postgresql://r:Db-Secret-42@db/sales")
    scheduler = service(c, "scheduler")
    assert scheduler["url"] == "http://hub:10101"
    assert scheduler["command"][1:] == ["-m", "personal_hub.scheduler"]
    assert scheduler["oauth_no_confirm"] is True
    runs = json.loads(scheduler["environment"]["PERSONAL_HUB_SCHEDULER"])
    assert {key: runs[key] for key in ("image", "network", "mem_limit", "cpu_limit",
                                       "pids_limit", "cap_add", "timeout_seconds")} == {
        "image": "personal-jupyter-singleuser:latest", "network": "jupyterhub-net",
        "mem_limit": 1024**3, "cpu_limit": 1.5, "pids_limit": 1024, "cap_add": ["CHOWN"],
        "timeout_seconds": 1800}
    # What a user's code gets in their server, it gets in a scheduled run.
    assert runs["environment"]["OPENAI_API_KEY"] == "sk-" + "k" * 30
    assert "sales" in runs["environment"]["PERSONAL_HUB_DATA_CONNECTIONS"]
    assert runs["environment"]["PERSONAL_HUB_AI_MODEL"] == "openai/gpt-5.4-mini"
    # Everyone may log in to its pages; nothing else is granted.
    assert "access:services!service=scheduler" in c.JupyterHub.extra_user_scopes


def test_the_reports_service(configure):
    reports = service(configure(HUB_MEM_LIMIT="1G"), "reports")
    assert reports["url"] == "http://hub:10102"
    assert reports["command"][1:] == ["-m", "personal_hub.reports"]
    assert json.loads(reports["environment"]["PERSONAL_HUB_REPORTS"]) == {
        "image": "personal-jupyter-singleuser:latest", "data_dir": "/srv/jupyterhub",
        "network": "jupyterhub-net", "timezone": "Etc/UTC", "mem_limit": 1024**3,
        "pids_limit": 1024, "home_storage": {"driver": "local", "options": {}}}


@pytest.mark.parametrize(
    ("changes", "names"),
    [({"HUB_SCHEDULED_RUNS": "false"}, ["reports"]), ({"HUB_REPORTS": "false"}, ["scheduler"]),
     ({"HUB_SPAWNER": "local"}, [])],
)
def test_page_services_when_on_and_with_docker(configure, changes, names):
    c = configure(HUB_IDLE_TIMEOUT="0", **changes)
    assert [s["name"] for s in c.JupyterHub.services] == names
    assert {scope for scope in c.JupyterHub.extra_user_scopes if "services" in scope} == {
        f"access:services!service={name}" for name in names}

