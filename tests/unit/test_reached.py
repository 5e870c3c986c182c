"""Reached: read-your-writes waits, from threads and from the event loop, woken once when due."""

from __future__ import annotations

import asyncio
import threading
import time

from projections.runner import Reached


def test_a_thread_waits_until_its_position_is_reached_and_no_longer():
    reached = Reached()
    woke: list[float] = []
    waiter = threading.Thread(target=lambda: woke.append(reached.wait_for(5, timeout=5) and time.monotonic()))
    waiter.start()
    time.sleep(0.05)
    reached.advance(4)
    time.sleep(0.05)
    assert not woke  # 4 is not 5
    advanced = time.monotonic()
    reached.advance(7)
    waiter.join(timeout=5)
    assert woke and woke[0] >= advanced


def test_a_position_already_reached_returns_at_once_and_a_missed_one_times_out():
    reached = Reached()
    reached.advance(10)
    assert reached.wait_for(3, timeout=0)
    assert not reached.wait_for(11, timeout=0.05)


def test_the_event_loop_awaits_a_position_that_another_thread_reaches():
    async def scenario() -> tuple[bool, bool, bool]:
        reached = Reached()
        threading.Timer(0.05, reached.advance, args=(3,)).start()
        first = await reached.reached(3, timeout=5)
        already = await reached.reached(2, timeout=0)
        missed = await reached.reached(9, timeout=0.05)
        return first, already, missed

    assert asyncio.run(scenario()) == (True, True, False)


def test_a_waiter_that_gave_up_is_not_woken_later_and_others_still_are():
    async def scenario() -> bool:
        reached = Reached()
        assert not await reached.reached(5, timeout=0.01)  # gave up
        later = asyncio.ensure_future(reached.reached(5, timeout=5))
        await asyncio.sleep(0.01)
        reached.advance(5)  # wakes the second; the first's callback finds its future settled
        return await later

    assert asyncio.run(scenario())
