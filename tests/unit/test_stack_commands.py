"""What ./hub up|down|rotate|build|compose and ./hub test know, from personal_hub.stack and
personal_hub.devenv: compose files, which value wins, image builds, the docker commands in
order, where things are kept, where PostgreSQL is. Docker is a recorder here."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from personal_hub import cli, devenv
from personal_hub.cli import main
from personal_hub.devenv import dev_env, postgres_bin_dir, shell_assignments
from personal_hub.envfile import read_env_file
from personal_hub.stack import (
    COMPOSE_FILE,
    TRAEFIK_FILE,
    ComposeStack,
    StackCommands,
    StackError,
    published_url,
    rollback_tag,
    user_servers,
)
from personal_hub.variables import BY_NAME

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """No stack.env variable leaks in from the environment the tests run in."""
    for name in list(os.environ):
        if name.startswith(("HUB_", "COMPOSE_")) or name in BY_NAME:
            monkeypatch.delenv(name)


def stack(file_values=None, **shell) -> ComposeStack:
    return ComposeStack("stack.env", dict(file_values or {}), shell)


class Docker:
    """Records every command; answers by the longest matching command prefix."""

    def __init__(self, answers: dict[tuple[str, ...], tuple[int, str]] | None = None):
        self.answers = {
            ("docker", "compose", "version"): (0, "Docker Compose version v2.40.0"),
            ("docker", "inspect"): (0, "healthy\n"),
            **(answers or {}),
        }
        self.calls: list[list[str]] = []
        self.environments: list[dict[str, str]] = []

    def __call__(self, command, *, env, text, capture_output, check):
        assert text and not check
        self.calls.append(command)
        self.environments.append(env)
        matches = [prefix for prefix in self.answers if tuple(command[: len(prefix)]) == prefix]
        returncode, stdout = self.answers[max(matches, key=len)] if matches else (0, "")
        return subprocess.CompletedProcess(command, returncode, stdout, "")

    def compose_calls(self) -> list[list[str]]:
        """The docker compose commands, without `docker compose` and the stack's arguments."""
        calls = []
        for call in self.calls:
            if call[:2] == ["docker", "compose"] and call[2:3] != ["version"]:
                rest = call[2:]
                while rest[:1] in (["--env-file"], ["-f"]):
                    rest = rest[2:]
                calls.append(rest)
        return calls


COMPOSE_UP = ["up", "-d", "--build", "--wait", "--wait-timeout", "300"]


# ---------------------------------------------------------------- values and files


@pytest.mark.parametrize(
    ("shell", "file_values", "expected"),
    [
        ({}, {}, BY_NAME["HUB_PUBLISH_PORT"].default),
        ({}, {"HUB_PUBLISH_PORT": "8100"}, "8100"),
        ({"HUB_PUBLISH_PORT": "8200"}, {"HUB_PUBLISH_PORT": "8100"}, "8200"),
        ({"HUB_PUBLISH_PORT": ""}, {"HUB_PUBLISH_PORT": "8100"}, "8100"),  # empty is unset
    ],
)
def test_the_shell_wins_over_stack_env_which_wins_over_the_default(shell, file_values, expected):
    assert stack(file_values, **shell).value("HUB_PUBLISH_PORT") == expected


@pytest.mark.parametrize(
    ("shell", "file_values", "files"),
    [
        ({}, {}, [COMPOSE_FILE]),
        ({}, {"JUPYTER_DOMAIN": "hub.example.com"}, [COMPOSE_FILE, TRAEFIK_FILE]),
        ({"JUPYTER_DOMAIN": "hub.example.com"}, {}, [COMPOSE_FILE, TRAEFIK_FILE]),
        ({}, {"JUPYTER_DOMAIN": ""}, [COMPOSE_FILE]),
    ],
)
def test_traefik_file_only_with_a_domain(shell, file_values, files):
    compose = stack(file_values, **shell)

    assert compose.compose_files() == files
    assert compose.compose_args() == [
        "--env-file", "stack.env", *[arg for file in files for arg in ("-f", file)]
    ]


def test_compose_files_exist_in_the_checkout():
    for file in (COMPOSE_FILE, TRAEFIK_FILE):
        assert (REPO / file).is_file(), file


@pytest.mark.parametrize(
    ("address", "port", "url"),
    [
        ("127.0.0.1", "8000", "http://127.0.0.1:8000"),
        ("0.0.0.0", "8080", "http://localhost:8080"),
        ("192.168.1.5", "80", "http://192.168.1.5:80"),
        ("::1", "8000", "http://[::1]:8000"),
    ],
)
def test_published_url(address, port, url):
    assert published_url(address, port) == url
    assert stack(HUB_PUBLISH_ADDRESS=address, HUB_PUBLISH_PORT=port).url == url


def test_default_url_is_the_declared_published_address():
    default = BY_NAME["HUB_PUBLISH_ADDRESS"].default, BY_NAME["HUB_PUBLISH_PORT"].default
    assert stack().url == f"http://{default[0]}:{default[1]}"


def test_project_name():
    assert stack().project == "personal-hub"
    assert stack({"COMPOSE_PROJECT_NAME": "mine"}).project == "mine"
    assert stack({"COMPOSE_PROJECT_NAME": "mine"}, COMPOSE_PROJECT_NAME="shell").project == "shell"


def test_load_reads_the_env_file_and_may_do_without_it(tmp_path):
    path = tmp_path / "stack.env"
    with pytest.raises(Exception, match="does not exist"):
        ComposeStack.load(str(path), {})
    assert ComposeStack.load(str(path), {}, required=False).file_values == {}

    path.write_text("HUB_IMAGE=mine:1\n")
    assert ComposeStack.load(str(path), {}).value("HUB_IMAGE") == "mine:1"


# ---------------------------------------------------------------- images


def test_builds_use_the_declared_defaults():
    compose = stack()
    d = {name: BY_NAME[name].default for name in BY_NAME}

    assert compose.build_command("singleuser") == [
        "docker", "build", "--file", "docker/singleuser.Dockerfile",
        "--build-arg", f"BASE_IMAGE={d['SINGLEUSER_BASE_IMAGE']}",
        "--tag", d["HUB_SINGLEUSER_IMAGE"], ".",
    ]
    assert compose.build_command("hub") == [
        "docker", "build", "--file", "docker/hub.Dockerfile",
        "--build-arg", f"PYTHON_IMAGE={d['PYTHON_IMAGE']}",
        "--tag", d["HUB_IMAGE"], ".",
    ]


def test_builds_take_names_from_stack_env_and_the_shell():
    compose = stack(
        {"SINGLEUSER_BASE_IMAGE": "base-from-file:1", "HUB_IMAGE": "hub-from-file:1"},
        HUB_IMAGE="hub-from-shell:2", HUB_SINGLEUSER_IMAGE="su-from-shell:2",
    )
    assert compose.build_command("singleuser")[-4:] == [
        "BASE_IMAGE=base-from-file:1", "--tag", "su-from-shell:2", "."
    ]
    assert compose.build_command("hub")[-2:] == ["hub-from-shell:2", "."]
    assert stack(SINGLEUSER_IMAGE="older-name:1").image("singleuser") == "older-name:1"


@pytest.mark.parametrize(
    ("target", "dockerfiles"),
    [
        ("singleuser", ["docker/singleuser.Dockerfile"]),
        ("hub", ["docker/hub.Dockerfile"]),
        ("all", ["docker/singleuser.Dockerfile", "docker/hub.Dockerfile"]),
    ],
)
def test_build_targets(target, dockerfiles):
    docker = Docker()
    StackCommands(stack(), docker).build(target)

    assert [call[3] for call in docker.calls] == dockerfiles
    for dockerfile in dockerfiles:
        assert (REPO / dockerfile).is_file()


def test_a_failed_build_stops_there():
    docker = Docker({("docker", "build"): (1, "")})
    with pytest.raises(StackError, match="building .* failed"):
        StackCommands(stack(), docker).build("all")
    assert len(docker.calls) == 1


# ---------------------------------------------------------------- up, down, rotate


def test_up_with_the_image_present_starts_and_waits():
    docker = Docker()
    StackCommands(stack(), docker).up()

    image = BY_NAME["HUB_SINGLEUSER_IMAGE"].default
    assert docker.calls[0] == ["docker", "image", "inspect", image]
    assert not [call for call in docker.calls if call[:2] == ["docker", "build"]]
    assert docker.compose_calls() == [COMPOSE_UP]
    compose_call = next(call for call in docker.calls if "up" in call)
    assert compose_call[:7] == ["docker", "compose", "--env-file", "stack.env", "-f",
                                COMPOSE_FILE, "up"]


def test_up_builds_a_missing_single_user_image_first(capsys):
    docker = Docker({("docker", "image", "inspect"): (1, "")})
    StackCommands(stack({"HUB_SINGLEUSER_IMAGE": "mine:1"}), docker).up()

    kinds = [call[1] if call[1] != "compose" else call[-1] for call in docker.calls
             if call[2:3] != ["version"]]
    assert kinds[:2] == ["image", "build"]
    assert docker.calls[1][-2] == "mine:1"
    assert docker.compose_calls() == [COMPOSE_UP]
    assert "personal-hub is running: http://127.0.0.1:8000/" in capsys.readouterr().err


def test_up_passes_the_shell_environment_and_its_wait_timeout():
    docker = Docker()
    StackCommands(stack(HUB_WAIT_TIMEOUT="42", PATH="/somewhere"), docker).up()

    assert docker.compose_calls() == [[*COMPOSE_UP[:-1], "42"]]
    assert all(env["PATH"] == "/somewhere" for env in docker.environments)


def test_up_that_does_not_become_healthy_shows_the_logs_and_fails():
    docker = Docker({("docker", "compose", "--env-file"): (1, "")})
    with pytest.raises(StackError, match="did not become healthy"):
        StackCommands(stack(), docker).up()

    assert docker.compose_calls() == [
        COMPOSE_UP, ["ps"], ["logs", "--tail", "50", "hub", "egress"]
    ]


def test_up_is_a_failure_when_compose_is_content_but_the_hub_is_unhealthy():
    # Some Compose versions exit 0 from `up --wait` with an unhealthy container.
    docker = Docker({("docker", "inspect"): (0, "unhealthy\n")})
    with pytest.raises(StackError, match="did not become healthy"):
        StackCommands(stack(), docker).up()

    assert ["docker", "inspect", "--format", "{{.State.Health.Status}}",
            "personal-hub-hub-1"] in docker.calls


def test_up_behind_traefik_uses_both_files_and_names_the_domain(capsys):
    docker = Docker()
    StackCommands(stack({"JUPYTER_DOMAIN": "hub.example.com"}), docker).up()

    assert TRAEFIK_FILE in next(call for call in docker.calls if "up" in call)
    assert "through Traefik: https://hub.example.com/" in capsys.readouterr().err


def test_user_servers_are_the_containers_of_other_projects():
    listing = "personal-hub-hub-1 personal-hub\njupyter-alice \njupyter-bob other\n\n"
    assert user_servers(listing, "personal-hub") == ["jupyter-alice", "jupyter-bob"]


def test_down_stops_user_servers_on_the_network_then_the_stack():
    listing = "personal-hub-proxy-1 personal-hub\njupyter-alice \n"
    docker = Docker({("docker", "ps"): (0, listing)})
    StackCommands(stack({"HUB_DOCKER_NETWORK": "my-net"}), docker).down()

    assert docker.calls[0][:4] == ["docker", "ps", "--filter", "network=my-net"]
    assert ["docker", "stop", "jupyter-alice"] in docker.calls
    assert docker.compose_calls() == [["down"]]


def test_down_without_user_servers_stops_only_the_stack():
    docker = Docker({("docker", "ps"): (0, "personal-hub-hub-1 personal-hub\n")})
    StackCommands(stack(), docker).down()

    assert not [call for call in docker.calls if call[:2] == ["docker", "stop"]]
    assert docker.compose_calls() == [["down"]]


def test_rotate_needs_a_running_hub():
    docker = Docker({("docker", "compose", "--env-file"): (0, "db\nproxy\n")})
    with pytest.raises(StackError, match="not running"):
        StackCommands(stack(), docker).require_running()


def test_restart_revoking_logins_order():
    docker = Docker()
    StackCommands(stack(), docker).restart_revoking_logins()

    assert docker.compose_calls() == [
        ["stop", "hub"],
        ["run", "--rm", "--no-deps", "hub", "personal-hub", "revoke-logins"],
        ["up", "-d", "--wait", "--wait-timeout", "300"],
    ]


def test_a_failing_step_stops_the_rotation():
    docker = Docker({("docker", "compose", "--env-file"): (3, "")})
    with pytest.raises(StackError, match="docker compose stop failed"):
        StackCommands(stack(), docker).restart_revoking_logins()
    assert len(docker.compose_calls()) == 1


def test_compose_v1_or_nothing(tmp_path):
    docker = Docker({("docker", "compose", "version"): (1, "")})
    with pytest.raises(StackError, match="Compose v2 is needed"):
        StackCommands(stack(PATH=str(tmp_path)), docker).compose_command()

    standalone = executable(tmp_path / "docker-compose")
    assert StackCommands(stack(PATH=str(tmp_path)), docker).compose_command() == [
        str(standalone)
    ]


def test_docker_must_be_installed_and_reachable(tmp_path):
    with pytest.raises(StackError, match="Docker is not installed"):
        StackCommands(stack(PATH=str(tmp_path)), Docker()).require_docker()
    executable(tmp_path / "docker")
    with pytest.raises(StackError, match="cannot reach the Docker engine"):
        StackCommands(stack(PATH=str(tmp_path)), Docker({("docker", "info"): (1, "")})
                      ).require_docker()
    StackCommands(stack(PATH=str(tmp_path)), Docker()).require_docker()


def executable(path: Path) -> Path:
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return path


# ---------------------------------------------------------------- the stack command


@pytest.fixture
def checkout(tmp_path, monkeypatch):
    """A directory with the compose file, a `docker` on PATH and a recorder for docker."""
    (tmp_path / "compose").mkdir()
    (tmp_path / COMPOSE_FILE).write_text("name: personal-hub\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    executable(bin_dir / "docker")
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.chdir(tmp_path)
    docker = Docker()
    monkeypatch.setattr(cli, "StackCommands", lambda stack: StackCommands(stack, docker))
    return docker


def test_stack_up_creates_a_private_stack_env_then_starts(checkout, capsys):
    assert main(["stack", "up"]) == 0

    assert stat.S_IMODE(Path("stack.env").stat().st_mode) == 0o600
    assert read_env_file(Path("stack.env"))["JUPYTER_PASSWORD"]
    assert checkout.compose_calls() == [COMPOSE_UP]
    assert "Settings are valid" not in capsys.readouterr().out  # the summary is not needed


def test_stack_up_with_invalid_settings_starts_nothing(checkout, capsys):
    Path("stack.env").write_text("JUPYTER_PASSWORD=short\n")
    Path("stack.env").chmod(0o600)

    assert main(["stack", "up"]) == 1

    err = capsys.readouterr().err
    assert "JUPYTER_PASSWORD" in err and "fix stack.env first" in err
    assert checkout.compose_calls() == []


def test_stack_up_without_docker_creates_nothing(checkout, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))

    assert main(["stack", "up"]) == 1

    assert "Docker is not installed" in capsys.readouterr().err
    assert not Path("stack.env").exists()


@pytest.mark.parametrize(("action", "verb"), [("down", "stop"), ("rotate", "rotate"),
                                             ("compose", "run docker compose with")])
def test_stack_actions_need_stack_env(checkout, capsys, action, verb):
    assert main(["stack", action]) == 1
    assert f"no stack.env here: nothing to {verb}" in capsys.readouterr().err
    assert checkout.calls == []


def test_stack_outside_a_checkout_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["stack", "down"]) == 1
    assert "run it from the personal-hub checkout" in capsys.readouterr().err


def test_stack_rotate_of_a_stopped_stack_changes_nothing(checkout, capsys):
    assert main(["init"]) == 0
    before = Path("stack.env").read_text()

    assert main(["stack", "rotate"]) == 1

    assert "not running" in capsys.readouterr().err
    assert Path("stack.env").read_text() == before


def test_stack_rotate_changes_the_password_and_revokes(checkout, capsys):
    assert main(["init"]) == 0
    old = read_env_file(Path("stack.env"))["JUPYTER_PASSWORD"]
    checkout.answers[("docker", "compose", "--env-file")] = (0, "db\nhub\nproxy\n")

    assert main(["stack", "rotate"]) == 0

    new = read_env_file(Path("stack.env"))["JUPYTER_PASSWORD"]
    assert new != old and new in capsys.readouterr().out
    assert checkout.compose_calls()[1:] == [
        ["stop", "hub"],
        ["run", "--rm", "--no-deps", "hub", "personal-hub", "revoke-logins"],
        ["up", "-d", "--wait", "--wait-timeout", "300"],
    ]


def test_stack_build_works_without_stack_env(checkout):
    assert main(["stack", "build", "hub"]) == 0
    assert checkout.calls[0][:4] == ["docker", "build", "--file", "docker/hub.Dockerfile"]


@pytest.mark.parametrize(
    "args", [["logs", "--tail", "5", "hub"], ["--", "--profile", "build", "config"]]
)
def test_stack_compose_passes_everything_on(checkout, args):
    assert main(["init"]) == 0
    checkout.answers[("docker", "compose", "--env-file")] = (7, "")

    assert main(["stack", "compose", *args]) == 7

    assert checkout.compose_calls() == [[arg for arg in args if arg != "--"]]


def test_hub_dispatches_to_the_stack_command():
    text = (REPO / "hub").read_text()
    assert 'stack_cli stack "$@"' in text
    build = (REPO / "build.sh").read_text()
    assert 'hub" build "$@"' in build


# ---------------------------------------------------------------- dev-env, PostgreSQL


def make_initdb(directory: Path, mode: int = 0o755) -> Path:
    directory.mkdir(parents=True)
    initdb = directory / "initdb"
    initdb.write_text("#!/bin/sh\n")
    initdb.chmod(mode)
    return directory


def test_postgres_newest_version_with_an_executable_initdb(tmp_path):
    lib = tmp_path / "lib"
    make_initdb(lib / "9.6" / "bin")
    expected = make_initdb(lib / "15" / "bin")
    make_initdb(lib / "16" / "bin", mode=0o644)  # not executable
    (lib / "17" / "bin").mkdir(parents=True)  # client only: no initdb

    assert postgres_bin_dir(lib, path="") == expected


def test_postgres_from_path_when_debian_has_none(tmp_path):
    on_path = make_initdb(tmp_path / "bin")

    assert postgres_bin_dir(tmp_path / "missing", path=str(on_path)) == on_path
    assert postgres_bin_dir(tmp_path / "missing", path=str(tmp_path / "empty")) is None


def test_dev_env_paths(tmp_path):
    values = dev_env(tmp_path, postgres_lib=tmp_path / "missing")

    assert values["VENV"] == str(tmp_path.resolve() / ".venv")
    assert values["CHP_DIR"] == str(tmp_path.resolve() / ".personal-hub" / "chp")
    assert values["LOCAL_DATA_DIR"] == str(tmp_path.resolve() / ".personal-hub" / "data")
    assert values["CHP_VERSION"] == BY_NAME["CHP_IMAGE"].default.rpartition(":")[2]
    assert json.loads(values["DOCKERD_CONFIG"]) == devenv.DOCKERD_CONFIG


def test_dev_env_survives_sh_eval(tmp_path):
    odd = tmp_path / "it's a dir with $HOME and spaces"
    odd.mkdir()
    values = dev_env(odd)
    script = 'eval "$1"; printf "%s\\n" "$VENV" "$DOCKERD_CONFIG" "$POSTGRES_BIN"'

    printed = subprocess.run(["sh", "-c", script, "sh", shell_assignments(values)],
                             capture_output=True, text=True, check=True).stdout

    assert printed.splitlines() == [values["VENV"], values["DOCKERD_CONFIG"],
                                    values["POSTGRES_BIN"]]


def test_dev_env_command_prints_assignments(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["dev-env"]) == 0
    names = [line.partition("=")[0] for line in capsys.readouterr().out.splitlines()]
    assert names == ["VENV", "CHP_DIR", "CHP_VERSION", "LOCAL_DATA_DIR", "DOCKERD_DIR",
                     "DOCKERD_CONFIG", "POSTGRES_BIN"]


def test_services_tier_finds_postgres_like_hub():
    from tests.services import servers

    assert servers.postgres_bin_dir is postgres_bin_dir


@pytest.mark.parametrize(("image", "kept"), [
    ("personal-hub-hub:latest", "personal-hub-hub:before-upgrade"),
    ("registry.example:5000/lab/singleuser:2.0",
     "registry.example:5000/lab/singleuser:before-upgrade"),
    ("registry.example:5000/lab/singleuser", "registry.example:5000/lab/singleuser:before-upgrade"),
    ("plain", "plain:before-upgrade"),
])
def test_images_are_kept_for_a_rollback_under_their_own_name(image, kept):
    assert rollback_tag(image) == kept
