"""Admission control for server starts: a first-come queue, and timeouts from measurements.

A server start costs seconds of CPU (JupyterLab and its extensions loading). When twenty
people log in at once on a small machine, starting all twenty together makes every one of
them slow, and past a fixed timeout they all fail together. Instead, at most `slots`
servers start at once; the others wait their turn in order, and can be told their place.
How long one start may take is derived from how long recent starts took.
"""

from __future__ import annotations

import asyncio
import os
import statistics
from collections import deque
from collections.abc import Hashable


def machine_cores() -> int:
    """CPU cores this process may run on (a container's cpuset counts, not the host's)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class StartQueue:
    """At most `slots` holders at once; the rest wait first come, first served."""

    def __init__(self, slots: int):
        if slots < 1:
            raise ValueError("a start queue needs at least one slot")
        self.slots = slots
        self.starting: set[Hashable] = set()
        self._waiting: dict[Hashable, asyncio.Future] = {}  # in arrival order

    def place(self, key: Hashable) -> int | None:
        """0 while `key` is starting, n while n-th in line, None when neither."""
        if key in self.starting:
            return 0
        for place, waiting in enumerate(self._waiting, start=1):
            if waiting == key:
                return place
        return None

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    async def enter(self, key: Hashable) -> None:
        """Return once `key` holds a slot (at once if one is free and nobody waits)."""
        if key in self.starting or key in self._waiting:
            raise RuntimeError(f"{key!r} is already in the start queue")
        if len(self.starting) < self.slots and not self._waiting:
            self.starting.add(key)
            return
        turn = asyncio.get_running_loop().create_future()
        self._waiting[key] = turn
        try:
            await turn
        except asyncio.CancelledError:
            if self._waiting.pop(key, None) is None:
                self.leave(key)  # the slot was handed over just as the wait was cancelled
            raise

    def leave(self, key: Hashable) -> None:
        """Give `key`'s slot to the next in line."""
        self.starting.discard(key)
        while self._waiting and len(self.starting) < self.slots:
            next_key = next(iter(self._waiting))
            turn = self._waiting.pop(next_key)
            self.starting.add(next_key)
            turn.set_result(None)


class StartCost:
    """Recent start durations, and the timeout they suggest for the next start.

    The timeout is `factor` times the median of the last `window` starts, kept between
    `floor` and `ceiling`; `initial` until the first start has been measured. A machine
    that starts servers in 6 s gets a 60 s bound, one that needs 40 s gets 160 s: a
    start fails when it is far slower than usual, not when it passes a fixed number.
    """

    def __init__(
        self,
        *,
        initial: float,
        floor: float,
        ceiling: float,
        factor: float = 4.0,
        window: int = 20,
    ):
        self.initial, self.floor, self.ceiling, self.factor = initial, floor, ceiling, factor
        self.samples: deque[float] = deque(maxlen=window)

    def record(self, seconds: float) -> None:
        self.samples.append(seconds)

    def timeout(self) -> float:
        if not self.samples:
            return self.initial
        return min(self.ceiling, max(self.floor, self.factor * statistics.median(self.samples)))

    def typical(self) -> float | None:
        """The median start, or None before the first one."""
        return statistics.median(self.samples) if self.samples else None


def queue_message(place: int, slots: int, typical_seconds: float | None) -> str:
    """What a person waiting to start sees on the spawn page."""
    ahead = place - 1
    people = "nobody" if ahead == 0 else f"{ahead} {'person' if ahead == 1 else 'people'}"
    text = f"Waiting for a free start slot: {people} ahead of you"
    if typical_seconds:
        # `slots` starts run side by side, each taking about `typical_seconds`.
        wait = (ahead // slots + 1) * typical_seconds
        text += f" (about {max(1, round(wait))} s)"
    return text + "."
