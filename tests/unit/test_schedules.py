"""Scheduled runs: schedules from the form, when they are due, where the output goes,
the run container (as the user's server: home, image, network, limits, hardening), and
the scheduler's bookkeeping with a recording Docker client."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from personal_hub.scheduler import (
    RUN_LABEL,
    RunSettings,
    Scheduler,
    outcome,
    page,
    run_container,
)
from personal_hub.schedules import (
    Run,
    Schedule,
    ScheduleError,
    Store,
    due,
    new_schedule,
    next_run,
    notebook_path,
    output_paths,
    with_run,
)

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 11, 28, 9, 30, tzinfo=BERLIN)


@pytest.mark.parametrize(
    ("text", "path"),
    [("reports/daily.ipynb", "reports/daily.ipynb"), ("/home/jovyan/a b.ipynb", "a b.ipynb"),
     (" /x.ipynb ", "x.ipynb")],
)
def test_notebook_paths_in_the_home(text, path):
    assert notebook_path(text) == path


@pytest.mark.parametrize(
    "text",
    ["../other/x.ipynb", "a/../../x.ipynb", ".secret/x.ipynb", "x.py", "", "a\0.ipynb",
     "scheduled-runs/x/x-1.ipynb", "a\\..\\x.ipynb", "x" * 300 + ".ipynb"],
)
def test_paths_out_of_the_home_or_odd_are_refused(text):
    with pytest.raises(ScheduleError):
        notebook_path(text)


def test_every_n_minutes_runs_now_then_every_n_minutes():
    schedule = new_schedule("ann", "r.ipynb", every_minutes="60", now=NOW)
    assert datetime.fromisoformat(schedule.next_run) == NOW
    assert next_run(schedule, NOW) == NOW + timedelta(hours=1)
    assert schedule.describe() == "every hour"
    assert new_schedule("ann", "r.ipynb", every_minutes="1", now=NOW).describe() == (
        "every minute")


def test_daily_at_a_time_in_the_hubs_zone():
    later = new_schedule("ann", "r.ipynb", daily_at="7:00", now=NOW)
    assert later.daily_at == "07:00" and later.describe() == "daily at 07:00"
    assert datetime.fromisoformat(later.next_run) == datetime(2026, 11, 29, 7, 0,
                                                              tzinfo=BERLIN)
    today = new_schedule("ann", "r.ipynb", daily_at="18:15", now=NOW)
    assert datetime.fromisoformat(today.next_run) == datetime(2026, 11, 28, 18, 15,
                                                              tzinfo=BERLIN)


@pytest.mark.parametrize(
    "form",
    [{}, {"every_minutes": "5", "daily_at": "07:00"}, {"every_minutes": "0"},
     {"every_minutes": "-5"}, {"every_minutes": "1.5"}, {"every_minutes": "99999"},
     {"daily_at": "25:00"}, {"daily_at": "7"}, {"daily_at": "07:60"}],
)
def test_a_schedule_needs_exactly_one_valid_period(form):
    with pytest.raises(ScheduleError):
        new_schedule("ann", "r.ipynb", now=NOW, **form)


def test_due_and_output_paths():
    schedule = new_schedule("ann", "reports/sales.ipynb", every_minutes="5", now=NOW)
    assert due([schedule], NOW) == [schedule]
    assert due([schedule], NOW - timedelta(seconds=1)) == []
    assert output_paths(schedule, NOW) == (
        "scheduled-runs/sales/sales-2026-11-28T093000.ipynb",
        "scheduled-runs/sales/sales-2026-11-28T093000.log")


def test_runs_kept_are_the_last_twenty_and_a_run_is_updated_in_place():
    schedule = new_schedule("ann", "r.ipynb", every_minutes="5", now=NOW)
    for minute in range(25):
        schedule = with_run(schedule, Run(f"t{minute:02d}", "succeeded"))
    assert [run.started for run in schedule.runs] == [f"t{m:02d}" for m in range(5, 25)]
    schedule = with_run(schedule, Run("t24", "failed", message="boom"))
    assert schedule.runs[-1].status == "failed" and len(schedule.runs) == 20


def test_the_store_round_trips_and_writes_atomically(tmp_path):
    store = Store(tmp_path / "data" / "schedules.json")
    assert store.load() == []
    schedule = with_run(new_schedule("ann", "r.ipynb", daily_at="07:00", now=NOW),
                        Run(NOW.isoformat(), "succeeded", "o.ipynb", "o.log"))
    store.save([schedule])
    assert store.load() == [schedule]
    assert [p.name for p in store.path.parent.iterdir()] == ["schedules.json"]


SETTINGS = RunSettings(image="my/notebook:1", network="jupyterhub-net",
                       timezone="Europe/Berlin", environment={"TZ": "Europe/Berlin",
                                                              "OPENAI_API_KEY": "sk-x"},
                       data_dir="/srv/jupyterhub", mem_limit=2 * 1024**3, cpu_limit=1.5,
                       pids_limit=1024, cap_add=("CHOWN",), timeout_seconds=60)


def test_a_run_container_is_the_users_server_minus_the_server():
    schedule = Schedule("a1b2c3d4e5f6", "ann", "r.ipynb", every_minutes=5)
    arguments = run_container(SETTINGS, schedule, "o.ipynb", "o.log", "jupyterhub-user-ann")
    assert arguments["image"] == "my/notebook:1"
    assert arguments["command"][:2] == ["python", "-c"]
    assert arguments["command"][3:] == ["r.ipynb", "o.ipynb", "o.log"]
    assert arguments["name"] == "jupyter-run-ann-a1b2c3d4e5f6"
    assert arguments["volumes"] == {"jupyterhub-user-ann": {"bind": "/home/jovyan",
                                                            "mode": "rw"}}
    assert arguments["network"] == "jupyterhub-net"  # the egress policy applies
    assert arguments["environment"]["OPENAI_API_KEY"] == "sk-x"
    assert (arguments["cap_drop"], arguments["cap_add"]) == (["ALL"], ["CHOWN"])
    assert arguments["security_opt"] == ["no-new-privileges:true"]
    assert arguments["mem_limit"] == arguments["memswap_limit"] == 2 * 1024**3
    assert (arguments["nano_cpus"], arguments["pids_limit"]) == (1_500_000_000, 1024)
    assert arguments["labels"] == {RUN_LABEL: "ann:a1b2c3d4e5f6"}


@pytest.mark.parametrize(
    ("code", "timed_out", "oom", "expected"),
    [(0, False, False, "succeeded"), (1, False, False, "failed"),
     (137, False, True, "failed (out of memory)"), (None, True, False, "timed out")],
)
def test_outcomes(code, timed_out, oom, expected):
    assert outcome(code, timed_out, oom) == expected


def test_the_page_escapes_everything_a_user_typed():
    schedule = with_run(Schedule("a1b2c3d4e5f6", "ann", "<b>x</b>.ipynb", every_minutes=5,
                                 next_run=NOW.isoformat()),
                        Run(NOW.isoformat(), "failed", "o.ipynb", "o.log",
                            "<script>alert(1)</script>"))
    text = page("ann<i>", [schedule], "/user/ann/", "<input xsrf>")
    assert "<script>" not in text and "<b>x</b>" not in text and "ann<i>" not in text
    assert "&lt;script&gt;" in text and 'class="run failed"' in text


class Container:
    def __init__(self, code: int = 0, hang: bool = False):
        self.id = "c1"
        self.code, self.hang = code, hang
        self.killed = self.removed = False

    def wait(self, timeout):
        if self.hang:
            raise TimeoutError("read timed out")
        return {"StatusCode": self.code}

    def kill(self):
        self.killed = True

    def logs(self, tail):
        return b"... failed: CellExecutionError: ZeroDivisionError\n"

    def remove(self, force):
        self.removed = True


class Docker:
    """The few calls the scheduler makes; records the runs."""

    def __init__(self, container: Container):
        self.container = container
        self.ran: list[dict] = []
        self.listed: list[dict] = []
        self.containers = SimpleNamespace(run=self.run, list=self.list)
        self.api = SimpleNamespace(inspect_container=lambda i: {"State": {"OOMKilled": False}})

    def run(self, **arguments):
        self.ran.append(arguments)
        return self.container

    def list(self, **arguments):
        self.listed.append(arguments)
        return []


def scheduler(tmp_path, container: Container) -> Scheduler:
    settings = RunSettings(**{**SETTINGS.__dict__, "data_dir": str(tmp_path)})
    return Scheduler(settings, Docker(container), log=lambda message: None)


@pytest.mark.parametrize(
    ("container", "status"),
    [(Container(0), "succeeded"), (Container(1), "failed"), (Container(hang=True), "timed out")],
)
async def test_a_due_run_is_recorded_with_its_outcome(tmp_path, container, status):
    runs = scheduler(tmp_path, container)
    schedule = runs.add("ann", notebook="r.ipynb", every_minutes="5")
    (task,) = runs.tick()
    await task
    assert runs.tick() == []  # not due again before five minutes
    (recorded,) = runs.of("ann")[0].runs
    assert recorded.status == status
    assert recorded.output.startswith("scheduled-runs/r/r-")
    assert ("ZeroDivisionError" in recorded.message) == (status != "succeeded")
    assert ("Stopped after 60 s" in recorded.message) == (status == "timed out")
    assert container.removed and container.killed == (status == "timed out")
    assert runs.docker.ran[0]["labels"] == {RUN_LABEL: f"ann:{schedule.id}"}
    # Saved: a restarted scheduler knows the run.
    saved = json.loads((tmp_path / "schedules.json").read_text())["schedules"]
    assert saved[0]["runs"][0]["status"] == status


async def test_people_see_and_change_only_their_own_schedules(tmp_path):
    runs = scheduler(tmp_path, Container())
    mine = runs.add("ann", notebook="r.ipynb", daily_at="07:00")
    assert runs.of("bob") == []
    assert not runs.remove("bob", mine.id) and not runs.run_now("bob", mine.id)
    assert runs.tick() == []  # due tomorrow at 07:00
    assert runs.run_now("ann", mine.id)
    (task,) = runs.tick()
    await task
    assert runs.remove("ann", mine.id) and runs.of("ann") == []


async def test_runs_under_way_when_the_scheduler_stopped_are_marked(tmp_path):
    runs = scheduler(tmp_path, Container())
    schedule = runs.add("ann", notebook="r.ipynb", every_minutes="5")
    runs._update(schedule.id, lambda s: with_run(s, Run(NOW.isoformat(), "running")))
    again = scheduler(tmp_path, Container())
    again.recover()
    assert again.of("ann")[0].runs[0].status == "interrupted"
    # Only this hub's run containers are looked for (another hub has another network).
    assert again.docker.listed == [{"all": True, "filters": {
        "label": RUN_LABEL, "network": "jupyterhub-net"}}]


def test_a_limit_of_schedules_per_person(tmp_path):
    runs = scheduler(tmp_path, Container())
    for number in range(20):
        runs.add("ann", notebook=f"n{number}.ipynb", every_minutes="60")
    with pytest.raises(ScheduleError):
        runs.add("ann", notebook="one-more.ipynb", every_minutes="60")
