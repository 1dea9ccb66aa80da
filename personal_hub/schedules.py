"""Scheduled notebook runs: what a schedule is, when it runs next, where its output goes,
and the file they are kept in. Pure logic and the standard library; the service that
runs them is `personal_hub.scheduler`.

A schedule runs one notebook of a person's home, either every N minutes or daily at a
time of day (in the hub's time zone, TZ). Each run writes the executed notebook and its
log next to each other under ~/scheduled-runs/<notebook name>/, named by the run's start.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import tempfile
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, time, timedelta
from pathlib import Path, PurePosixPath
from zoneinfo import ZoneInfo

OUTPUT_DIRECTORY = "scheduled-runs"
MAX_SCHEDULES_PER_USER = 20
RUNS_KEPT = 20
MAX_MINUTES = 7 * 24 * 60
_NOTEBOOK = re.compile(r"[^\0\\]{1,255}\.ipynb")
_TIME_OF_DAY = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")


class ScheduleError(ValueError):
    """A schedule that cannot be made, with what to do instead."""


@dataclass(frozen=True)
class Run:
    started: str  # ISO time, the hub's time zone
    status: str  # running, succeeded, failed, timed out, interrupted
    output: str = ""  # the executed notebook, relative to the home
    log: str = ""
    message: str = ""  # the end of the log when it failed


@dataclass(frozen=True)
class Schedule:
    id: str
    user: str
    notebook: str  # relative to the home
    every_minutes: int | None = None
    daily_at: str | None = None  # "HH:MM"
    next_run: str = ""  # ISO time
    runs: tuple[Run, ...] = field(default_factory=tuple)

    def describe(self) -> str:
        if self.every_minutes:
            minutes = self.every_minutes
            if minutes % 60 == 0:
                hours = minutes // 60
                return "every hour" if hours == 1 else f"every {hours} hours"
            return "every minute" if minutes == 1 else f"every {minutes} minutes"
        return f"daily at {self.daily_at}"

    def as_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, values: dict) -> Schedule:
        runs = tuple(Run(**run) for run in values.get("runs", ()))
        return cls(**{**values, "runs": runs})


def notebook_path(text: str) -> str:
    """A notebook in the home, relative to it; refuses anything that leaves it."""
    text = text.strip().lstrip("/")
    if text.startswith("home/jovyan/"):
        text = text.removeprefix("home/jovyan/")
    path = PurePosixPath(text)
    if (not _NOTEBOOK.fullmatch(text) or ".." in path.parts or
            any(part.startswith(".") for part in path.parts) or
            path.parts[0] == OUTPUT_DIRECTORY):
        raise ScheduleError(
            "Give the path of a notebook in your home, e.g. reports/daily.ipynb (no .., "
            f"no hidden folders, not in {OUTPUT_DIRECTORY}/)."
        )
    return str(path)


def new_schedule(user: str, notebook: str, every_minutes: str = "", daily_at: str = "",
                 now: datetime | None = None, zone: str = "UTC") -> Schedule:
    """A schedule from the form's values (strings), checked; its first run is now."""
    path = notebook_path(notebook)
    minutes = None
    if every_minutes.strip():
        if not every_minutes.strip().isdigit() or not (
                1 <= int(every_minutes) <= MAX_MINUTES):
            raise ScheduleError(f"Run it every 1 to {MAX_MINUTES} minutes.")
        minutes = int(every_minutes)
    at = None
    if daily_at.strip():
        match = _TIME_OF_DAY.fullmatch(daily_at.strip())
        if not match:
            raise ScheduleError("Give the time of day as HH:MM, e.g. 07:00.")
        at = f"{int(match.group(1)):02d}:{match.group(2)}"
    if (minutes is None) == (at is None):
        raise ScheduleError("Choose either every N minutes or daily at a time.")
    now = now or datetime.now(ZoneInfo(zone))
    schedule = Schedule(secrets.token_hex(6), user, path, minutes, at)
    first = now if minutes else next_run(schedule, now)
    return replace(schedule, next_run=first.isoformat())


def next_run(schedule: Schedule, after: datetime) -> datetime:
    """The next time after `after` (time-zone aware, the hub's zone) it is due."""
    if schedule.every_minutes:
        return after + timedelta(minutes=schedule.every_minutes)
    hours, minutes = map(int, schedule.daily_at.split(":"))
    today = datetime.combine(after.date(), time(hours, minutes), after.tzinfo)
    return today if today > after else datetime.combine(
        after.date() + timedelta(days=1), time(hours, minutes), after.tzinfo)


def due(schedules: list[Schedule], now: datetime) -> list[Schedule]:
    return [s for s in schedules if datetime.fromisoformat(s.next_run) <= now]


def output_paths(schedule: Schedule, started: datetime) -> tuple[str, str]:
    """(executed notebook, log), relative to the home, for a run that started then."""
    stem = PurePosixPath(schedule.notebook).stem
    base = f"{OUTPUT_DIRECTORY}/{stem}/{stem}-{started.strftime('%Y-%m-%dT%H%M%S')}"
    return f"{base}.ipynb", f"{base}.log"


def with_run(schedule: Schedule, run: Run) -> Schedule:
    """The schedule with `run` recorded (replacing the one that started at the same time),
    keeping the last RUNS_KEPT."""
    runs = [r for r in schedule.runs if r.started != run.started] + [run]
    return replace(schedule, runs=tuple(runs[-RUNS_KEPT:]))


class Store:
    """The schedules, in one JSON file in the hub's data directory (in its backups)."""

    def __init__(self, path: Path):
        self.path = path

    def load(self) -> list[Schedule]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return []
        return [Schedule.from_json(values) for values in data.get("schedules", ())]

    def save(self, schedules: list[Schedule]) -> None:
        """Atomically: a crash never leaves half a file."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".schedules")
        with os.fdopen(descriptor, "w") as file:
            json.dump({"version": 1, "schedules": [s.as_json() for s in schedules]}, file,
                      indent=1)
        os.replace(temporary, self.path)
