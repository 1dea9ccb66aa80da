"""`load_settings(environ)`: every user mistake is reported, all at once, without secrets."""

from __future__ import annotations

import pytest
from sample_secrets import ADMIN_PASSWORD, ANTHROPIC_KEY, OPENAI_KEY, POSTGRES_PASSWORD, PROXY_TOKEN
from sqlalchemy.engine import make_url

from personal_hub.settings import SettingsError, load_settings
from personal_hub.variables import BY_NAME, VARIABLES

MIB, GIB = 1024**2, 1024**3
LONG_SECRET = "same-Value-For-Both-Q8w2E6r4T0y9U3i7O1"  # >= 32 characters
DELETE = None  # in a case's changes: remove the variable from the environment


def with_changes(environ: dict[str, str], changes: dict[str, str | None]) -> dict[str, str]:
    env = dict(environ)
    for name, value in changes.items():
        if value is DELETE:
            env.pop(name, None)
        else:
            env[name] = value
    return env


# (id, changes to the minimal valid environment, the one variable that must be reported)
INVALID = [
    # the shared password
    ("user-password-missing", {"JUPYTER_PASSWORD": DELETE}, "JUPYTER_PASSWORD"),
    ("user-password-empty", {"JUPYTER_PASSWORD": ""}, "JUPYTER_PASSWORD"),
    ("user-password-placeholder", {"JUPYTER_PASSWORD": "change-me"}, "JUPYTER_PASSWORD"),
    ("user-password-placeholder-upper", {"JUPYTER_PASSWORD": "CHANGE-ME"}, "JUPYTER_PASSWORD"),
    ("user-password-weak", {"JUPYTER_PASSWORD": "password"}, "JUPYTER_PASSWORD"),
    ("user-password-11-chars", {"JUPYTER_PASSWORD": "Short-Pw-11"}, "JUPYTER_PASSWORD"),
    (
        "user-password-whitespace",
        {"JUPYTER_PASSWORD": "  Spaced-Password-9xZ "},
        "JUPYTER_PASSWORD",
    ),
    # the admin password
    ("admin-password-missing", {"JUPYTER_ADMIN_PASSWORD": DELETE}, "JUPYTER_ADMIN_PASSWORD"),
    (
        "admin-password-missing-explicit-admin",
        {"JUPYTER_ADMIN_PASSWORD": DELETE, "JUPYTER_ADMIN_USER": "boss"},
        "JUPYTER_ADMIN_PASSWORD",
    ),
    (
        "admin-password-placeholder",
        {"JUPYTER_ADMIN_PASSWORD": "change-me"},
        "JUPYTER_ADMIN_PASSWORD",
    ),
    ("admin-password-weak", {"JUPYTER_ADMIN_PASSWORD": "secret"}, "JUPYTER_ADMIN_PASSWORD"),
    (
        "admin-password-31-chars",
        {"JUPYTER_ADMIN_PASSWORD": "Admin-Pw-Thirty-One-Chars-x1234"},
        "JUPYTER_ADMIN_PASSWORD",
    ),
    (
        "admin-password-equals-user-password",
        {"JUPYTER_PASSWORD": LONG_SECRET, "JUPYTER_ADMIN_PASSWORD": LONG_SECRET},
        "JUPYTER_ADMIN_PASSWORD",
    ),
    (
        "admin-password-whitespace",
        {"JUPYTER_ADMIN_PASSWORD": ADMIN_PASSWORD + "\t"},
        "JUPYTER_ADMIN_PASSWORD",
    ),
    # usernames
    ("admin-user-space", {"JUPYTER_ADMIN_USER": "the boss"}, "JUPYTER_ADMIN_USER"),
    ("admin-user-slash", {"JUPYTER_ADMIN_USER": "a/b"}, "JUPYTER_ADMIN_USER"),
    ("admin-user-too-long", {"JUPYTER_ADMIN_USER": "a" * 33}, "JUPYTER_ADMIN_USER"),
    ("admin-user-leading-dot", {"JUPYTER_ADMIN_USER": ".admin"}, "JUPYTER_ADMIN_USER"),
    ("allowed-users-symbol", {"HUB_ALLOWED_USERS": "alice,b@d"}, "HUB_ALLOWED_USERS"),
    ("allowed-users-space", {"HUB_ALLOWED_USERS": "alice, bad user"}, "HUB_ALLOWED_USERS"),
    ("allowed-users-unicode", {"HUB_ALLOWED_USERS": "alice,jürgen"}, "HUB_ALLOWED_USERS"),
    # login lockout
    ("lockout-zero", {"HUB_LOGIN_LOCKOUT": "0"}, "HUB_LOGIN_LOCKOUT"),
    ("lockout-zero-minutes", {"HUB_LOGIN_LOCKOUT": "0m"}, "HUB_LOGIN_LOCKOUT"),
    ("lockout-not-a-duration", {"HUB_LOGIN_LOCKOUT": "forever"}, "HUB_LOGIN_LOCKOUT"),
    ("max-failures-zero", {"HUB_LOGIN_MAX_FAILURES": "0"}, "HUB_LOGIN_MAX_FAILURES"),
    ("max-failures-word", {"HUB_LOGIN_MAX_FAILURES": "many"}, "HUB_LOGIN_MAX_FAILURES"),
    (
        "max-failures-per-ip-zero",
        {"HUB_LOGIN_MAX_FAILURES_PER_IP": "0"},
        "HUB_LOGIN_MAX_FAILURES_PER_IP",
    ),
    # proxy
    (
        "proxy-token-missing",
        {"HUB_PROXY_API_URL": "http://proxy:8001"},
        "CONFIGPROXY_AUTH_TOKEN",
    ),
    (
        "proxy-token-short",
        {
            "HUB_PROXY_API_URL": "http://proxy:8001",
            "CONFIGPROXY_AUTH_TOKEN": "Tok-31-chars-long-abcdefghijklm",
        },
        "CONFIGPROXY_AUTH_TOKEN",
    ),
    (
        "proxy-token-placeholder-without-url",
        {"CONFIGPROXY_AUTH_TOKEN": "change-me"},
        "CONFIGPROXY_AUTH_TOKEN",
    ),
    ("proxy-url-no-scheme", {"HUB_PROXY_API_URL": "proxy:8001"}, "HUB_PROXY_API_URL"),
    ("proxy-url-no-port", {"HUB_PROXY_API_URL": "http://proxy"}, "HUB_PROXY_API_URL"),
    ("proxy-url-ftp", {"HUB_PROXY_API_URL": "ftp://proxy:8001"}, "HUB_PROXY_API_URL"),
    ("proxy-url-port-too-big", {"HUB_PROXY_API_URL": "http://proxy:99999"}, "HUB_PROXY_API_URL"),
    ("bind-url-no-scheme", {"HUB_BIND_URL": "127.0.0.1:8000"}, "HUB_BIND_URL"),
    ("bind-url-bad-port", {"HUB_BIND_URL": "http://127.0.0.1:eighty"}, "HUB_BIND_URL"),
    ("domain-with-scheme", {"JUPYTER_DOMAIN": "https://jupyter.example.com"}, "JUPYTER_DOMAIN"),
    ("domain-with-path", {"JUPYTER_DOMAIN": "jupyter.example.com/hub"}, "JUPYTER_DOMAIN"),
    ("domain-bad-characters", {"JUPYTER_DOMAIN": "jupyter!.example.com"}, "JUPYTER_DOMAIN"),
    # database
    ("postgres-password-missing", {"POSTGRES_HOST": "db"}, "POSTGRES_PASSWORD"),
    (
        "postgres-password-15-chars",
        {"POSTGRES_HOST": "db", "POSTGRES_PASSWORD": "Pg-Pw-15-chars!"},
        "POSTGRES_PASSWORD",
    ),
    (
        "postgres-password-weak",
        {"POSTGRES_HOST": "db", "POSTGRES_PASSWORD": "password"},
        "POSTGRES_PASSWORD",
    ),
    (
        "postgres-host-space",
        {"POSTGRES_HOST": "db host", "POSTGRES_PASSWORD": POSTGRES_PASSWORD},
        "POSTGRES_HOST",
    ),
    ("postgres-port-zero", {"POSTGRES_PORT": "0"}, "POSTGRES_PORT"),
    ("postgres-port-too-big", {"POSTGRES_PORT": "65536"}, "POSTGRES_PORT"),
    ("postgres-port-word", {"POSTGRES_PORT": "pg"}, "POSTGRES_PORT"),
    # user servers
    ("spawner-unknown", {"HUB_SPAWNER": "kubernetes"}, "HUB_SPAWNER"),
    ("image-space", {"HUB_SINGLEUSER_IMAGE": "my image:latest"}, "HUB_SINGLEUSER_IMAGE"),
    ("image-leading-dash", {"HUB_SINGLEUSER_IMAGE": "-image"}, "HUB_SINGLEUSER_IMAGE"),
    ("network-space", {"HUB_DOCKER_NETWORK": "jupyter net"}, "HUB_DOCKER_NETWORK"),
    ("network-leading-dash", {"HUB_DOCKER_NETWORK": "-net"}, "HUB_DOCKER_NETWORK"),
    ("connect-host-url", {"HUB_CONNECT_HOST": "http://hub"}, "HUB_CONNECT_HOST"),
    ("mem-limit-word", {"HUB_MEM_LIMIT": "lots"}, "HUB_MEM_LIMIT"),
    ("mem-limit-unit", {"HUB_MEM_LIMIT": "2X"}, "HUB_MEM_LIMIT"),
    ("mem-limit-negative", {"HUB_MEM_LIMIT": "-1G"}, "HUB_MEM_LIMIT"),
    ("mem-limit-too-small", {"HUB_MEM_LIMIT": "10M"}, "HUB_MEM_LIMIT"),
    ("mem-limit-zero", {"HUB_MEM_LIMIT": "0"}, "HUB_MEM_LIMIT"),
    ("mem-limit-many-digits", {"HUB_MEM_LIMIT": "9" * 400}, "HUB_MEM_LIMIT"),
    ("mem-limit-over-a-petabyte", {"HUB_MEM_LIMIT": "2000T"}, "HUB_MEM_LIMIT"),
    ("pids-limit-too-low", {"HUB_PIDS_LIMIT": "10"}, "HUB_PIDS_LIMIT"),
    ("pids-limit-word", {"HUB_PIDS_LIMIT": "many"}, "HUB_PIDS_LIMIT"),
    ("capability-unknown", {"HUB_CAP_ADD": "CHOWN,SUPERPOWER"}, "HUB_CAP_ADD"),
    ("trusted-proxy-url", {"HUB_TRUSTED_PROXIES": "http://traefik/"}, "HUB_TRUSTED_PROXIES"),
    ("lockout-over-a-day", {"HUB_LOGIN_LOCKOUT": "2d"}, "HUB_LOGIN_LOCKOUT"),
    ("lockout-many-digits", {"HUB_LOGIN_LOCKOUT": "9" * 60}, "HUB_LOGIN_LOCKOUT"),
    ("idle-timeout-over-a-year", {"HUB_IDLE_TIMEOUT": "400d"}, "HUB_IDLE_TIMEOUT"),
    ("shared-budget-zero", {"HUB_LOGIN_MAX_FAILURES_SHARED": "0"}, "HUB_LOGIN_MAX_FAILURES_SHARED"),
    ("cpu-limit-word", {"HUB_CPU_LIMIT": "two"}, "HUB_CPU_LIMIT"),
    ("cpu-limit-zero", {"HUB_CPU_LIMIT": "0"}, "HUB_CPU_LIMIT"),
    ("cpu-limit-negative", {"HUB_CPU_LIMIT": "-1"}, "HUB_CPU_LIMIT"),
    ("cpu-limit-huge", {"HUB_CPU_LIMIT": "2000"}, "HUB_CPU_LIMIT"),
    ("idle-timeout-word", {"HUB_IDLE_TIMEOUT": "soon"}, "HUB_IDLE_TIMEOUT"),
    ("idle-timeout-fraction", {"HUB_IDLE_TIMEOUT": "1.5h"}, "HUB_IDLE_TIMEOUT"),
    ("idle-timeout-negative", {"HUB_IDLE_TIMEOUT": "-5"}, "HUB_IDLE_TIMEOUT"),
    ("idle-timeout-weeks", {"HUB_IDLE_TIMEOUT": "2w"}, "HUB_IDLE_TIMEOUT"),
    ("named-servers-negative", {"HUB_NAMED_SERVER_LIMIT": "-1"}, "HUB_NAMED_SERVER_LIMIT"),
    ("named-servers-too-many", {"HUB_NAMED_SERVER_LIMIT": "101"}, "HUB_NAMED_SERVER_LIMIT"),
    ("named-servers-word", {"HUB_NAMED_SERVER_LIMIT": "some"}, "HUB_NAMED_SERVER_LIMIT"),
    ("profiles-without-names", {"HUB_PROFILES": "cpu=1 memory=2G"}, "HUB_PROFILES"),
    ("profiles-unknown-key", {"HUB_PROFILES": "small: ram=2G"}, "HUB_PROFILES"),
    ("profiles-twice", {"HUB_PROFILES": "a: cpu=1; a: cpu=2"}, "HUB_PROFILES"),
    ("data-connection-without-name",
     {"HUB_DATA_CONNECTIONS": "postgresql://reader:Db-Secret-42@db/sales"},
     "HUB_DATA_CONNECTIONS"),
    ("data-connection-not-a-url",
     {"HUB_DATA_CONNECTIONS": "sales=reader:Db-Secret-42@db/sales"}, "HUB_DATA_CONNECTIONS"),
    ("tz-unknown", {"TZ": "Mars/Olympus_Mons"}, "TZ"),
    ("tz-typo", {"TZ": "Europe/Berlinn"}, "TZ"),
    ("tz-path", {"TZ": "../../etc/passwd"}, "TZ"),
    # AI keys (optional, but never a placeholder or pasted with spaces)
    ("openai-key-placeholder", {"OPENAI_API_KEY": "change-me"}, "OPENAI_API_KEY"),
    ("anthropic-key-whitespace", {"ANTHROPIC_API_KEY": " " + ANTHROPIC_KEY}, "ANTHROPIC_API_KEY"),
    ("ai-model-without-provider", {"HUB_AI_MODEL": "gpt-5.4-mini"}, "HUB_AI_MODEL"),
    ("ai-model-with-space", {"HUB_AI_MODEL": "openai/gpt 5"}, "HUB_AI_MODEL"),
    ("ai-base-url-not-http", {"HUB_AI_BASE_URL": "ftp://models.lan/v1"}, "HUB_AI_BASE_URL"),
    ("ai-base-url-with-password",
     {"HUB_AI_BASE_URL": "http://me:Sekr3t-Pass@models.lan/v1"}, "HUB_AI_BASE_URL"),
    ("ai-base-url-without-model", {"HUB_AI_BASE_URL": "http://models.lan/v1"}, "HUB_AI_MODEL"),
    ("ai-base-url-with-a-claude-model",
     {"HUB_AI_BASE_URL": "http://models.lan/v1", "HUB_AI_MODEL": "anthropic/claude-sonnet-4-6"},
     "HUB_AI_MODEL"),
    # hub process
    ("log-level-unknown", {"HUB_LOG_LEVEL": "verbose"}, "HUB_LOG_LEVEL"),
    ("log-level-trace", {"HUB_LOG_LEVEL": "TRACE"}, "HUB_LOG_LEVEL"),
    # typos of our own variables
    ("unknown-hub-variable", {"HUB_MEM_LIMT": "2G"}, "HUB_MEM_LIMT"),
    ("unknown-hub-variable-no-match", {"HUB_XYZZY": "1"}, "HUB_XYZZY"),
    ("sharing-not-a-boolean", {"HUB_SHARING": "maybe"}, "HUB_SHARING"),
    ("publish-port-out-of-range", {"HUB_PUBLISH_PORT": "70000"}, "HUB_PUBLISH_PORT"),
    ("publish-address-not-an-ip", {"HUB_PUBLISH_ADDRESS": "localhost:80"}, "HUB_PUBLISH_ADDRESS"),
]


@pytest.mark.parametrize(
    ("changes", "variable"),
    [pytest.param(changes, variable, id=case) for case, changes, variable in INVALID],
)
def test_each_mistake_is_reported_naming_the_variable_without_secrets(
    environ, assert_no_secret, changes, variable
):
    env = with_changes(environ, changes)

    with pytest.raises(SettingsError) as raised:
        load_settings(env)

    problems = raised.value.problems
    assert [problem.variable for problem in problems] == [variable]
    assert problems[0].fix, "every problem says how to fix it"
    report = str(raised.value)
    assert report == raised.value.report()
    assert report.startswith("personal-hub: 1 problem in the settings:")
    assert f"  - {variable}: " in report
    assert_no_secret(report, env)


@pytest.mark.parametrize(
    ("typo", "suggestion"),
    [
        ("HUB_MEM_LIMT", "HUB_MEM_LIMIT"),
        ("HUB_IDLE_TIMOUT", "HUB_IDLE_TIMEOUT"),
        ("HUB_SPAWER", "HUB_SPAWNER"),
        ("HUB_ALLOWED_USER", "HUB_ALLOWED_USERS"),
    ],
)
def test_unknown_hub_variable_suggests_the_closest_name(environ, typo, suggestion):
    with pytest.raises(SettingsError) as raised:
        load_settings({**environ, typo: "x"})

    (problem,) = raised.value.problems
    assert problem.variable == typo
    assert f"did you mean {suggestion}?" in problem.fix


def test_variables_of_other_programs_are_ignored(environ):
    settings = load_settings({**environ, "PATH": "/usr/bin", "JUPYTERHUB_API_TOKEN": "x"})

    assert settings.user_password == environ["JUPYTER_PASSWORD"]


def test_all_problems_are_reported_together(environ, assert_no_secret):
    env = {
        **environ,
        "JUPYTER_PASSWORD": "change-me",
        "JUPYTER_ADMIN_PASSWORD": "Admin-Pw-too-short-1",
        "HUB_PROXY_API_URL": "http://proxy:8001",
        "HUB_MEM_LIMIT": "lots",
        "HUB_CPU_LIMIT": "two",
        "TZ": "Mars/Olympus_Mons",
        "HUB_SPAWNER": "kubernetes",
        "HUB_ALLOWED_USERS": "alice,b@d",
        "HUB_BOGUS": "1",
    }

    with pytest.raises(SettingsError) as raised:
        load_settings(env)

    reported = {problem.variable for problem in raised.value.problems}
    assert reported == {
        "JUPYTER_PASSWORD",
        "JUPYTER_ADMIN_PASSWORD",
        "CONFIGPROXY_AUTH_TOKEN",
        "HUB_MEM_LIMIT",
        "HUB_CPU_LIMIT",
        "TZ",
        "HUB_SPAWNER",
        "HUB_ALLOWED_USERS",
        "HUB_BOGUS",
    }
    report = raised.value.report()
    assert report.startswith("personal-hub: 9 problems in the settings:")
    for variable in reported:
        assert f"  - {variable}: " in report
    assert_no_secret(report, env)


def test_length_of_a_short_secret_is_reported_not_its_value(environ):
    short = "Short-Pw-11"

    with pytest.raises(SettingsError) as raised:
        load_settings({**environ, "JUPYTER_PASSWORD": short})

    report = raised.value.report()
    assert "11 characters" in report
    assert "at least 12" in report
    assert short not in report


# ---------------------------------------------------------------- valid settings


def test_defaults_of_a_minimal_environment(make_settings):
    settings = make_settings()

    assert settings.admin_user == "admin"
    assert settings.allowed_users == frozenset()
    assert settings.spawner == "docker"
    assert settings.singleuser_image == "personal-jupyter-singleuser:latest"
    assert settings.docker_network == "jupyterhub-net"
    assert settings.hub_connect_host == "hub"
    assert settings.mem_limit_bytes == 2 * 1024**3
    assert settings.cpu_limit is None
    assert settings.pids_limit == 1024
    assert settings.cap_add == ()
    assert settings.trusted_proxies == ()
    assert settings.login_max_failures_shared == 30
    assert settings.public_url is None
    assert settings.idle_timeout_seconds == 3600
    assert settings.named_server_limit == 0
    assert settings.timezone == "Etc/UTC"
    assert settings.ai_api_keys == {}
    assert settings.log_level == "INFO"
    assert (settings.login_max_failures, settings.login_max_failures_per_ip) == (5, 20)
    assert settings.login_lockout_seconds == 300
    assert not settings.external_proxy
    assert not settings.uses_postgres
    assert settings.data_dir == "/srv/jupyterhub"
    assert settings.config_d == "/srv/jupyterhub/jupyterhub_config.d"
    assert settings.database_url() == "sqlite:////srv/jupyterhub/jupyterhub.sqlite"


def test_sqlite_lives_in_the_data_dir(make_settings):
    settings = make_settings(HUB_DATA_DIR="/var/lib/hub")

    assert settings.database_url() == "sqlite:////var/lib/hub/jupyterhub.sqlite"
    assert settings.config_d == "/var/lib/hub/jupyterhub_config.d"


def test_no_admin_account_when_admin_user_is_empty(environ):
    del environ["JUPYTER_ADMIN_PASSWORD"]

    settings = load_settings({**environ, "JUPYTER_ADMIN_USER": ""})

    assert settings.admin_user is None
    assert settings.admin_password is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2G", 2 * GIB),
        ("512M", 512 * MIB),
        ("1.5G", int(1.5 * GIB)),
        ("2g", 2 * GIB),
        ("2GB", 2 * GIB),
        ("1gib", GIB),
        (" 768M ", 768 * MIB),
        ("65536K", 64 * MIB),
    ],
)
def test_memory_limit_forms(make_settings, text, expected):
    assert make_settings(HUB_MEM_LIMIT=text).mem_limit_bytes == expected


@pytest.mark.parametrize(("text", "expected"), [("1.5", 1.5), ("2", 2.0), ("0.25", 0.25)])
def test_cpu_limit_forms(make_settings, text, expected):
    assert make_settings(HUB_CPU_LIMIT=text).cpu_limit == expected


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30m", 1800), ("2h", 7200), ("1d", 86400), ("90", 90), ("90s", 90), ("2H", 7200)],
)
def test_duration_forms(make_settings, text, seconds):
    assert make_settings(HUB_IDLE_TIMEOUT=text).idle_timeout_seconds == seconds
    assert make_settings(HUB_LOGIN_LOCKOUT=text).login_lockout_seconds == seconds


def test_idle_culling_can_be_turned_off(make_settings):
    assert make_settings(HUB_IDLE_TIMEOUT="0").idle_timeout_seconds == 0


@pytest.mark.parametrize("text", ["5", "10", "19s"])
def test_idle_timeout_shorter_than_the_culler_can_check_is_refused(environ, text):
    with pytest.raises(SettingsError) as raised:
        load_settings({**environ, "HUB_IDLE_TIMEOUT": text})

    assert [problem.variable for problem in raised.value.problems] == ["HUB_IDLE_TIMEOUT"]


# Every variable whose default is not empty, with a value different from that default.
NOT_DEFAULT = {
    "JUPYTER_ADMIN_USER": "boss",
    "HUB_LOGIN_MAX_FAILURES": "7",
    "HUB_LOGIN_MAX_FAILURES_PER_IP": "40",
    "HUB_LOGIN_MAX_FAILURES_SHARED": "60",
    "HUB_LOGIN_LOCKOUT": "10m",
    "HUB_BIND_URL": "http://127.0.0.1:9000",
    "POSTGRES_PORT": "5433",
    "POSTGRES_DB": "hubdb",
    "POSTGRES_USER": "hubuser",
    "HUB_SPAWNER": "local",
    "HUB_SINGLEUSER_IMAGE": "my/notebook:1",
    "HUB_DOCKER_NETWORK": "other-net",
    "HUB_CONNECT_HOST": "hub2",
    "HUB_HOME_VOLUME_DRIVER": "rexray/efs",
    "HUB_SWARM_SINGLE_NODE": "true",
    "HUB_MEM_LIMIT": "1G",
    "HUB_PIDS_LIMIT": "512",
    "HUB_IDLE_TIMEOUT": "2h",
    "HUB_START_CONCURRENCY": "3",
    "HUB_NAMED_SERVER_LIMIT": "3",
    "HUB_SHARING": "false",
    "HUB_SCHEDULED_RUNS": "false",
    "HUB_REPORTS": "false",
    "HUB_SCHEDULED_RUN_TIMEOUT": "2h",
    "HUB_EGRESS": "none",
    "HUB_AI_MODEL": "none",
    "TZ": "Europe/Berlin",
    "HUB_DATA_DIR": "/var/lib/hub",
    "HUB_LOG_LEVEL": "DEBUG",
    "HUB_PUBLISH_ADDRESS": "0.0.0.0",
    "HUB_PUBLISH_PORT": "8080",
    "HUB_WAIT_TIMEOUT": "600",
    "TRAEFIK_NETWORK": "proxy",
    "TRAEFIK_ENTRYPOINT": "https",
    "STACK_ENV_FILE": "stack.env",
    "HUB_IMAGE": "my/hub:1",
    "PYTHON_IMAGE": "python:3.13-slim",
    "SINGLEUSER_BASE_IMAGE": "quay.io/jupyter/minimal-notebook:2026-08-24",
    "POSTGRES_IMAGE": "postgres:16.16-trixie",
    "CHP_IMAGE": "quay.io/jupyterhub/configurable-http-proxy:5.3.1",
}


def test_the_not_default_table_covers_every_variable_with_a_default():
    with_default = {variable.name for variable in VARIABLES if variable.default}
    assert set(NOT_DEFAULT) == with_default


@pytest.mark.parametrize("name", [name for name in NOT_DEFAULT if name != "JUPYTER_ADMIN_USER"])
def test_an_empty_value_means_the_default(environ, name):
    """As with docker compose's ${X:-default}: emptying a variable is leaving it out."""
    assert load_settings({**environ, name: "  "}) == load_settings(environ)
    assert load_settings({**environ, name: NOT_DEFAULT[name]}) != load_settings(environ) or (
        BY_NAME[name].setting is None
    )


def test_an_empty_admin_user_means_no_admin_account_but_unset_means_admin(environ):
    assert load_settings(environ).admin_user == "admin"
    settings = load_settings({**environ, "JUPYTER_ADMIN_USER": ""})
    assert settings.admin_user is None


def test_allowed_users_are_normalised(make_settings):
    settings = make_settings(HUB_ALLOWED_USERS=" Alice , BOB,carol ,, alice")

    assert settings.allowed_users == frozenset({"alice", "bob", "carol"})


def test_admin_user_is_normalised(make_settings):
    assert make_settings(JUPYTER_ADMIN_USER="  Boss ").admin_user == "boss"


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ({}, {}),
        ({"OPENAI_API_KEY": "", "ANTHROPIC_API_KEY": ""}, {}),
        ({"OPENAI_API_KEY": OPENAI_KEY}, {"OPENAI_API_KEY": OPENAI_KEY}),
        (
            {"OPENAI_API_KEY": OPENAI_KEY, "ANTHROPIC_API_KEY": ANTHROPIC_KEY},
            {"OPENAI_API_KEY": OPENAI_KEY, "ANTHROPIC_API_KEY": ANTHROPIC_KEY},
        ),
    ],
)
def test_ai_keys_only_when_set(make_settings, keys, expected):
    assert dict(make_settings(**keys).ai_api_keys) == expected


@pytest.mark.parametrize(
    ("variables", "model"),
    [
        ({}, None),
        ({"OPENAI_API_KEY": OPENAI_KEY}, "openai/gpt-5.4-mini"),
        ({"ANTHROPIC_API_KEY": ANTHROPIC_KEY}, "anthropic/claude-sonnet-4-6"),
        ({"OPENAI_API_KEY": OPENAI_KEY, "ANTHROPIC_API_KEY": ANTHROPIC_KEY},
         "openai/gpt-5.4-mini"),
        ({"ANTHROPIC_API_KEY": ANTHROPIC_KEY, "HUB_AI_MODEL": "anthropic/claude-opus-4-7"},
         "anthropic/claude-opus-4-7"),
        ({"OPENAI_API_KEY": OPENAI_KEY, "HUB_AI_MODEL": "None"}, None),
        ({"OPENAI_API_KEY": OPENAI_KEY, "HUB_AI_MODEL": ""}, "openai/gpt-5.4-mini"),
        ({"HUB_AI_BASE_URL": "http://192.168.1.20:11434/v1", "HUB_AI_MODEL": "openai/llama3.2"},
         "openai/llama3.2"),
    ],
)
def test_the_assistants_model_follows_the_keys_unless_chosen(make_settings, variables, model):
    assert make_settings(**variables).assistant_model == model


def test_the_assistants_model_and_server_are_in_the_summary(make_settings):
    settings = make_settings(HUB_AI_BASE_URL="http://ollama:11434/v1",
                             HUB_AI_MODEL="openai/qwen3:8b")
    assert "AI model:       openai/qwen3:8b at http://ollama:11434/v1" in settings.summary()
    assert "AI model:       none (each user picks one)" in make_settings().summary()


def test_log_level_and_spawner_are_case_insensitive(make_settings):
    settings = make_settings(HUB_LOG_LEVEL="debug", HUB_SPAWNER="Local")

    assert (settings.log_level, settings.spawner) == ("DEBUG", "local")


def test_external_proxy(make_settings):
    settings = make_settings(
        HUB_PROXY_API_URL="http://proxy:8001/", CONFIGPROXY_AUTH_TOKEN=PROXY_TOKEN
    )

    assert settings.external_proxy
    assert settings.proxy_api_url == "http://proxy:8001"
    assert settings.proxy_auth_token == PROXY_TOKEN


def test_postgres_url_names_psycopg2_and_quotes_the_password(make_settings):
    password = "p@ss/w:rd#?%-Long-1"
    settings = make_settings(
        POSTGRES_HOST="db",
        POSTGRES_PORT="5433",
        POSTGRES_USER="hub user",
        POSTGRES_DB="hub/db",
        POSTGRES_PASSWORD=password,
    )

    url = settings.database_url()
    assert url.startswith("postgresql+psycopg2://")
    parsed = make_url(url)
    assert parsed.drivername == "postgresql+psycopg2"
    assert (parsed.username, parsed.password) == ("hub user", password)
    assert (parsed.host, parsed.port, parsed.database) == ("db", 5433, "hub/db")


def test_an_empty_postgres_port_is_the_default_port(environ):
    """`POSTGRES_PORT=` (emptied, as compose's ${X:-default} reads it) is 5432: accepted,
    never a URL with `db:None` or without a port."""
    env = {
        **environ,
        "POSTGRES_HOST": "db",
        "POSTGRES_PASSWORD": POSTGRES_PASSWORD,
        "POSTGRES_PORT": "",
    }

    settings = load_settings(env)

    assert make_url(settings.database_url()).port == 5432
    assert "database:       PostgreSQL jupyterhub@db:5432/jupyterhub" in settings.summary()


def test_summary_has_no_secret(full_environ, assert_no_secret):
    settings = load_settings({**full_environ, "HUB_ALLOWED_USERS": "alice,bob"})

    summary = "\n".join(settings.summary())
    assert_no_secret(summary, full_environ)
    assert "PostgreSQL jupyterhub@db:5432/jupyterhub" in summary
    assert "external configurable-http-proxy at http://proxy:8001" in summary
    assert "alice, bob" in summary
    assert "ANTHROPIC_API_KEY, OPENAI_API_KEY" in summary


def test_summary_of_defaults(make_settings):
    summary = make_settings(HUB_MEM_LIMIT="1.5G", HUB_CPU_LIMIT="2").summary()

    assert (
        "limits:         memory 1536M, CPU 2.0, processes 1024, capabilities none" in summary
    )
    assert "idle culling:   3600s" in summary
    assert "AI keys set:    none" in summary
    assert "allowed users:  anyone with the shared password" in summary


def test_repr_of_settings_has_no_secret(full_environ, assert_no_secret):
    """Settings end up in debug logs and tracebacks; their repr must not carry secrets."""
    settings = load_settings(full_environ)

    assert_no_secret(repr(settings), full_environ)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("true", True), ("Yes", True), ("1", True), ("off", False), ("false", False), ("", True)],
)
def test_sharing_switch(environ, text, expected):
    assert load_settings({**environ, "HUB_SHARING": text}).sharing is expected
