"""The start queue and the start-cost timeout (pure asyncio, no hub)."""

from __future__ import annotations

import asyncio

import pytest

from personal_hub.admission import StartCost, StartQueue, queue_message


async def test_starts_beyond_the_slots_wait_first_come_first_served():
    queue = StartQueue(slots=2)
    order: list[str] = []

    async def start(name: str, release: asyncio.Event):
        await queue.enter(name)
        order.append(name)
        await release.wait()
        queue.leave(name)

    releases = {name: asyncio.Event() for name in "abcde"}
    tasks = []
    for name in "abcde":
        tasks.append(asyncio.create_task(start(name, releases[name])))
        await asyncio.sleep(0)  # arrive in this order

    assert order == ["a", "b"]
    assert [queue.place(name) for name in "abcde"] == [0, 0, 1, 2, 3]
    releases["b"].set()
    await asyncio.sleep(0.01)
    assert order == ["a", "b", "c"]
    assert [queue.place(name) for name in "cde"] == [0, 1, 2]
    for release in releases.values():
        release.set()
    await asyncio.gather(*tasks)
    assert order == list("abcde")
    assert queue.starting == set() and queue.waiting == 0


async def test_a_cancelled_wait_leaves_the_line_and_keeps_no_slot():
    queue = StartQueue(slots=1)
    await queue.enter("a")
    waiter = asyncio.create_task(queue.enter("b"))
    third = asyncio.create_task(queue.enter("c"))
    await asyncio.sleep(0)
    assert queue.place("c") == 2

    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert queue.place("b") is None and queue.place("c") == 1

    queue.leave("a")
    await asyncio.wait_for(third, 1)
    assert queue.starting == {"c"}


async def test_a_wait_cancelled_just_after_its_turn_came_gives_the_slot_on():
    queue = StartQueue(slots=1)
    await queue.enter("a")
    waiter = asyncio.create_task(queue.enter("b"))
    third = asyncio.create_task(queue.enter("c"))
    await asyncio.sleep(0)

    queue.leave("a")  # b's turn comes...
    waiter.cancel()  # ...but b gives up before it runs again
    with pytest.raises(asyncio.CancelledError):
        await waiter

    await asyncio.wait_for(third, 1)
    assert queue.starting == {"c"}


async def test_one_key_cannot_queue_twice():
    queue = StartQueue(slots=1)
    await queue.enter("a")
    with pytest.raises(RuntimeError):
        await queue.enter("a")


def test_a_queue_needs_a_slot():
    with pytest.raises(ValueError):
        StartQueue(slots=0)


def test_the_timeout_follows_the_measured_starts():
    cost = StartCost(initial=120, floor=60, ceiling=600, factor=4, window=3)
    assert cost.timeout() == 120 and cost.typical() is None
    for seconds in (5, 7, 6):
        cost.record(seconds)
    assert cost.typical() == 6
    assert cost.timeout() == 60  # 4 x 6 s is under the floor
    for seconds in (40, 50, 45):
        cost.record(seconds)  # the window forgets the fast ones
    assert cost.timeout() == 180
    for seconds in (400, 400, 400):
        cost.record(seconds)
    assert cost.timeout() == 600


@pytest.mark.parametrize(
    ("place", "slots", "typical", "message"),
    [
        (1, 2, None, "Waiting for a free start slot: nobody ahead of you."),
        (2, 2, 6.0, "Waiting for a free start slot: 1 person ahead of you (about 6 s)."),
        (5, 2, 6.0, "Waiting for a free start slot: 4 people ahead of you (about 18 s)."),
    ],
)
def test_what_a_waiting_person_reads(place, slots, typical, message):
    assert queue_message(place, slots, typical) == message
