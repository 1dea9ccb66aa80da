"""`personal-hub init | check | run | config-path` through `personal_hub.cli.main`."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from sample_secrets import USER_PASSWORD

from personal_hub import cli, config_path
from personal_hub.cli import EnvFileError, main, parse_env_file
from personal_hub.variables import BY_NAME, PLACEHOLDER, VARIABLES

GENERATED = [variable.name for variable in VARIABLES if variable.generated]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """No stack.env variable leaks in from the environment the tests run in."""
    for name in list(os.environ):
        if name.startswith("HUB_") or name in BY_NAME:
            monkeypatch.delenv(name)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def write_env(path: Path, values: dict[str, str], mode: int = 0o600) -> Path:
    path.write_text("".join(f"{name}={value}\n" for name, value in values.items()))
    path.chmod(mode)
    return path


def one_line(text: str) -> str:
    """argparse wraps help text; compare phrases regardless of line breaks."""
    return " ".join(text.split())


# ---------------------------------------------------------------- init


def test_init_writes_a_private_file_with_strong_distinct_secrets(tmp_path, capsys):
    env_file = tmp_path / "stack.env"

    assert main(["init", "--env-file", str(env_file)]) == 0

    assert mode_of(env_file) == 0o600
    values = parse_env_file(env_file.read_text())
    secrets = [values[name] for name in GENERATED]
    assert len(set(secrets)) == len(secrets), "every generated secret is different"
    for name in GENERATED:
        assert values[name] != PLACEHOLDER
        assert len(values[name]) >= max(32, BY_NAME[name].min_length)
    out = capsys.readouterr().out
    assert f"Wrote {env_file}" in out
    assert not any(secret in out for secret in secrets)


def test_two_inits_generate_different_secrets(tmp_path):
    first, second = tmp_path / "a.env", tmp_path / "b.env"
    main(["init", "--env-file", str(first)])
    main(["init", "--env-file", str(second)])

    a, b = parse_env_file(first.read_text()), parse_env_file(second.read_text())

    assert all(a[name] != b[name] for name in GENERATED)


def test_init_then_check_passes_without_showing_secrets(tmp_path, capsys):
    env_file = tmp_path / "stack.env"
    main(["init", "--env-file", str(env_file)])
    capsys.readouterr()

    assert main(["check", "--env-file", str(env_file)]) == 0

    captured = capsys.readouterr()
    assert "Settings are valid" in captured.out
    assert captured.err == ""
    output = captured.out + captured.err
    for name in GENERATED:
        assert parse_env_file(env_file.read_text())[name] not in output


def test_init_refuses_to_overwrite(tmp_path, capsys):
    env_file = tmp_path / "stack.env"
    env_file.write_text("JUPYTER_PASSWORD=my-own-precious-password\n")

    assert main(["init", "--env-file", str(env_file)]) == 1

    assert env_file.read_text() == "JUPYTER_PASSWORD=my-own-precious-password\n"
    err = capsys.readouterr().err
    assert "already exists" in err
    assert "--force" in err


def test_init_force_replaces_and_makes_the_file_private(tmp_path):
    env_file = tmp_path / "stack.env"
    env_file.write_text("JUPYTER_PASSWORD=my-own-precious-password\n")
    env_file.chmod(0o644)

    assert main(["init", "--env-file", str(env_file), "--force"]) == 0

    assert mode_of(env_file) == 0o600
    assert parse_env_file(env_file.read_text())["JUPYTER_PASSWORD"] != "my-own-precious-password"


def test_init_local(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)

    assert main(["init", "--local", "--env-file", "local.env"]) == 0

    values = parse_env_file((tmp_path / "local.env").read_text())
    assert values["HUB_SPAWNER"] == "local"
    assert Path(values["HUB_DATA_DIR"]).is_absolute()
    assert Path(values["HUB_DATA_DIR"]) == (tmp_path / ".personal-hub" / "data").resolve()
    assert main(["check", "--env-file", "local.env"]) == 0


@pytest.mark.parametrize("local", [[], ["--local"]])
def test_init_data_dir_is_made_absolute(tmp_path, monkeypatch, local):
    monkeypatch.chdir(tmp_path)

    main(["init", *local, "--data-dir", "hub-data", "--env-file", "stack.env"])

    values = parse_env_file((tmp_path / "stack.env").read_text())
    assert Path(values["HUB_DATA_DIR"]) == (tmp_path / "hub-data").resolve()


# ---------------------------------------------------------------- check


def test_check_lists_every_problem(tmp_path, environ, capsys):
    env_file = write_env(
        tmp_path / "stack.env",
        {
            **environ,
            "JUPYTER_PASSWORD": "change-me",
            "HUB_MEM_LIMIT": "lots",
            "TZ": "Mars/Olympus_Mons",
            "HUB_MEM_LIMT": "2G",
        },
    )

    assert main(["check", "--env-file", str(env_file)]) == 1

    err = capsys.readouterr().err
    assert "4 problems" in err
    for variable in ["JUPYTER_PASSWORD", "HUB_MEM_LIMIT", "TZ", "HUB_MEM_LIMT"]:
        assert f"  - {variable}: " in err
    assert "did you mean HUB_MEM_LIMIT?" in err
    assert environ["JUPYTER_ADMIN_PASSWORD"] not in err


@pytest.mark.parametrize(
    ("mode", "warned"),
    [(0o644, True), (0o640, True), (0o604, True), (0o600, False), (0o400, False)],
)
def test_check_warns_about_a_file_others_can_read(tmp_path, environ, capsys, mode, warned):
    env_file = write_env(tmp_path / "stack.env", environ, mode)

    assert main(["check", "--env-file", str(env_file)]) == 0

    err = capsys.readouterr().err
    assert ("readable by other users" in err) is warned
    if warned:
        assert f"chmod 600 {env_file}" in err


def test_check_of_a_missing_file_is_a_clear_message(tmp_path, capsys):
    missing = tmp_path / "nope.env"

    assert main(["check", "--env-file", str(missing)]) == 1

    err = capsys.readouterr().err
    assert f"{missing} does not exist" in err
    assert "personal-hub init" in err
    assert "Traceback" not in err


def test_check_of_an_unreadable_path_is_a_clear_message(tmp_path, capsys):
    assert main(["check", "--env-file", str(tmp_path)]) == 1

    err = capsys.readouterr().err
    assert "cannot be read" in err
    assert "Traceback" not in err


def test_check_of_a_malformed_file_does_not_echo_the_line(tmp_path, capsys):
    env_file = tmp_path / "stack.env"
    env_file.write_text(f"# settings\nJUPYTER_PASSWORD {USER_PASSWORD}\n")
    env_file.chmod(0o600)

    assert main(["check", "--env-file", str(env_file)]) == 1

    err = capsys.readouterr().err
    assert "line 2" in err
    assert USER_PASSWORD not in err


def test_check_without_a_file_reads_the_environment(monkeypatch, environ, capsys):
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("HUB_IDLE_TIMEOUT", "0")

    assert main(["check"]) == 0

    assert "idle culling:   off" in capsys.readouterr().out


def test_check_without_a_file_reports_a_bad_environment(capsys):
    assert main(["check"]) == 1

    assert "JUPYTER_PASSWORD: is not set" in capsys.readouterr().err


# ---------------------------------------------------------------- parse_env_file


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A=1", {"A": "1"}),
        ("# comment\n\nA=1\n   # indented comment\n\n", {"A": "1"}),
        ('A="quoted value"', {"A": "quoted value"}),
        ("A='single quoted'", {"A": "single quoted"}),
        ('A=""', {"A": ""}),
        ("A=", {"A": ""}),
        ("export A=1", {"A": "1"}),
        ("  export   A=1", {"A": "1"}),
        ("A = spaced  ", {"A": "spaced"}),
        ("A=x=y", {"A": "x=y"}),
        ("A=abc#def", {"A": "abc#def"}),
        ('A="VAL # not a comment"', {"A": "VAL # not a comment"}),
        ("A=$HOME", {"A": "$HOME"}),
        ("A=1\r\nB=2\r\n", {"A": "1", "B": "2"}),
        ("A=1\nA=2", {"A": "2"}),
    ],
)
def test_parse_env_file(text, expected):
    assert parse_env_file(text) == expected


def test_parse_env_file_unclosed_quote_is_a_clear_error():
    with pytest.raises(EnvFileError, match="line 1: .*no closing"):
        parse_env_file("A=\"mismatched'")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A=VAL # comment", {"A": "VAL"}),
        ('A="VAL" # comment', {"A": "VAL"}),
    ],
)
def test_parse_env_file_inline_comments_like_docker_compose(text, expected):
    """docker compose drops ` # comment` after a value; `check` must see the same value."""
    assert parse_env_file(text) == expected


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        (f"JUPYTER_PASSWORD {USER_PASSWORD}", USER_PASSWORD),
        (f"={USER_PASSWORD}", USER_PASSWORD),
        (f"JUPYTER-PASSWORD={USER_PASSWORD}", USER_PASSWORD),
        (f"1PASSWORD={USER_PASSWORD}", USER_PASSWORD),
        ("export", "export"),
    ],
)
def test_malformed_line_is_reported_by_number_not_content(line, secret):
    with pytest.raises(EnvFileError) as raised:
        parse_env_file(f"# header\nA=1\n{line}\n", source="stack.env")

    message = str(raised.value)
    assert message.startswith("stack.env, line 3: expected NAME=value")
    if secret != "export":
        assert secret not in message


# ---------------------------------------------------------------- config-path, help, version


def test_config_path_prints_the_packaged_config(capsys):
    assert main(["config-path"]) == 0

    printed = capsys.readouterr().out.strip()
    assert printed == config_path()
    assert Path(printed).is_file()
    assert Path(printed).name == "jupyterhub_config.py"


@pytest.mark.parametrize(
    ("command", "phrase"),
    [
        ([], "create, check and run its settings"),
        (["init"], "strong generated secrets"),
        (["check"], "Validate an env file"),
        (["run"], "jupyterhub -f <packaged config>"),
        (["config-path"], "Print the path of the packaged config"),
        (["stack"], "The Docker Compose stack of a personal-hub checkout"),
        (["stack", "up"], "compose up -d --build --wait"),
        (["stack", "build"], "singleuser (the default"),
        (["stack", "compose"], "e.g. `./hub compose logs hub`"),
        (["dev-env"], "as sh assignments for `eval`"),
    ],
)
def test_help_of_every_command(capsys, command, phrase):
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])

    assert exited.value.code == 0
    assert phrase in one_line(capsys.readouterr().out)


def test_version(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--version"])

    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == "personal-hub 0.1.0"


def test_no_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exited:
        main([])

    assert exited.value.code == 2
    assert "COMMAND" in capsys.readouterr().err


# ---------------------------------------------------------------- run


class Execed(Exception):
    """Raised by the fake start_jupyterhub: the hub would have been started here."""


@pytest.fixture
def execve(monkeypatch, tmp_path):
    """Records how JupyterHub would have been started, instead of starting it."""
    calls = []

    def fake_start(argv, env):
        # keep only the stack.env variables: a failure report shows no unrelated environment
        settings_env = {name: value for name, value in env.items() if name in BY_NAME}
        calls.append({"args": list(argv), "env": settings_env, "cwd": os.getcwd()})
        raise Execed()

    monkeypatch.setattr(cli, "start_jupyterhub", fake_start)
    monkeypatch.setattr(cli, "remove_orphaned_servers", lambda settings: None)  # Docker tier
    monkeypatch.chdir(tmp_path)  # run changes directory; this restores it afterwards
    return calls


@pytest.fixture
def no_execve(monkeypatch):
    def fail(*args):
        pytest.fail("the hub was started despite invalid settings")

    monkeypatch.setattr(cli, "start_jupyterhub", fail)


def test_run_with_invalid_settings_starts_nothing(tmp_path, environ, capsys, no_execve):
    data_dir = tmp_path / "data"
    env_file = write_env(
        tmp_path / "stack.env",
        {**environ, "HUB_MEM_LIMIT": "lots", "HUB_DATA_DIR": str(data_dir)},
    )

    assert main(["run", "--env-file", str(env_file)]) == 1

    err = capsys.readouterr().err
    assert "HUB_MEM_LIMIT" in err
    assert "The hub was not started." in err
    assert not data_dir.exists()


def test_run_with_a_missing_env_file_starts_nothing(tmp_path, capsys, no_execve):
    assert main(["run", "--env-file", str(tmp_path / "nope.env")]) == 1

    assert "does not exist" in capsys.readouterr().err


def test_run_starts_jupyterhub_with_the_packaged_config(tmp_path, environ, execve):
    data_dir = tmp_path / "data"
    env_file = write_env(tmp_path / "stack.env", {**environ, "HUB_DATA_DIR": str(data_dir)})

    with pytest.raises(Execed):
        main(["run", "--env-file", str(env_file), "--", "--debug"])

    (call,) = execve
    assert call["args"] == ["-f", config_path(), "--debug"]
    assert call["env"]["JUPYTER_PASSWORD"] == environ["JUPYTER_PASSWORD"]
    assert Path(call["cwd"]) == data_dir.resolve()


def test_run_local_with_data_dir_option(tmp_path, environ, execve):
    env_file = write_env(tmp_path / "stack.env", environ)

    with pytest.raises(Execed):
        main(["run", "--env-file", str(env_file), "--local", "--data-dir", "hub-data"])

    (call,) = execve
    assert call["env"]["HUB_SPAWNER"] == "local"
    assert call["env"]["HUB_DATA_DIR"] == str((tmp_path / "hub-data").resolve())
    assert (tmp_path / "hub-data").is_dir()


def test_run_with_a_relative_data_dir_in_the_env_file(tmp_path, environ, execve):
    """The hub runs from the data dir; HUB_DATA_DIR must still point at that same dir."""
    env_file = write_env(tmp_path / "stack.env", {**environ, "HUB_DATA_DIR": "hub-data"})

    with pytest.raises(Execed):
        main(["run", "--env-file", str(env_file)])

    (call,) = execve
    seen_by_the_hub = (Path(call["cwd"]) / call["env"]["HUB_DATA_DIR"]).resolve()
    assert seen_by_the_hub == (tmp_path / "hub-data").resolve()


@pytest.mark.parametrize("force", [[], ["--force"]])
def test_init_never_writes_through_a_symbolic_link(tmp_path, capsys, force):
    target = tmp_path / "elsewhere.txt"
    target.write_text("precious\n")
    link = tmp_path / "stack.env"
    link.symlink_to(target)

    assert main(["init", "--env-file", str(link), *force]) == 1

    assert target.read_text() == "precious\n"
    assert "symbolic link" in capsys.readouterr().err


def test_rotate_password_changes_only_the_shared_password(tmp_path, capsys):
    path = tmp_path / "stack.env"
    assert main(["init", "--env-file", str(path)]) == 0
    before = parse_env_file(path.read_text())
    capsys.readouterr()

    assert main(["rotate-password", "--env-file", str(path)]) == 0

    after = parse_env_file(path.read_text())
    printed = capsys.readouterr().out.splitlines()[1]
    assert after["JUPYTER_PASSWORD"] == printed != before["JUPYTER_PASSWORD"]
    assert {k: v for k, v in after.items() if k != "JUPYTER_PASSWORD"} == {
        k: v for k, v in before.items() if k != "JUPYTER_PASSWORD"
    }
    assert oct(path.stat().st_mode & 0o777) == "0o600"


# ---------------------------------------------------------------- get

SECRET_NAMES = [variable.name for variable in VARIABLES if variable.secret]


def test_get_prints_values_and_defaults_of_settings(tmp_path, environ, capsys):
    env_file = write_env(tmp_path / "stack.env", {**environ, "HUB_MEM_LIMIT": "4G"})

    assert main(["get", "--env-file", str(env_file), "HUB_MEM_LIMIT", "HUB_SPAWNER"]) == 0

    assert capsys.readouterr().out.splitlines() == ["4G", "docker"]


@pytest.mark.parametrize("name", SECRET_NAMES)
def test_get_never_prints_a_secret(tmp_path, environ, capsys, name):
    secret = "Never-Shown-" + "q8" * 16
    env_file = write_env(tmp_path / "stack.env", {**environ, name: secret})

    status = main(["get", "--env-file", str(env_file), "HUB_SPAWNER", name])

    captured = capsys.readouterr()
    assert status == 1
    assert f"{name} is a secret and is not printed" in captured.err
    for value in (secret, *environ.values()):
        assert value not in captured.out + captured.err


# ---------------------------------------------------------------- check: '$' in values

DOLLAR_WARNING = "warning: JUPYTER_PASSWORD contains '$', which docker compose expands."


@pytest.mark.parametrize(
    ("written", "warned"),
    [
        (f"{USER_PASSWORD}$HOME", True),
        (f'"{USER_PASSWORD}$HOME"', True),  # compose expands inside double quotes too
        (f"'{USER_PASSWORD}$HOME'", False),  # single quotes keep the '$'
        (USER_PASSWORD, False),
    ],
)
def test_check_warns_about_a_dollar_compose_would_expand(
    tmp_path, environ, capsys, written, warned
):
    env_file = write_env(tmp_path / "stack.env", {**environ, "JUPYTER_PASSWORD": written})

    assert main(["check", "--env-file", str(env_file)]) == 0

    err = capsys.readouterr().err
    assert err.count("contains '$'") == (1 if warned else 0)
    assert (DOLLAR_WARNING in err) is warned
    assert USER_PASSWORD not in err
