"""The exact Docker API calls of `PersonalDockerSpawner`, captured without a Docker engine."""

from __future__ import annotations

import json
import os
import threading
from types import SimpleNamespace

import pytest
from jupyterhub.objects import Hub, Server
from sample_secrets import (
    ADMIN_PASSWORD,
    ANTHROPIC_KEY,
    OPENAI_KEY,
    POSTGRES_PASSWORD,
    PROXY_TOKEN,
    USER_PASSWORD,
)
from tornado.web import HTTPError
from traitlets.config import Config

import docker
import personal_hub.spawner
from personal_hub.config import apply
from personal_hub.settings import load_settings
from personal_hub.spawner import (
    AI_BASE_URL_VARIABLE,
    AI_MODEL_VARIABLE,
    DATA_CONNECTIONS_VARIABLE,
    PersonalDockerSpawner,
    PersonalLocalSpawner,
)

GIB = 1024**3
CONTAINER_ID = "0123456789abcdef"
CONTAINER_IP = "172.18.0.5"


class RecordingDockerClient:
    """Answers the few Docker API calls a spawn makes, and records them.

    `create_host_config` is docker-py's own HostConfig for API 1.41, so the recorded
    host config is exactly what would be sent to the engine.
    """

    def __init__(self, network: str):
        self.network = network
        self.created: list[dict] = []
        self.started: list[str] = []

    def create_host_config(self, **kwargs):
        return docker.types.HostConfig(version="1.41", **kwargs)

    def inspect_image(self, image):
        return {"Config": {"Cmd": ["start-notebook.py"]}}

    def inspect_container(self, name_or_id):
        if not self.created:
            response = SimpleNamespace(status_code=404, reason="Not Found")
            raise docker.errors.NotFound("No such container", response=response)
        return {
            "Id": CONTAINER_ID,
            "NetworkSettings": {"Networks": {self.network: {"IPAddress": CONTAINER_IP}}},
        }

    def create_container(self, **kwargs):
        self.created.append(kwargs)
        return {"Id": CONTAINER_ID}

    def start(self, container_id):
        self.started.append(container_id)


def hub() -> Hub:
    """The hub's API address as user servers see it (a fixed port: no random one)."""
    return Hub(ip="0.0.0.0", connect_ip="hub", port=8081)


def fake_user(name: str, admin: bool = False):
    """The attributes of a hub User that a spawner reads."""
    return SimpleNamespace(name=name, escaped_name=name, admin=admin, url=f"/user/{name}/")


@pytest.fixture
def spawn(environ, monkeypatch):
    """`await spawn(username, **stack_env_changes)`: the create_container kwargs of a start."""

    async def spawn_container(
        username: str,
        *,
        admin: bool = False,
        spawner_class=PersonalDockerSpawner,
        config: Config | None = None,
        user_options: dict | None = None,
        **changes: str,
    ) -> dict:
        settings = load_settings({**environ, **changes})
        c = Config()
        apply(settings, c)
        if config is not None:
            c.merge(config)
        client = RecordingDockerClient(settings.docker_network)
        monkeypatch.setattr(PersonalDockerSpawner, "_client", client)
        spawner = spawner_class(
            config=c,
            user=fake_user(username, admin),
            hub=hub(),
            oauth_client_id="jupyterhub-user-test",
            api_token="api-token-for-test",
        )

        spawner.server = Server(base_url=f"/user/{username}/")
        waited_for = []

        async def answers(url):
            waited_for.append(url)

        monkeypatch.setattr(personal_hub.spawner, "answering", answers)

        # As JupyterHub does before every start (user_options from the form or the API).
        await spawner._run_apply_user_options(user_options or {})
        ip, port = await spawner.start()

        assert (ip, port) == (CONTAINER_IP, 8888)
        # start() returns once the server answers where the hub will check it.
        assert waited_for == [f"http://{CONTAINER_IP}:8888/user/{username}/api"]
        (created,) = client.created
        assert client.started == [CONTAINER_ID]
        return created

    return spawn_container


ESCAPED = [
    ("alice", "alice"),
    ("bob.smith", "bob-2esmith"),
    ("a-b", "a-2db"),
    ("a_b", "a-5fb"),
    ("x.y-z", "x-2ey-2dz"),
    ("0day", "0day"),
]


@pytest.mark.parametrize(("username", "escaped"), ESCAPED)
async def test_container_of_a_user(spawn, username, escaped):
    created = await spawn(username, TZ="Europe/Berlin")

    assert created["name"] == f"jupyter-{escaped}"
    assert created["image"] == "personal-jupyter-singleuser:latest"
    assert created["environment"]["TZ"] == "Europe/Berlin"
    assert created["environment"]["JUPYTERHUB_USER"] == username
    host = created["host_config"]
    assert host["Binds"] == [f"jupyterhub-user-{escaped}:/home/jovyan:rw"]
    assert host["NetworkMode"] == "jupyterhub-net"
    assert host["AutoRemove"] is True
    assert host["Memory"] == host["MemorySwap"] == 2 * GIB, "2G by default, no swap beyond"
    assert "CpuQuota" not in host
    assert host["CapDrop"] == ["ALL"] and "CapAdd" not in host
    assert host["SecurityOpt"] == ["no-new-privileges:true"]
    assert host["PidsLimit"] == 1024
    assert created["environment"]["MEM_LIMIT"] == str(2 * GIB)
    assert "PortBindings" not in host, "reached over the Docker network, never published"
    # Marked as a server, so one a dead hub left behind can be found (and nothing else).
    assert created["labels"] == {"personal-hub.server": username}


async def test_image_and_network_from_settings(spawn):
    created = await spawn(
        "alice", HUB_SINGLEUSER_IMAGE="example/lab:2.0", HUB_DOCKER_NETWORK="labnet"
    )

    assert created["image"] == "example/lab:2.0"
    assert created["host_config"]["NetworkMode"] == "labnet"


@pytest.mark.parametrize(
    ("mem", "cpu", "memory_bytes", "quota"),
    [
        ("2G", "1.5", 2 * GIB, 150_000),
        ("512M", "0.5", 512 * 1024**2, 50_000),
        ("1.5G", "2", int(1.5 * GIB), 200_000),
    ],
)
async def test_limits_from_settings(spawn, mem, cpu, memory_bytes, quota):
    host = (await spawn("alice", HUB_MEM_LIMIT=mem, HUB_CPU_LIMIT=cpu))["host_config"]

    assert host["Memory"] == memory_bytes
    assert (host["CpuQuota"], host["CpuPeriod"]) == (quota, 100_000)


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ({}, {}),
        ({"OPENAI_API_KEY": OPENAI_KEY}, {"OPENAI_API_KEY": OPENAI_KEY}),
        (
            {"OPENAI_API_KEY": "", "ANTHROPIC_API_KEY": ANTHROPIC_KEY},
            {"ANTHROPIC_API_KEY": ANTHROPIC_KEY},
        ),
        (
            {"OPENAI_API_KEY": OPENAI_KEY, "ANTHROPIC_API_KEY": ANTHROPIC_KEY},
            {"OPENAI_API_KEY": OPENAI_KEY, "ANTHROPIC_API_KEY": ANTHROPIC_KEY},
        ),
    ],
)
async def test_ai_keys_only_when_set(spawn, keys, expected):
    environment = (await spawn("alice", **keys))["environment"]

    ai_names = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")
    present = {name: environment[name] for name in ai_names if name in environment}
    assert present == expected


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({}, {}),
        ({"OPENAI_API_KEY": OPENAI_KEY}, {AI_MODEL_VARIABLE: "openai/gpt-5.4-mini"}),
        ({"OPENAI_API_KEY": OPENAI_KEY, "HUB_AI_MODEL": "none"}, {}),
        (
            {"HUB_AI_MODEL": "openai/llama3.2", "HUB_AI_BASE_URL": "http://ollama:11434/v1"},
            {
                AI_MODEL_VARIABLE: "openai/llama3.2",
                AI_BASE_URL_VARIABLE: "http://ollama:11434/v1",
                "OPENAI_BASE_URL": "http://ollama:11434/v1",
            },
        ),
    ],
)
async def test_the_assistants_model_reaches_the_server(spawn, variables, expected):
    environment = (await spawn("alice", **variables))["environment"]

    names = (AI_MODEL_VARIABLE, AI_BASE_URL_VARIABLE, "OPENAI_BASE_URL")
    assert {name: environment[name] for name in names if name in environment} == expected


async def test_empty_ai_key_from_an_override_is_not_passed(spawn):
    override = Config()
    override.PersonalSpawner.ai_api_keys = {"OPENAI_API_KEY": "", "OTHER_KEY": "k-123"}

    environment = (await spawn("alice", config=override))["environment"]

    assert "OPENAI_API_KEY" not in environment
    assert environment["OTHER_KEY"] == "k-123"


async def test_hub_secrets_never_reach_the_container(spawn, monkeypatch):
    hub_secrets = {
        "JUPYTER_PASSWORD": USER_PASSWORD,
        "JUPYTER_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "CONFIGPROXY_AUTH_TOKEN": PROXY_TOKEN,
        "POSTGRES_PASSWORD": POSTGRES_PASSWORD,
    }
    for name, value in hub_secrets.items():
        monkeypatch.setenv(name, value)  # the hub process has them in its environment

    environment = (await spawn("alice"))["environment"]

    for name, value in hub_secrets.items():
        assert name not in environment
        assert value not in environment.values()


NEIGHBOURS = ["a-b", "a_b", "a.b", "a-2db", "a--b", "ab", "a-5fb", "a-2eb"]


async def test_different_usernames_never_share_a_container_or_volume(spawn):
    containers, volumes = set(), set()
    for username in NEIGHBOURS:
        created = await spawn(username)
        containers.add(created["name"])
        (bind,) = created["host_config"]["Binds"]
        volumes.add(bind.split(":")[0])

    assert len(containers) == len(NEIGHBOURS)
    assert len(volumes) == len(NEIGHBOURS)


# ---------------------------------------------------------------- policy subclasses


class BigMemoryForAdmins(PersonalDockerSpawner):
    def user_mem_limit(self):
        return "4G" if self.user.admin else super().user_mem_limit()


class SharedDataVolume(PersonalDockerSpawner):
    def user_volumes(self):
        return {**super().user_volumes(), "team-data": "/home/jovyan/shared"}


def without(created: dict, *, keys=(), host_keys=(), env_keys=()) -> dict:
    """The create_container kwargs minus the arguments a policy is expected to change."""
    rest = {key: value for key, value in created.items() if key not in keys}
    rest["host_config"] = {
        key: value for key, value in created["host_config"].items() if key not in host_keys
    }
    rest["environment"] = {
        key: value for key, value in created["environment"].items() if key not in env_keys
    }
    return rest


async def test_subclass_overriding_one_method_changes_only_that_argument(spawn):
    plain = await spawn("boss", admin=True, HUB_MEM_LIMIT="2G")
    policy = await spawn("boss", admin=True, spawner_class=BigMemoryForAdmins, HUB_MEM_LIMIT="2G")
    non_admin = await spawn("carol", spawner_class=BigMemoryForAdmins, HUB_MEM_LIMIT="2G")

    assert plain["host_config"]["Memory"] == 2 * GIB
    assert policy["host_config"]["Memory"] == 4 * GIB
    assert non_admin["host_config"]["Memory"] == 2 * GIB
    # MEM_LIMIT tells the server its own limit, so it follows the policy too
    # ...and so does the swap cap (no swap beyond the memory limit)
    assert policy["host_config"]["MemorySwap"] == 4 * GIB
    changed = {"host_keys": ["Memory", "MemorySwap"], "env_keys": ["MEM_LIMIT"]}
    assert without(policy, **changed) == without(plain, **changed)


async def test_subclass_adding_a_volume(spawn):
    plain = await spawn("alice")
    policy = await spawn("alice", spawner_class=SharedDataVolume)

    assert sorted(policy["host_config"]["Binds"]) == [
        "jupyterhub-user-alice:/home/jovyan:rw",
        "team-data:/home/jovyan/shared:rw",
    ]
    assert sorted(policy["volumes"]) == ["/home/jovyan", "/home/jovyan/shared"]
    assert without(policy, keys=["volumes"], host_keys=["Binds"]) == without(
        plain, keys=["volumes"], host_keys=["Binds"]
    )


async def test_home_volume_template_is_configurable(spawn):
    override = Config()
    override.PersonalDockerSpawner.home_volume_template = "lab-{username}-home"

    created = await spawn("bob.smith", config=override)

    assert created["host_config"]["Binds"] == ["lab-bob-2esmith-home:/home/jovyan:rw"]


# ---------------------------------------------------------------- local spawner


@pytest.fixture
def local_spawner(environ, tmp_path):
    c = Config()
    apply(
        load_settings(
            {
                **environ,
                **{
                    "HUB_SPAWNER": "local",
                    "HUB_DATA_DIR": str(tmp_path),
                    "TZ": "Asia/Tokyo",
                    "OPENAI_API_KEY": OPENAI_KEY,
                },
            }
        ),
        c,
    )
    return PersonalLocalSpawner(
        config=c, user=fake_user("alice"), hub=hub(), oauth_client_id="x", api_token="t"
    )


@pytest.mark.parametrize(("euid", "allow_root"), [(0, True), (1000, False)])
def test_local_server_runs_as_root_only_with_allow_root(
    local_spawner, monkeypatch, euid, allow_root
):
    monkeypatch.setattr(os, "geteuid", lambda: euid)

    args = local_spawner.get_args()

    assert ("--allow-root" in args) is allow_root
    assert args.count("--allow-root") <= 1


def test_allow_root_is_not_duplicated(local_spawner, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    local_spawner.args = ["--allow-root"]

    assert local_spawner.get_args().count("--allow-root") == 1


def test_local_server_environment(local_spawner, tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTER_PASSWORD", USER_PASSWORD)

    env = local_spawner.get_env()

    assert env["TZ"] == "Asia/Tokyo"
    assert env["OPENAI_API_KEY"] == OPENAI_KEY
    assert "ANTHROPIC_API_KEY" not in env
    assert "JUPYTER_PASSWORD" not in env
    assert env["HOME"] == str(tmp_path / "users" / "alice")


def test_a_slow_docker_call_does_not_hold_up_the_others():
    """DockerSpawner runs every Docker call of the hub on one thread: a stop waiting for a
    server to exit would stall everyone's starts. Ours run side by side."""
    spawner = PersonalDockerSpawner(
        user=fake_user("alice"), hub=hub(), oauth_client_id="x", api_token="t"
    )
    both_running = threading.Barrier(2, timeout=5)

    calls = [spawner.executor.submit(both_running.wait) for _ in range(2)]

    assert sorted(call.result(timeout=10) for call in calls) == [0, 1]
    assert spawner.executor._max_workers == spawner.docker_threads == 4


PROFILES = ("small: cpu=1 memory=1G; large: cpu=4 memory=8G; "
            "gpu: memory=16G gpus=all image=my/cuda-notebook:1; two-gpus: gpus=2")


@pytest.mark.parametrize(
    ("profile", "image", "memory", "quota", "devices"),
    [
        (None, "personal-jupyter-singleuser:latest", 1 * GIB, 100_000, None),  # the first
        ("small", "personal-jupyter-singleuser:latest", 1 * GIB, 100_000, None),
        ("large", "personal-jupyter-singleuser:latest", 8 * GIB, 400_000, None),
        ("gpu", "my/cuda-notebook:1", 16 * GIB, 50_000, [-1]),
        # What a profile leaves out is the hub's setting (HUB_MEM_LIMIT, HUB_CPU_LIMIT).
        ("two-gpus", "personal-jupyter-singleuser:latest", 2 * GIB, 50_000, [2]),
    ],
)
async def test_each_profile_decides_image_limits_and_gpus(spawn, profile, image, memory,
                                                          quota, devices):
    options = {"profile": profile} if profile else {}
    created = await spawn("alice", user_options=options, HUB_PROFILES=PROFILES,
                          HUB_CPU_LIMIT="0.5")

    host = created["host_config"]
    assert created["image"] == image
    assert host["Memory"] == host["MemorySwap"] == memory
    assert host["CpuQuota"] == quota
    assert created["environment"]["MEM_LIMIT"] == str(memory)  # the usage display's limit
    requests = host.get("DeviceRequests")
    if devices is None:
        assert requests is None
    else:
        assert [(r["Driver"], r["Count"], r["Capabilities"]) for r in requests] == [
            ("", count, [["gpu"]]) for count in devices]


@pytest.mark.parametrize(
    "options",
    [
        {"profile": "huge"},  # not declared
        {"profile": "small", "image": "attacker/miner"},  # DockerSpawner would read image
        {"image": "attacker/miner"},
        {"profile": ["small"]},
        {"profile": "small", "cpu": 64},
    ],
)
async def test_only_a_declared_profile_can_be_started(spawn, options):
    """user_options come from the form or straight from the REST API: nothing but the
    name of a declared profile is taken from them."""
    with pytest.raises(HTTPError) as refused:
        await spawn("alice", user_options=options, HUB_PROFILES=PROFILES)
    assert refused.value.status_code == 400
    assert "profile" in refused.value.jupyterhub_message


async def test_without_profiles_user_options_are_refused(spawn):
    with pytest.raises(HTTPError) as refused:
        await spawn("alice", user_options={"image": "attacker/miner"})
    assert refused.value.status_code == 400


class GpuForAdmins(PersonalDockerSpawner):
    def user_profiles(self):
        profiles = super().user_profiles()
        return profiles if self.user.admin else [p for p in profiles if not p.gpus]


async def test_a_policy_narrows_the_profiles_per_user(spawn):
    admin = await spawn("boss", admin=True, spawner_class=GpuForAdmins,
                        user_options={"profile": "gpu"}, HUB_PROFILES=PROFILES)
    assert admin["host_config"]["DeviceRequests"]
    with pytest.raises(HTTPError):
        await spawn("carol", spawner_class=GpuForAdmins, user_options={"profile": "gpu"},
                    HUB_PROFILES=PROFILES)


async def test_team_connections_reach_every_server(spawn):
    connections = "sales=postgresql://reader:Db-Secret-42@db.lan/sales lake=duckdb:////d/l.db"
    environment = (await spawn("alice", HUB_DATA_CONNECTIONS=connections))["environment"]

    assert json.loads(environment[DATA_CONNECTIONS_VARIABLE]) == {
        "sales": "postgresql://reader:Db-Secret-42@db.lan/sales",
        "lake": "duckdb:////d/l.db",
    }
    assert DATA_CONNECTIONS_VARIABLE not in (await spawn("bob"))["environment"]


async def test_git_gets_an_email_address_until_the_user_sets_one(spawn):
    environment = (await spawn("bob.smith"))["environment"]
    assert environment["EMAIL"] == "bob.smith@personal-hub.invalid"

