"""Docker Swarm without an engine: the settings Swarm refuses, the service a start creates
(captured by a recording client), home volumes on shared storage, the users' network,
and what `./hub up` and `./hub down` run on Swarm."""

from __future__ import annotations

import subprocess
from types import SimpleNamespace

import pytest
from jupyterhub.objects import Hub, Server
from traitlets.config import Config

import docker
import personal_hub.spawner
from personal_hub import homes, swarm
from personal_hub.config import apply
from personal_hub.parsers import Constraints, Invalid, VolumeOptions
from personal_hub.settings import SettingsError, load_settings
from personal_hub.spawner import PersonalDockerSpawner, PersonalSwarmSpawner, task_problem
from personal_hub.stack import ComposeStack, StackCommands, StackError, swarm_user_services

GIB = 1024**3
NODE_ID = "node0hub"
TASK_IP = "10.0.18.9"
NFS = "type=nfs o=addr=nas.lan,rw,nfsvers=4.1 device=:/export/jupyter/{username}"
SWARM = {"HUB_SPAWNER": "swarm", "HUB_EGRESS": "none", "HUB_HOME_VOLUME_OPTIONS": NFS}


def not_found(what: str):
    return docker.errors.NotFound(what, response=SimpleNamespace(status_code=404,
                                                                 reason="Not Found"))


# ---------------------------------------------------------------- settings


def problems_of(environ) -> dict[str, str]:
    try:
        load_settings(environ)
    except SettingsError as error:
        return {problem.variable: str(problem) for problem in error.problems}
    return {}


@pytest.mark.parametrize(("changes", "variable", "words"), [
    ({"HUB_HOME_VOLUME_OPTIONS": ""}, "HUB_HOME_VOLUME_OPTIONS", "HUB_SWARM_SINGLE_NODE=true"),
    ({"HUB_EGRESS": "internet"}, "HUB_EGRESS", "HUB_EGRESS=none"),
    ({"HUB_EGRESS_ALLOW": "192.168.1.20:11434"}, "HUB_EGRESS_ALLOW", "leave it empty"),
    ({"HUB_PROFILES": "gpu: gpus=all"}, "HUB_PROFILES", "gpus=1"),
    ({"HUB_HOME_VOLUME_OPTIONS": "device"}, "HUB_HOME_VOLUME_OPTIONS", "KEY=VALUE"),
    ({"HUB_HOME_VOLUME_OPTIONS": "device=/x/{user}"}, "HUB_HOME_VOLUME_OPTIONS", "{username}"),
    ({"HUB_SWARM_CONSTRAINTS": "node.role=manager"}, "HUB_SWARM_CONSTRAINTS", "ATTRIBUTE==VALUE"),
])
def test_what_swarm_refuses_is_named_with_its_fix(environ, changes, variable, words):
    found = problems_of({**environ, **SWARM, **changes})
    assert set(found) == {variable}, found
    assert words in found[variable]


@pytest.mark.parametrize("changes", [
    {},
    {"HUB_HOME_VOLUME_OPTIONS": "", "HUB_SWARM_SINGLE_NODE": "true"},
    {"HUB_HOME_VOLUME_OPTIONS": "", "HUB_HOME_VOLUME_DRIVER": "rexray/efs"},
    {"HUB_EGRESS": "all", "HUB_PROFILES": "gpu: gpus=2"},
])
def test_swarm_settings_that_work_across_nodes(environ, changes):
    assert problems_of({**environ, **SWARM, **changes}) == {}


def test_the_docker_spawner_keeps_its_defaults(environ):
    # Swarm's rules are Swarm's: the default Docker stack still starts with nothing set.
    assert problems_of(environ) == {}


def test_volume_options_and_constraints_parse():
    assert VolumeOptions()(NFS) == (("type", "nfs"), ("o", "addr=nas.lan,rw,nfsvers=4.1"),
                                    ("device", ":/export/jupyter/{username}"))
    assert Constraints()("node.labels.gpu==true, node.role != manager") == (
        "node.labels.gpu == true", "node.role != manager")
    with pytest.raises(Invalid, match="twice"):
        VolumeOptions()("type=nfs type=none")


def test_summary_says_where_servers_and_homes_are(environ):
    lines = "\n".join(load_settings({**environ, **SWARM}).summary())
    assert "Docker Swarm services" in lines and "on any node" in lines
    assert "device=:/export/jupyter/{username}" in lines


# ---------------------------------------------------------------- home volumes


def test_the_users_directory_is_made_in_the_exports_parent():
    options = dict(VolumeOptions()(NFS))
    made = homes.user_directory("local", options, "bob-2esmith")
    assert made.name == "bob-2esmith"
    assert made.root_options == {**options, "device": ":/export/jupyter"}
    assert made.root_volume.startswith(homes.ROOT_VOLUME_PREFIX)
    # Other options, another volume: never one made with old options.
    other = homes.user_directory("local", {**options, "o": "addr=nas2.lan"}, "bob-2esmith")
    assert other.root_volume != made.root_volume


@pytest.mark.parametrize("device", [":/export/{username}/home", ":/export/fixed", ""])
def test_no_directory_is_made_where_the_device_does_not_end_in_the_user(device):
    assert homes.user_directory("local", {"type": "nfs", "device": device}, "ann") is None


def test_a_plain_volume_is_not_the_shared_storage():
    options = {"type": "none", "o": "bind", "device": "/mnt/nas/ann"}
    assert homes.volume_mismatch({"Driver": "local", "Options": options}, "local", options) is None
    assert "options are none" in homes.volume_mismatch({"Driver": "local", "Options": None},
                                                       "local", options)


# ---------------------------------------------------------------- the users' network


@pytest.mark.parametrize(("egress", "internal"), [("none", True), ("all", False)])
def test_the_users_network_follows_the_egress_policy(egress, internal):
    command = swarm.network_create_command("users", egress)
    assert command[:6] == ["docker", "network", "create", "--driver", "overlay", "--attachable"]
    assert ("--internal" in command) is internal
    network = {"Driver": "overlay", "Scope": "swarm", "Internal": internal}
    assert swarm.network_problem(network, "users", egress) is None
    problem = swarm.network_problem({**network, "Internal": not internal}, "users", egress)
    assert f"HUB_EGRESS={egress}" in problem and "docker network rm users" in problem


def test_a_bridge_or_missing_network_is_refused_with_the_fix():
    assert "not a Swarm overlay" in swarm.network_problem(
        {"Driver": "bridge", "Scope": "local"}, "users", "none")
    assert "--internal users" in swarm.network_problem(None, "users", "none")


# ---------------------------------------------------------------- the spawner


class RecordingSwarmClient:
    """The Docker API calls of a Swarm start: records services, volumes and containers;
    the service's task runs (or stays in `task_status`)."""

    def __init__(self, task_status=None):
        self.services: list[dict] = []
        self.volumes: dict[str, dict] = {}
        self.containers: list[dict] = []
        self.task_status = task_status or {"State": "running"}

    def info(self):
        return {"Swarm": {"NodeID": NODE_ID}}

    def inspect_service(self, name):
        if not self.services:
            raise not_found("No such service")
        return {"ID": "service0id", "Spec": self.services[-1]}

    def create_service(self, **kwargs):
        self.services.append(kwargs)
        return {"ID": "service0id"}

    def tasks(self, filters=None):
        attachment = {"Network": {"ID": "net0id", "Spec": {"Name": "jupyterhub-net"}},
                      "Addresses": [f"{TASK_IP}/24"]}
        return ([{"Status": self.task_status, "NetworksAttachments": [attachment]}]
                if self.services else [])

    def inspect_volume(self, name):
        if name not in self.volumes:
            raise not_found("No such volume")
        return self.volumes[name]

    def create_volume(self, name, driver, driver_opts):
        self.volumes.setdefault(name, {"Driver": driver, "Options": driver_opts})

    def inspect_image(self, image):
        return {"Config": {"Cmd": ["start-notebook.py"]}}

    def create_host_config(self, **kwargs):
        return docker.types.HostConfig(version="1.41", **kwargs)

    def create_container(self, **kwargs):
        self.containers.append(kwargs)
        return {"Id": f"helper{len(self.containers)}"}

    def start(self, container_id):
        pass

    def wait(self, container_id, timeout):
        return {"StatusCode": 0}

    def remove_container(self, container_id, force):
        pass


@pytest.fixture
def swarm_spawn(environ, monkeypatch):
    """`await swarm_spawn(username, **stack_env_changes)`: the client after a start."""

    async def start(username, *, client=None, spawner_class=PersonalSwarmSpawner,
                    user_options=None, **changes):
        settings = load_settings({**environ, **SWARM, **changes})
        c = Config()
        apply(settings, c)
        client = client or RecordingSwarmClient()
        monkeypatch.setattr(PersonalDockerSpawner, "_client", client)
        monkeypatch.setattr(PersonalDockerSpawner, "_made_home_directories", set())
        monkeypatch.setattr(PersonalSwarmSpawner, "_hub_node_id", None)

        async def answers(url):
            pass

        monkeypatch.setattr(personal_hub.spawner, "answering", answers)
        spawner = spawner_class(
            config=c, user=SimpleNamespace(name=username, escaped_name=username, admin=False,
                                           url=f"/user/{username}/"),
            hub=Hub(ip="0.0.0.0", connect_ip="hub", port=8081),
            oauth_client_id="jupyterhub-user-test", api_token="api-token-for-test")
        spawner.server = Server(base_url=f"/user/{username}/")
        await spawner._run_apply_user_options(user_options or {})
        # The proxy and the hub reach the task by its address (not the service's name).
        assert await spawner.start() == (TASK_IP, 8888)
        return client

    return start


async def test_a_start_creates_one_service_with_the_hubs_policy(swarm_spawn):
    client = await swarm_spawn("bob.smith", HUB_MEM_LIMIT="1G", HUB_CPU_LIMIT="1.5",
                               HUB_CAP_ADD="CHOWN", HUB_SWARM_CONSTRAINTS="node.labels.x==y")
    (created,) = client.services
    assert created["name"] == "jupyter-bob-2esmith"
    assert created["labels"] == {"personal-hub.server": "bob.smith"}
    task = created["task_template"]
    container = task["ContainerSpec"]
    assert container["Image"] == "personal-jupyter-singleuser:latest"
    assert (container["CapabilityDrop"], container["CapabilityAdd"]) == (["ALL"], ["CHOWN"])
    assert container["Privileges"] == {"NoNewPrivileges": True}
    assert task["Resources"]["Limits"] == {"MemoryBytes": GIB, "NanoCPUs": 1_500_000_000,
                                           "Pids": 1024}
    assert task["Placement"]["Constraints"] == ["node.labels.x == y"]
    assert task["Networks"] == [{"Target": "jupyterhub-net"}]
    assert task["RestartPolicy"]["Condition"] == "none"
    assert created["endpoint_spec"]["Mode"] == "dnsrr"
    env = dict(line.split("=", 1) for line in container["Env"])
    assert env["JUPYTERHUB_USER"] == "bob.smith"
    assert "JUPYTER_PASSWORD" not in env and "POSTGRES_PASSWORD" not in env


async def test_the_home_is_on_the_shared_storage_made_for_the_user(swarm_spawn):
    client = await swarm_spawn("bob.smith")
    [mount] = client.services[0]["task_template"]["ContainerSpec"]["Mounts"]
    assert (mount["Type"], mount["Source"], mount["Target"]) == (
        "volume", "jupyterhub-user-bob-2esmith", "/home/jovyan")
    driver = mount["VolumeOptions"]["DriverConfig"]
    assert driver == {"Name": "local", "Options": {
        "type": "nfs", "o": "addr=nas.lan,rw,nfsvers=4.1",
        "device": ":/export/jupyter/bob-2esmith"}}
    # The directory was made first, in a locked-down throwaway container on the parent.
    [helper] = client.containers
    assert helper["command"] == ["-p", "/homes/bob-2esmith"]
    assert helper["entrypoint"] == ["mkdir"] and helper["user"] == "1000:100"
    host = helper["host_config"]
    assert (host["NetworkMode"], host["CapDrop"], host["ReadonlyRootfs"]) == (
        "none", ["ALL"], True)
    [root] = [name for name in client.volumes if name.startswith(homes.ROOT_VOLUME_PREFIX)]
    assert client.volumes[root]["Options"]["device"] == ":/export/jupyter"
    assert host["Binds"] == [f"{root}:/homes:rw"]


async def test_a_crafted_username_stays_in_its_own_directory(swarm_spawn):
    client = await swarm_spawn("../root")
    [mount] = client.services[0]["task_template"]["ContainerSpec"]["Mounts"]
    device = mount["VolumeOptions"]["DriverConfig"]["Options"]["device"]
    assert device == ":/export/jupyter/-2e-2e-2froot"
    assert client.containers[0]["command"] == ["-p", "/homes/-2e-2e-2froot"]


async def test_a_plain_volume_of_the_same_name_stops_the_start(swarm_spawn):
    client = RecordingSwarmClient()
    client.volumes["jupyterhub-user-ann"] = {"Driver": "local", "Options": None}
    with pytest.raises(RuntimeError, match="not on the shared storage"):
        await swarm_spawn("ann", client=client)
    assert client.services == []


async def test_single_node_pins_servers_to_the_hubs_node(swarm_spawn):
    client = await swarm_spawn("ann", HUB_HOME_VOLUME_OPTIONS="", HUB_SWARM_SINGLE_NODE="true")
    task = client.services[0]["task_template"]
    assert task["Placement"]["Constraints"] == [f"node.id == {NODE_ID}"]
    [mount] = task["ContainerSpec"]["Mounts"]
    assert "VolumeOptions" not in mount  # a plain local volume, beside its server
    assert client.containers == [] and client.volumes == {}


async def test_a_gpu_profile_asks_the_swarm_for_gpus(swarm_spawn):
    client = await swarm_spawn("ann", HUB_PROFILES="small: cpu=1; gpu: memory=4G gpus=2",
                               user_options={"profile": "gpu"})
    resources = client.services[0]["task_template"]["Resources"]
    assert resources["Reservations"]["GenericResources"] == [
        {"DiscreteResourceSpec": {"Kind": "NVIDIA-GPU", "Value": 2}}]
    assert resources["Limits"]["MemoryBytes"] == 4 * GIB


class GpuNodesOnly(PersonalSwarmSpawner):
    def user_placement_constraints(self):
        return [*super().user_placement_constraints(), "node.labels.gpu == true"]


async def test_a_subclass_overrides_one_placement_method(swarm_spawn):
    client = await swarm_spawn("ann", spawner_class=GpuNodesOnly)
    assert client.services[0]["task_template"]["Placement"]["Constraints"] == [
        "node.labels.gpu == true"]


async def test_a_server_no_node_can_run_ends_the_start_in_words(swarm_spawn):
    pending = {"State": "pending",
               "Err": "no suitable node (scheduling constraints not satisfied on 1 node)"}
    with pytest.raises(RuntimeError, match="No node of the swarm can run your server"):
        await swarm_spawn("ann", client=RecordingSwarmClient(pending))


@pytest.mark.parametrize(("status", "words"), [
    ({"State": "rejected", "Err": "invalid mount config"}, "could not start on the swarm"),
    ({"State": "failed", "Err": "task: non-zero exit (1)"}, "non-zero exit"),
    ({"State": "pending", "Err": "no suitable node (insufficient resources on 2 nodes)"},
     "insufficient resources"),
    ({"State": "preparing"}, None),
    ({"State": "pending", "Message": "pending task scheduling"}, None),
])
def test_task_problems_in_words(status, words):
    problem = task_problem(status)
    assert (problem is None) if words is None else (words in problem)


def test_config_selects_the_swarm_spawner(environ):
    c = Config()
    apply(load_settings({**environ, **SWARM, "HUB_SWARM_CONSTRAINTS": "node.role==worker"}), c)
    assert c.JupyterHub.spawner_class == "personal-swarm"
    assert c.PersonalSwarmSpawner.placement_constraints == ["node.role == worker"]
    assert c.PersonalDockerSpawner.home_volume_options["type"] == "nfs"
    assert c.DockerSpawner.network_name == "jupyterhub-net"
    assert [s["name"] for s in c.JupyterHub.services] == ["idle-culler", "scheduler", "reports"]


def test_the_swarm_spawner_is_an_entry_point():
    from importlib.metadata import entry_points

    [found] = [e for e in entry_points(group="jupyterhub.spawners") if e.name == "personal-swarm"]
    assert found.load() is PersonalSwarmSpawner


# ---------------------------------------------------------------- ./hub up and down


class Sequence:
    """Answers that change: one per call, the last one repeated."""

    def __init__(self, *answers):
        self.answers = list(answers)

    def next(self):
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


class Recorder:
    """subprocess.run for StackCommands: records each command, answers from `answers`
    (the first key that the command starts with)."""

    def __init__(self, answers: dict[tuple, str | int]):
        self.answers = answers
        self.commands: list[list[str]] = []

    def __call__(self, command, **kwargs):
        self.commands.append(command)
        for prefix, answer in self.answers.items():
            if tuple(command[:len(prefix)]) == prefix:
                if isinstance(answer, Sequence):
                    answer = answer.next()
                code, out = (answer, "") if isinstance(answer, int) else (0, answer)
                return subprocess.CompletedProcess(command, code, out, "")
        return subprocess.CompletedProcess(command, 0, "", "")


def swarm_commands(tmp_path, answers, **values) -> tuple[StackCommands, Recorder]:
    env = tmp_path / "stack.env"
    env.write_text("".join(f"{k}={v}\n" for k, v in {"HUB_SPAWNER": "swarm", **values}.items()))
    recorder = Recorder(answers)
    stack = ComposeStack.load(str(env), {"PATH": "/usr/bin", "HUB_WAIT_TIMEOUT": "10"})
    return StackCommands(stack, recorder), recorder


MANAGER = {("docker", "info", "--format", "{{.Swarm.LocalNodeState}} "
            "{{.Swarm.ControlAvailable}}"): "active true\n"}


def test_up_on_swarm_labels_makes_the_network_and_deploys(tmp_path):
    answers = {**MANAGER, ("docker", "network", "inspect"): 1,
               ("docker", "info", "--format", "{{.Swarm.NodeID}}"): "node7\n",
               ("docker", "service", "ls"): "personal-hub_hub 1/1\npersonal-hub_db 1/1\n"}
    commands, recorder = swarm_commands(tmp_path, answers, HUB_EGRESS="none",
                                        POSTGRES_PASSWORD="from-the-env-file")
    commands.up()
    ran = [" ".join(c) for c in recorder.commands]
    assert "docker node update --label-add personal-hub.state=true node7" in ran
    assert ("docker network create --driver overlay --attachable --internal "
            "jupyterhub-net") in ran
    deploy = [c for c in recorder.commands if c[:3] == ["docker", "stack", "deploy"]]
    assert deploy == [["docker", "stack", "deploy", "--detach=false", "--resolve-image",
                       "never", "--compose-file", "compose/swarm.yml", "personal-hub"]]
    assert any(c[:2] == ["docker", "build"] and "docker/hub.Dockerfile" in c
               for c in recorder.commands)


def test_a_domain_deploys_with_traefiks_labels(tmp_path):
    answers = {**MANAGER, ("docker", "network", "inspect"): 1,
               ("docker", "service", "ls"): "personal-hub_hub 1/1\n"}
    commands, recorder = swarm_commands(tmp_path, answers, HUB_EGRESS="none",
                                        JUPYTER_DOMAIN="hub.example.org")
    commands.up()
    [deploy] = [c for c in recorder.commands if c[:3] == ["docker", "stack", "deploy"]]
    assert deploy[6:11] == ["--compose-file", "compose/swarm.yml", "--compose-file",
                           "compose/swarm-traefik.yml", "personal-hub"]


def test_deploy_interpolates_stack_env_under_the_shell():
    stack = ComposeStack("stack.env", {"POSTGRES_PASSWORD": "file", "HUB_PUBLISH_PORT": "8000"},
                         {"HUB_PUBLISH_PORT": "9000", "EMPTY": ""})
    assert stack.interpolation_environ() == {"POSTGRES_PASSWORD": "file",
                                             "HUB_PUBLISH_PORT": "9000"}


def test_up_on_an_engine_outside_a_swarm_says_how(tmp_path):
    commands, _ = swarm_commands(tmp_path, {("docker", "info"): "inactive false\n"})
    with pytest.raises(StackError, match="docker swarm init"):
        commands.up()


def test_up_refuses_a_users_network_that_egress_does_not_allow(tmp_path):
    network = '[{"Name": "jupyterhub-net", "Driver": "overlay", "Scope": "swarm", ' \
              '"Internal": false}]'
    answers = {**MANAGER, ("docker", "network", "inspect"): network,
               ("docker", "node", "ls"): "node7\n"}
    commands, recorder = swarm_commands(tmp_path, answers, HUB_EGRESS="none")
    with pytest.raises(StackError, match="needs it internal"):
        commands.up()
    assert not [c for c in recorder.commands if c[:3] == ["docker", "stack", "deploy"]]


def test_down_removes_this_hubs_servers_the_stack_and_the_network(tmp_path):
    network = '[{"Name": "jupyterhub-net", "Id": "net1"}]'
    answers = {("docker", "network", "inspect", "jupyterhub-net"): Sequence(network, 1),
               ("docker", "service", "ls"): "s1\ns2\ns3\n",
               ("docker", "service", "inspect"): "jupyter-ann net1\njupyter-other net9\n"}
    commands, recorder = swarm_commands(tmp_path, answers)
    commands.down()
    ran = [" ".join(c) for c in recorder.commands]
    assert "docker service rm jupyter-ann" in ran
    assert "docker stack rm personal-hub" in ran
    assert ran[-2:] == ["docker network rm jupyterhub-net",
                        "docker network inspect jupyterhub-net"]


def test_user_services_are_those_on_the_users_network():
    listing = "jupyter-ann net1\njupyter-bob net2 net1\njupyter-eve net3\n"
    assert swarm_user_services(listing, "net1") == ["jupyter-ann", "jupyter-bob"]


def test_rotate_on_swarm_revokes_beside_the_hubs_data_then_deploys(tmp_path):
    answers = {**MANAGER, ("docker", "service", "ls"): "personal-hub_hub 1/1\n",
               ("docker", "network", "inspect"): '[{"Name": "jupyterhub-net", "Driver": '
               '"overlay", "Scope": "swarm", "Internal": true}]'}
    commands, recorder = swarm_commands(tmp_path, answers, HUB_EGRESS="none",
                                        JUPYTER_PASSWORD="the-new-shared-password")
    commands.require_running()
    commands.restart_revoking_logins()
    ran = [" ".join(c) for c in recorder.commands]
    scale = ran.index("docker service scale --detach=false personal-hub_hub=0")
    [revoke] = [i for i, c in enumerate(recorder.commands) if c[-1] == "revoke-logins"]
    deploy = ran.index("docker stack deploy --detach=false --resolve-image never "
                       "--compose-file compose/swarm.yml personal-hub")
    assert scale < revoke < deploy
    command = recorder.commands[revoke]
    assert command[:5] == ["docker", "run", "--rm", "--network", "personal-hub_db-net"]
    assert "personal-hub_jupyterhub_data:/srv/jupyterhub" in command
    # Values travel in the environment, never on the command line.
    assert "JUPYTER_PASSWORD" in command and not any("the-new" in part for part in command)


def test_rotate_elsewhere_than_the_hubs_node_says_where(tmp_path):
    answers = {("docker", "volume", "inspect"): 1}
    commands, recorder = swarm_commands(tmp_path, answers)
    with pytest.raises(StackError, match="personal-hub.state=true"):
        commands.restart_revoking_logins()
    assert not [c for c in recorder.commands if c[:3] == ["docker", "service", "scale"]]


@pytest.mark.parametrize("action", ["backup", "upgrade", "restore", "compose"])
def test_compose_only_actions_say_so_on_swarm(tmp_path, action):
    commands, recorder = swarm_commands(tmp_path, {})
    with pytest.raises(StackError, match="docs/operating.md"):
        commands.require_compose(action)
    assert recorder.commands == []


def test_a_tasks_address_on_the_users_network():
    from personal_hub.spawner import task_address

    task = {"NetworksAttachments": [
        {"Network": {"ID": "edge0", "Spec": {"Name": "other"}}, "Addresses": ["10.1.0.5/24"]},
        {"Network": {"ID": "net0", "Spec": {"Name": "users"}}, "Addresses": ["10.0.18.9/24"]},
    ]}
    assert task_address(task, "users") == "10.0.18.9"
    assert task_address(task, "net0") == "10.0.18.9"
    assert task_address(task, "elsewhere") is None
    assert task_address({}, "users") is None
