"""`personal-hub`: create, check and run a hub's settings.

`init`, `check`, `get`, `rotate-password`, `stack` and `dev-env` need only the Python
standard library, so they work from a plain checkout on a Docker host (`python3 -m
personal_hub init`; `./hub` runs them that way). `run` needs the package's dependencies
(JupyterHub).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import signal
import stat
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from . import __version__, config_path
from .devenv import LOCAL_DATA_DIR, dev_env, shell_assignments
from .egress import POLICIES as EGRESS_POLICIES
from .envfile import (
    EnvFileError,
    parse_env_file,
    read_env_file,
    read_env_text,
    values_compose_would_expand,
)
from .settings import SettingsError, load_settings
from .stack import (
    BUILD_TARGETS,
    COMPOSE_FILE,
    TRAEFIK_FILE,
    ComposeStack,
    StackCommands,
    StackError,
)
from .swarm import STACK_FILE as SWARM_STACK_FILE
from .variables import BY_NAME, VARIABLES, generate_secret, render_env_file

DEFAULT_ENV_FILE = "stack.env"


# ---------------------------------------------------------------- env files


def readable_by_others(path: Path) -> bool:
    return bool(path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO))


def generated_values(overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    values = {v.name: generate_secret(v) for v in VARIABLES if v.generated}
    values.update(overrides or {})
    return values


def write_private_file(path: Path, text: str, *, force: bool) -> None:
    """Write `text` to `path` with mode 0600 from the first byte (no window for others).

    Never through a symbolic link: `--force` must not overwrite the file a link points to.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (os.O_TRUNC if force else os.O_EXCL)
    fd = os.open(path, flags, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode("utf-8"))
    finally:
        os.close(fd)


# ---------------------------------------------------------------- commands


def cmd_init(args: argparse.Namespace) -> int:
    path = Path(args.env_file)
    if path.is_symlink():
        print(f"{path} is a symbolic link; nothing was changed. Fix: remove the link, or "
              "name the real file with --env-file.", file=sys.stderr)
        return 1
    if path.exists() and not args.force:
        print(
            f"{path} already exists; nothing was changed. "
            "Use --force to replace it (its secrets will change).",
            file=sys.stderr,
        )
        return 1
    overrides = {}
    if args.local:
        overrides["HUB_SPAWNER"] = "local"
        overrides["HUB_DATA_DIR"] = str(Path(args.data_dir or LOCAL_DATA_DIR).resolve())
    elif args.data_dir:
        overrides["HUB_DATA_DIR"] = str(Path(args.data_dir).resolve())
    try:
        write_private_file(path, render_env_file(generated_values(overrides)), force=args.force)
    except FileExistsError:
        print(f"{path} already exists; nothing was changed.", file=sys.stderr)
        return 1
    print(f"Wrote {path} (mode 600) with newly generated secrets.")
    print("Your login password is JUPYTER_PASSWORD in that file; the admin's is "
          "JUPYTER_ADMIN_PASSWORD.")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    if args.env_file:
        path = Path(args.env_file)
        try:
            text = read_env_text(path)  # read once: parsed, then scanned for '$'
            environ = parse_env_file(text, str(path))
        except EnvFileError as error:
            print(f"personal-hub: {error}", file=sys.stderr)
            return 1
        for name in values_compose_would_expand(text):
            print(
                f"warning: {name} contains '$', which docker compose expands. Fix: wrap the "
                "value in single quotes, or use a value without '$'.",
                file=sys.stderr,
            )
        if readable_by_others(path):
            print(
                f"warning: {path} is readable by other users of this machine and holds "
                f"secrets. Fix: chmod 600 {path}",
                file=sys.stderr,
            )
    else:
        environ = dict(os.environ)
    try:
        settings = load_settings(environ)
    except SettingsError as error:
        print(error.report(), file=sys.stderr)
        return 1
    print("Settings are valid. Effective configuration:")
    for line in settings.summary():
        print(f"  {line}")
    return 0


def run_environment(args: argparse.Namespace, base: Mapping[str, str]) -> dict[str, str]:
    environ = dict(base)
    if args.env_file:
        environ.update(read_env_file(Path(args.env_file)))
    if args.local:
        environ["HUB_SPAWNER"] = "local"
    if args.data_dir:
        environ["HUB_DATA_DIR"] = args.data_dir
    if environ.get("HUB_DATA_DIR"):
        # The hub runs from inside the data directory, so a relative path must be fixed now.
        environ["HUB_DATA_DIR"] = str(Path(environ["HUB_DATA_DIR"]).resolve())
    # The local spawner runs jupyterhub-singleuser from the same environment as the hub.
    bin_dir = str(Path(sys.executable).parent)
    environ["PATH"] = os.pathsep.join([bin_dir, environ.get("PATH", os.defpath)])
    return environ


def cmd_run(args: argparse.Namespace) -> int:
    try:
        environ = run_environment(args, os.environ)
    except EnvFileError as error:
        print(f"personal-hub: {error}", file=sys.stderr)
        return 1
    try:
        settings = load_settings(environ)
    except SettingsError as error:
        print(error.report(), file=sys.stderr)
        print("The hub was not started.", file=sys.stderr)
        return 1
    data_dir = Path(settings.data_dir)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        print(
            f"HUB_DATA_DIR: cannot create {data_dir} ({error.strerror}). Fix: point it at a "
            "writable directory, e.g. `personal-hub run --data-dir ./hub-data`.",
            file=sys.stderr,
        )
        return 1
    if settings.uses_postgres and not wait_for_database(settings):
        return 1
    if settings.spawner == "swarm":
        problem = users_network_problem(settings)
        if problem:
            print(f"HUB_DOCKER_NETWORK: {problem}", file=sys.stderr)
            print("The hub was not started.", file=sys.stderr)
            return 1
    if settings.in_containers:
        remove_orphaned_servers(settings)
    print(f"Starting JupyterHub at {settings.bind_url} (data in {data_dir})", flush=True)
    # Run from the data directory so nothing JupyterHub writes lands in the caller's cwd.
    os.chdir(data_dir)
    start_jupyterhub(["-f", config_path(), *args.jupyterhub_args], environ)
    return 0  # not reached


# How long the hub waits for PostgreSQL to accept connections when it starts: on Swarm
# nothing orders the services' starts, and a restarted database takes a while.
DATABASE_WAIT_SECONDS = 120


def wait_for_database(settings, timeout: float = DATABASE_WAIT_SECONDS) -> bool:
    """Until PostgreSQL's port accepts connections (one line while waiting, one clear
    line if it never does); whether it does."""
    import socket

    address = (settings.postgres_host, settings.postgres_port)
    deadline, said = time.monotonic() + timeout, False
    while True:
        try:
            with socket.create_connection(address, timeout=3):
                return True
        except OSError as error:
            if time.monotonic() >= deadline:
                print(f"POSTGRES_HOST: PostgreSQL at {address[0]}:{address[1]} did not answer "
                      f"within {timeout:.0f} s ({error.strerror or error}). Fix: start the "
                      "database (./hub up starts it) or correct POSTGRES_HOST/POSTGRES_PORT.",
                      file=sys.stderr)
                return False
            if not said:
                print(f"personal-hub: waiting for PostgreSQL at {address[0]}:{address[1]}",
                      file=sys.stderr, flush=True)
                said = True
            time.sleep(1)


def users_network_problem(settings) -> str | None:
    """On Swarm: what is wrong with the users' overlay network for HUB_EGRESS, if anything."""
    import docker

    from .swarm import network_problem

    client = docker.from_env()
    try:
        try:
            network = client.api.inspect_network(settings.docker_network)
        except docker.errors.NotFound:
            network = None
        return network_problem(network, settings.docker_network, settings.egress)
    except docker.errors.DockerException as error:
        return f"could not look at it: {error}"
    finally:
        client.close()


def remove_orphaned_servers(settings) -> None:
    from .orphans import remove_orphan_services, remove_orphans

    def log(message: str) -> None:
        print(f"personal-hub: {message}", file=sys.stderr, flush=True)

    try:
        remove = remove_orphan_services if settings.spawner == "swarm" else remove_orphans
        remove(settings.database_url(), settings.docker_network, log)
    except Exception as error:  # noqa: BLE001 - the hub must start all the same
        log(f"could not look for orphaned server containers: {type(error).__name__}: "
            f"{error}")


def start_jupyterhub(argv: list[str], environ: dict[str, str]) -> None:
    """Run JupyterHub in this process with `environ` as its environment, and leave as
    soon as it has shut down.

    In this process rather than a new interpreter, and without the interpreter's own
    teardown: JupyterHub's shutdown has already committed the database and left the user
    servers running, and unloading its modules would add most of a second to every hub
    restart, while users wait.
    """
    os.environ.clear()
    os.environ.update(environ)
    # Started from a background job (nohup, a CI runner), this process ignores SIGINT,
    # and so would every service the hub starts: its idle culler would then sit out
    # JupyterHub's 30 s SIGINT grace at every hub stop. A handler is not inherited
    # across exec the way "ignore" is, so the services get the default again.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from jupyterhub.app import JupyterHub

    JupyterHub.launch_instance(argv)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def cmd_get(args: argparse.Namespace) -> int:
    try:
        values = read_env_file(Path(args.env_file))
    except EnvFileError as error:
        print(f"personal-hub: {error}", file=sys.stderr)
        return 1
    for name in args.names:
        variable = BY_NAME.get(name)
        if variable is None:
            print(f"personal-hub: {name} is not a personal-hub variable.", file=sys.stderr)
            return 1
        if variable.secret:
            # Scripts never need a secret on stdout, where it could end up in a log.
            print(f"personal-hub: {name} is a secret and is not printed.", file=sys.stderr)
            return 1
        print(values.get(name) or variable.default)
    return 0


def replace_value(text: str, name: str, value: str) -> str:
    """The env file with every `name=` line set to `value` (appended if there was none)."""
    lines, found = [], False
    for line in text.splitlines():
        key, sep, _ = line.strip().removeprefix("export ").partition("=")
        if sep and key.strip() == name:
            line, found = f"{name}={value}", True
        lines.append(line)
    if not found:
        lines.append(f"{name}={value}")
    return "\n".join(lines) + "\n"


def rotate_password(path: Path) -> str:
    """A new JUPYTER_PASSWORD in the env file (written as a new private file); returns it."""
    password = generate_secret(BY_NAME["JUPYTER_PASSWORD"])
    text = replace_value(read_env_text(path), "JUPYTER_PASSWORD", password)
    parse_env_file(text, str(path))  # never write a file the hub could not read
    temporary = path.with_name(f".{path.name}.rotating")
    temporary.unlink(missing_ok=True)
    write_private_file(temporary, text, force=False)
    os.replace(temporary, path)
    return password


def cmd_rotate_password(args: argparse.Namespace) -> int:
    try:
        password = rotate_password(Path(args.env_file))
    except (EnvFileError, OSError) as error:
        print(f"personal-hub: {error}", file=sys.stderr)
        return 1
    print(f"New shared password (written to {args.env_file} as JUPYTER_PASSWORD; shown once):")
    print(password)
    return 0


def with_hub_settings(args: argparse.Namespace, what: str, action) -> int:
    """Run `action(settings)` on the hub's settings and print what it returns; every
    problem (settings, env file, database) is reported in words, never a traceback."""
    try:
        settings = load_settings(run_environment(args, os.environ))
    except EnvFileError as error:
        print(f"personal-hub: {error}", file=sys.stderr)
        return 1
    except SettingsError as error:
        print(error.report(), file=sys.stderr)
        return 1
    try:
        output = action(settings)
    except Exception as error:  # noqa: BLE001 - a clear line, never a traceback
        print(f"personal-hub: could not {what}: {type(error).__name__}: {error}",
              file=sys.stderr)
        return 1
    print(output)
    return 0


def cmd_revoke_logins(args: argparse.Namespace) -> int:
    from .revoke import revoke_logins, stop_docker_server, stop_local_server, stop_swarm_server

    def revoke(settings) -> str:
        stop = {"docker": stop_docker_server, "swarm": stop_swarm_server,
                "local": stop_local_server}[settings.spawner]
        return revoke_logins(settings.database_url(), settings.data_dir, stop).summary()

    return with_hub_settings(args, "revoke logins", revoke)


def cmd_home_volumes(args: argparse.Namespace) -> int:
    from .inventory import home_volumes

    return with_hub_settings(
        args, "read the users", lambda settings: json.dumps(home_volumes(settings.database_url())))


def cmd_rotate(args: argparse.Namespace) -> int:
    status = cmd_rotate_password(args)
    return status or cmd_revoke_logins(args)


def cmd_egress(args: argparse.Namespace) -> int:
    from .egress import run_service
    from .parsers import Destinations, Invalid

    try:
        allowed = Destinations()(args.allow)
    except Invalid as error:
        print(f"personal-hub egress: HUB_EGRESS_ALLOW: {error}", file=sys.stderr)
        return 2
    return run_service(args.network, args.policy, args.interval, allowed=allowed)


def cmd_config_path(args: argparse.Namespace) -> int:
    print(config_path())
    return 0


def cmd_dev_env(args: argparse.Namespace) -> int:
    print(shell_assignments(dev_env(Path.cwd())), end="")
    return 0


# ---------------------------------------------------------------- the Docker stack


def cmd_stack(args: argparse.Namespace) -> int:
    """Run one `stack` command from the checkout; a user's problem is one line, exit 1."""
    if not Path(COMPOSE_FILE).is_file():
        print(f"personal-hub: no {COMPOSE_FILE} here. Fix: run it from the personal-hub "
              "checkout (./hub does).", file=sys.stderr)
        return 1
    try:
        return args.stack_handler(args)
    except (StackError, EnvFileError) as error:
        print(f"personal-hub: {error}", file=sys.stderr)
        return 1
    except OSError as error:  # a disk full, a file that cannot be read: one clear line
        print(f"personal-hub: {args.stack_command} failed: {error}", file=sys.stderr)
        return 1


def stack_commands(args: argparse.Namespace, *, required: bool = True) -> StackCommands:
    stack = ComposeStack.load(args.env_file, os.environ, required=required)
    return StackCommands(stack)


def require_env_file(args: argparse.Namespace, nothing_to: str) -> None:
    if not Path(args.env_file).exists():
        raise StackError(f"no {args.env_file} here: nothing to {nothing_to}")


def cmd_stack_up(args: argparse.Namespace) -> int:
    StackCommands(ComposeStack(args.env_file, {}, dict(os.environ))).require_docker()
    if not Path(args.env_file).exists():
        init = argparse.Namespace(env_file=args.env_file, force=False, local=False,
                                  data_dir=None)
        if cmd_init(init):
            return 1
    # Warnings and problems go to stderr; the summary of valid settings is not needed here.
    with contextlib.redirect_stdout(io.StringIO()):
        status = cmd_check(argparse.Namespace(env_file=args.env_file))
    if status:
        raise StackError(f"fix {args.env_file} first (problems above)")
    stack_commands(args).up()
    return 0


def cmd_stack_down(args: argparse.Namespace) -> int:
    require_env_file(args, "stop")
    stack_commands(args).down()
    return 0


def cmd_stack_rotate(args: argparse.Namespace) -> int:
    require_env_file(args, "rotate")
    commands = stack_commands(args)
    commands.require_running()
    if cmd_rotate_password(args):
        return 1
    commands.restart_revoking_logins()
    return 0


def default_backup_name(project: str, now: float | None = None) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now))
    return f"personal-hub-backup-{project}-{stamp}.tar.gz"


def cmd_stack_backup(args: argparse.Namespace) -> int:
    require_env_file(args, "back up")
    commands = stack_commands(args)
    commands.require_compose("backup")
    commands.backup(Path(args.file or default_backup_name(commands.stack.project)))
    return 0


def cmd_stack_upgrade(args: argparse.Namespace) -> int:
    require_env_file(args, "upgrade")
    commands = stack_commands(args)
    commands.require_compose("upgrade")
    name = args.backup or default_backup_name(commands.stack.project).replace(
        ".tar.gz", "-before-upgrade.tar.gz")
    commands.upgrade(Path(name))
    return 0


def cmd_stack_restore(args: argparse.Namespace) -> int:
    commands = stack_commands(args, required=False)
    commands.require_compose("restore")
    commands.restore(Path(args.file))
    return 0


def cmd_stack_build(args: argparse.Namespace) -> int:
    stack_commands(args, required=False).build(args.target)
    return 0


def cmd_stack_compose(args: argparse.Namespace) -> int:
    require_env_file(args, "run docker compose with")
    compose_args = list(args.compose_args)
    if compose_args[:1] == ["--"]:
        del compose_args[0]
    if not compose_args:
        raise StackError("name a docker compose command, e.g. ./hub compose ps")
    commands = stack_commands(args)
    commands.require_compose("compose")
    return commands.compose(*compose_args, check=False).returncode


# ---------------------------------------------------------------- parser


def add_hub_environment_options(parser, *, env_file_default: str | None) -> None:
    """What `run_environment` reads: the env file and the data directory."""
    parser.add_argument(
        "--env-file",
        default=env_file_default,
        help=f"env file to load (default: {env_file_default or 'the environment'})",
    )
    parser.add_argument("--local", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", help="hub data directory (overrides HUB_DATA_DIR)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="personal-hub",
        description="A batteries-included personal JupyterHub: create, check and run its "
        "settings (stack.env).",
    )
    parser.add_argument("--version", action="version", version=f"personal-hub {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    init = commands.add_parser(
        "init",
        help="write a new stack.env with generated secrets",
        description="Write a new env file (mode 600) from the documented template with "
        "strong generated secrets. Refuses to replace an existing file unless --force.",
    )
    init.add_argument("--env-file", default=DEFAULT_ENV_FILE, help="file to write (stack.env)")
    init.add_argument("--force", action="store_true", help="replace an existing file")
    init.add_argument(
        "--local",
        action="store_true",
        help="settings for trying the hub without Docker (HUB_SPAWNER=local, data under "
        "./.personal-hub/data)",
    )
    init.add_argument("--data-dir", help="set HUB_DATA_DIR (made absolute)")
    init.set_defaults(handler=cmd_init)

    check = commands.add_parser(
        "check",
        help="validate settings and print the effective configuration",
        description="Validate an env file (or, without --env-file, the current environment). "
        "Prints every problem and exits 1, or a summary without secrets and exits 0. Warns "
        "when the env file is readable by others.",
    )
    check.add_argument("--env-file", help="env file to check (default: the environment)")
    check.set_defaults(handler=cmd_check)

    run = commands.add_parser(
        "run",
        help="run the hub with the packaged config",
        description="Load an env file into the environment, validate it, and run "
        "`jupyterhub -f <packaged config>`. Arguments after `--` go to jupyterhub.",
    )
    run.add_argument("--env-file", help="env file to load (values override the environment)")
    run.add_argument(
        "--local", action="store_true", help="run user servers as local processes (no Docker)"
    )
    run.add_argument("--data-dir", help="hub data directory (overrides HUB_DATA_DIR)")
    run.add_argument("jupyterhub_args", nargs="*", help="extra jupyterhub arguments after --")
    run.set_defaults(handler=cmd_run)

    get = commands.add_parser(
        "get",
        help="print non-secret settings from an env file (for scripts)",
        description="Print the value (or the default) of each named non-secret variable of "
        "an env file, one per line. Refuses secrets.",
    )
    get.add_argument("--env-file", default=DEFAULT_ENV_FILE, help="env file (stack.env)")
    get.add_argument("names", nargs="+", metavar="NAME", help="variable names")
    get.set_defaults(handler=cmd_get)

    rotate_help = (
        "For when someone leaves. Run it with the hub stopped, then start the hub: the shared "
        "password changes, every login cookie and every user's token stops working, running "
        "servers are stopped; users, files and shares stay. (./hub rotate does all of it "
        "for the Docker stack.)"
    )
    rotate = commands.add_parser(
        "rotate",
        help="new shared password, everyone logged out, all tokens revoked",
        description=rotate_help,
    )
    add_hub_environment_options(rotate, env_file_default=DEFAULT_ENV_FILE)
    rotate.set_defaults(handler=cmd_rotate)

    rotate_password_parser = commands.add_parser(
        "rotate-password",
        help="write a new shared password into the env file and print it once",
        description="Write a new random JUPYTER_PASSWORD into the env file (mode 600) and "
        "print it once. Standard library only. Logins are revoked by revoke-logins.",
    )
    rotate_password_parser.add_argument(
        "--env-file", default=DEFAULT_ENV_FILE, help="env file (stack.env)"
    )
    rotate_password_parser.set_defaults(handler=cmd_rotate_password)

    revoke = commands.add_parser(
        "revoke-logins",
        help="log everyone out and revoke every user token (hub stopped)",
        description=rotate_help,
    )
    add_hub_environment_options(revoke, env_file_default=None)
    revoke.set_defaults(handler=cmd_revoke_logins)

    volumes = commands.add_parser(
        "home-volumes",
        help="print every user and their home volume as JSON (what ./hub backup saves)",
        description="Read the users from the hub's database and print {user: home volume} "
        "as JSON. ./hub backup runs it inside the hub container.",
    )
    add_hub_environment_options(volumes, env_file_default=None)
    volumes.set_defaults(handler=cmd_home_volumes)

    egress = commands.add_parser(
        "egress",
        help="keep the egress policy of user containers in the host's firewall (Docker)",
        description="Install iptables rules for the users' Docker network that enforce "
        "HUB_EGRESS (internet: no private or link-local addresses, not the Docker host; "
        "none: nothing beyond that network; all: no rules), keep them in place, and "
        "remove them on SIGTERM. Run in the host's network namespace with NET_ADMIN and "
        "the Docker socket: the compose service `egress` does exactly that.",
    )
    egress.add_argument(
        "--network",
        default=BY_NAME["HUB_DOCKER_NETWORK"].default,
        help="the users' Docker network (HUB_DOCKER_NETWORK)",
    )
    egress.add_argument(
        "--policy",
        choices=EGRESS_POLICIES,
        default=BY_NAME["HUB_EGRESS"].default,
        help="HUB_EGRESS",
    )
    egress.add_argument(
        "--allow", default="",
        help="HUB_EGRESS_ALLOW: addresses or networks (with an optional :port) user "
        "containers may reach whatever the policy",
    )
    egress.add_argument(
        "--interval", type=float, default=15.0,
        help="seconds between checks that the rules are still in place (15)",
    )
    egress.set_defaults(handler=cmd_egress)

    add_stack_commands(commands)

    dev = commands.add_parser(
        "dev-env",
        help="print where ./hub try and ./hub test keep things (sh assignments)",
        description="Print, as sh assignments for `eval`, the paths of this checkout that "
        "./hub try and ./hub test use (the venv, configurable-http-proxy and its version, "
        "the local data directory, a test Docker engine's directory and config) and the "
        "PostgreSQL server binaries (empty when not installed). Run from the checkout.",
    )
    dev.set_defaults(handler=cmd_dev_env)

    path = commands.add_parser(
        "config-path",
        help="print the packaged jupyterhub_config.py path",
        description="Print the path of the packaged config: `jupyterhub -f "
        "$(personal-hub config-path)`.",
    )
    path.set_defaults(handler=cmd_config_path)
    return parser


def add_stack_commands(commands) -> None:
    stack = commands.add_parser(
        "stack",
        help="start, stop, rotate and build the Docker Compose stack of this checkout",
        description="The Docker Compose stack of a personal-hub checkout (what ./hub up, "
        "down, rotate, build and compose run; ./build.sh is ./hub build). Run from the "
        f"checkout. docker compose reads {COMPOSE_FILE}, plus {TRAEFIK_FILE} "
        "when JUPYTER_DOMAIN is set; for every variable a value in your shell wins over "
        "stack.env, which wins over the default. Standard library only.",
    )
    stack.set_defaults(handler=cmd_stack)

    def default(name: str) -> str:
        return BY_NAME[name].default

    actions = stack.add_subparsers(dest="stack_command", metavar="ACTION", required=True)

    def action(name: str, handler, help: str, description: str):
        parser = actions.add_parser(name, help=help, description=description)
        parser.add_argument("--env-file", default=DEFAULT_ENV_FILE, help="env file (stack.env)")
        parser.set_defaults(stack_handler=handler)
        return parser

    action(
        "up", cmd_stack_up, "create stack.env if missing, build, start and wait",
        "Create the env file with generated secrets if it is missing, check it, build the "
        "single-user image if it is missing, then start (or update) the stack with `docker "
        "compose up -d --build --wait` (HUB_WAIT_TIMEOUT seconds) and print "
        "its address. With HUB_SPAWNER=swarm: build both images, label this node for the "
        "hub's state, make the users' overlay network and `docker stack deploy` "
        f"{SWARM_STACK_FILE}. Run it again after editing stack.env.",
    )
    action(
        "down", cmd_stack_down, "stop user servers and the stack (data is kept)",
        "Stop the user servers on HUB_DOCKER_NETWORK, then `docker compose down` (on "
        "Swarm: `docker stack rm` and the users' network). Users, files and the database "
        "are kept (volumes stay).",
    )
    action(
        "rotate", cmd_stack_rotate,
        "someone left: new shared password, everyone logged out, all tokens revoked",
        "For a running stack: write a new JUPYTER_PASSWORD into the env file and print it "
        "once, stop the hub, run `personal-hub revoke-logins` in the hub's image, start the "
        "hub again. Users, files and shares stay.",
    )
    backup = action(
        "backup", cmd_stack_backup, "save the database, every user's files and stack.env",
        "While the stack runs: write one archive (gzip tar, mode 600) with a consistent "
        "pg_dump of the hub's database, the hub's data volume, every user's home volume and "
        "the env file. It holds every secret of the env file. Never replaces a file.",
    )
    backup.add_argument("file", nargs="?", help="archive to write (default: "
                        "personal-hub-backup-<project>-<UTC time>.tar.gz here)")
    restore = action(
        "restore", cmd_stack_restore, "recreate a stack from a backup archive",
        "Check the whole archive first, then, only where it replaces nothing (no volumes of "
        "this compose project, none of its home volumes, no other env file), write the env "
        "file, create the stack, fill the volumes, load the database and start it. Users "
        "log in with the same password and find the same files.",
    )
    restore.add_argument("file", help="archive written by ./hub backup")
    upgrade = action(
        "upgrade", cmd_stack_upgrade, "back up, rebuild the images, restart; roll back on failure",
        "For a running stack, after you updated this checkout or an image setting: "
        "./hub backup first, then rebuild both images from this checkout and start the "
        "stack with them (the hub migrates its database as it starts). If the hub does not "
        "become healthy within HUB_WAIT_TIMEOUT, the previous images (kept as "
        "<image>:before-upgrade) and the database from the backup come back.",
    )
    upgrade.add_argument("--backup", help="where the backup goes (default: "
                         "personal-hub-backup-<project>-<UTC time>-before-upgrade.tar.gz here)")
    build = action(
        "build", cmd_stack_build, "build the single-user image, the hub image or both",
        "Build images from this checkout with `docker build`: singleuser (the default; name "
        f"HUB_SINGLEUSER_IMAGE, or SINGLEUSER_IMAGE, default {default('HUB_SINGLEUSER_IMAGE')}, "
        f"from SINGLEUSER_BASE_IMAGE, default {default('SINGLEUSER_BASE_IMAGE')}), hub "
        f"(HUB_IMAGE, default {default('HUB_IMAGE')}, from PYTHON_IMAGE, default "
        f"{default('PYTHON_IMAGE')}) or all. Values come from the shell, else the env file "
        "(if it exists), else these defaults.",
    )
    build.add_argument("target", nargs="?", choices=BUILD_TARGETS, default="singleuser",
                       help="singleuser (default), hub or all")
    compose = action(
        "compose", cmd_stack_compose,
        "run docker compose with the stack's env file and compose files",
        f"Run `docker compose --env-file <env file> -f {COMPOSE_FILE} [-f {TRAEFIK_FILE}] "
        "ARGS...`, e.g. `./hub compose logs hub`. Put `--` before "
        "ARGS that start with a dash.",
    )
    compose.add_argument("compose_args", nargs=argparse.REMAINDER, metavar="ARGS",
                         help="docker compose command and arguments")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    raise SystemExit(main())
