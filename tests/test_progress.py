"""The progress coalescer both adapters show job progress through."""

from __future__ import annotations

import asyncio

from bot.progress import ProgressCoalescer
from bot.types import Progress
from tests.conftest import eventually


def _p(state: str, text: str) -> Progress:
    return Progress("job1", state, None, text)  # type: ignore[arg-type]


async def test_a_burst_is_shown_as_its_newest_state_one_call_at_a_time() -> None:
    """While one call is in flight, newer states replace each other; the last one is shown."""
    shown: list[str] = []
    gate = asyncio.Event()
    active = 0
    peak = 0

    async def show(text: str) -> bool:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await gate.wait()
        shown.append(text)
        active -= 1
        return True

    coalescer = ProgressCoalescer(lambda p: p.text, show, name="test")
    coalescer.offer(_p("queued", "position 5"))
    await eventually(lambda: active == 1)
    for n in (4, 3, 2, 1):
        coalescer.offer(_p("queued", f"position {n}"))
    gate.set()
    await eventually(lambda: shown[-1:] == ["position 1"])
    await coalescer.close()
    assert shown == ["position 5", "position 1"]
    assert peak == 1


async def test_final_states_and_late_queue_positions_are_ignored() -> None:
    """The result replaces progress; a queue position after "running" never covers it."""
    shown: list[str] = []

    async def show(text: str) -> bool:
        shown.append(text)
        return True

    coalescer = ProgressCoalescer(lambda p: p.text, show)
    coalescer.offer(_p("running", "Generating…"))
    await eventually(lambda: shown == ["Generating…"])
    coalescer.offer(_p("queued", "position 2"))
    coalescer.offer(_p("succeeded", "done"))
    await coalescer.close()
    assert shown == ["Generating…"]


async def test_a_failed_call_stops_until_the_next_offer_and_close_waits() -> None:
    """``show`` returning False or raising stops the task; the next offer tries again, and
    nothing is shown after close."""
    calls: list[str] = []
    results = [False, True]

    async def show(text: str) -> bool:
        calls.append(text)
        if text == "boom":
            raise RuntimeError("platform hiccup")
        return results.pop(0)

    coalescer = ProgressCoalescer(lambda p: p.text, show)
    coalescer.offer(_p("queued", "position 2"))
    await eventually(lambda: calls == ["position 2"])
    coalescer.offer(_p("queued", "position 1"))
    await eventually(lambda: calls == ["position 2", "position 1"])
    coalescer.offer(_p("running", "boom"))
    await eventually(lambda: calls[-1] == "boom")
    await coalescer.close()
    assert coalescer.closed
    coalescer.offer(_p("running", "after close"))
    await asyncio.sleep(0)
    assert "after close" not in calls


async def test_min_interval_spaces_calls() -> None:
    """With ``min_interval_s`` the second call waits; close during the wait shows nothing more."""
    calls: list[str] = []

    async def show(text: str) -> bool:
        calls.append(text)
        return True

    coalescer = ProgressCoalescer(lambda p: p.text, show, min_interval_s=60)
    coalescer.offer(_p("queued", "position 2"))
    await eventually(lambda: calls == ["position 2"])
    coalescer.offer(_p("running", "Generating…"))
    await asyncio.sleep(0.05)
    await coalescer.close()
    assert calls == ["position 2"]
