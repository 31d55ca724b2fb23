"""A bot process for ``tests/test_two_processes.py``.

Run as ``python -m tests.lease_worker MODE PLATFORMS LEASE_S`` with ``DATA_DIR`` and
``DATABASE_PATH`` in the environment (shared by the processes) and no ``IDEOGRAM_API_KEY``, so
the in-process offline engine answers. ``PLATFORMS`` is comma-separated; ``LEASE_S`` is the
runner's lease time in seconds.

``hold``: start two Discord jobs under an in-flight limit of one image; the first call never
answers, so that job stays running and the second stays queued. Prints
``ready <running job id> <queued job id>``.

``serve``: only serve the platforms. Prints ``steady`` once the runner has done six heartbeats
(two lease periods, so any lease it could wrongly take over would have lapsed).

Both then run until stdin is closed, and close cleanly.
"""

from __future__ import annotations

import asyncio
import sys

from bot.app import BotApp
from bot.config import Settings
from bot.types import Caller, Invocation
from storage import jobs as jobs_repo
from tests.conftest import eventually


async def main(mode: str, platforms: str, lease_s: float) -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    async with BotApp(settings, platforms=frozenset(platforms.split(","))) as app:
        runner = app.engine.runner
        runner.lease_s = lease_s
        tasks: list[asyncio.Task[object]] = []
        if mode == "hold":
            assert app.offline is not None
            app.offline.faults.hang_next = 1
            runner.max_in_flight = 1
        await app.start()
        if mode == "hold":
            for user, text in (("u1", "a stuck fox"), ("u2", "a waiting fox")):
                caller = Caller(platform="discord", user_id=user, server_id="g1", channel_id="c1")
                invocation = Invocation("imagine", caller, text=text)
                tasks.append(asyncio.create_task(app.engine.handle(invocation)))
                await eventually(lambda: runner.in_flight == 1)
            await eventually(lambda: runner.queued == 1)
            (running,) = await jobs_repo.list_jobs_by_status(app.db, ["running"])
            (queued,) = await jobs_repo.list_jobs_by_status(app.db, ["queued"])
            print("ready", running.id, queued.id, flush=True)
        else:
            await eventually(lambda: runner.heartbeats >= 6)
            print("steady", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        for task in tasks:
            task.cancel()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
