"""Two bot processes on one database (real processes, one SQLite file): each resumes only the
jobs of the platforms it serves, and never takes over a running job whose owner is alive; a
dead owner's running job is reported as interrupted once its lease has lapsed."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from bot import messages
from storage import Database, JobRecord
from storage import jobs as jobs_repo
from storage import usage as usage_repo
from tests.conftest import eventually

ROOT = Path(__file__).resolve().parents[1]
LEASE_S = "1.5"


class Worker:
    """One ``tests.lease_worker`` process."""

    def __init__(self, process: asyncio.subprocess.Process, log: Path) -> None:
        self.process = process
        self.log = log

    async def line(self) -> str:
        assert self.process.stdout is not None
        async with asyncio.timeout(60):
            line = await self.process.stdout.readline()
        assert line, f"the worker exited early:\n{self.log.read_text()[-3000:]}"
        return line.decode().strip()

    async def stop(self) -> None:
        """Close its stdin (it closes the bot cleanly) and wait for it to exit."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        async with asyncio.timeout(30):
            assert await self.process.wait() == 0, self.log.read_text()[-3000:]


@asynccontextmanager
async def _workers(tmp_path: Path) -> AsyncIterator[list[Worker]]:
    started: list[Worker] = []
    try:
        yield started
    finally:
        for worker in started:
            if worker.process.returncode is None:
                worker.process.kill()
                await worker.process.wait()


async def _spawn(started: list[Worker], tmp_path: Path, mode: str, platforms: str) -> Worker:
    env = {key: value for key, value in os.environ.items() if key != "IDEOGRAM_API_KEY"}
    env.update(
        DATA_DIR=str(tmp_path / "data"),
        DATABASE_PATH=str(tmp_path / "data" / "bot.sqlite3"),
        IDEOGRAM_TIMEOUT_S="600",  # the held call must not time out during the test
    )
    log = tmp_path / f"{mode}-{platforms}-{len(started)}.log"
    with log.open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.lease_worker", mode, platforms, LEASE_S,
            cwd=ROOT, env=env, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
        )  # fmt: skip
    worker = Worker(process, log)
    started.append(worker)
    return worker


async def _job(path: Path, job_id: str) -> JobRecord:
    async with await Database.open(path) as db:
        job = await jobs_repo.get_job(db, job_id)
    assert job is not None
    return job


async def test_processes_on_one_database_leave_each_others_jobs_alone(tmp_path: Path) -> None:
    path = tmp_path / "data" / "bot.sqlite3"
    async with _workers(tmp_path) as started:
        holder = await _spawn(started, tmp_path, "hold", "discord")
        ready, running_id, queued_id = (await holder.line()).split()
        assert ready == "ready"
        owner = f":{holder.process.pid}:"

        # A Slack process starts on the same database: it touches no Discord job.
        slack = await _spawn(started, tmp_path, "serve", "slack")
        assert await slack.line() == "steady"
        await slack.stop()
        running = await _job(path, running_id)
        assert running.status == "running" and owner in (running.lease_owner or "")
        assert (await _job(path, queued_id)).status == "queued"

        # A second Discord process beside the live one: the running job's lease is renewed,
        # so it is not reported as interrupted.
        discord = await _spawn(started, tmp_path, "serve", "discord")
        assert await discord.line() == "steady"
        running = await _job(path, running_id)
        assert running.status == "running" and owner in (running.lease_owner or "")

        # The first process dies: once its lease lapses, the Discord process reports the job
        # as interrupted (possibly billed, never charged) and runs the queued one.
        holder.process.kill()
        await holder.process.wait()

        async def final(job_id: str) -> JobRecord | None:
            job = await _job(path, job_id)
            return job if job.status not in ("queued", "running") else None

        interrupted = await eventually(lambda: final(running_id))
        assert isinstance(interrupted, JobRecord)
        assert (interrupted.status, interrupted.error) == ("failed", messages.INTERRUPTED)
        resumed = await eventually(lambda: final(queued_id))
        assert isinstance(resumed, JobRecord) and resumed.status == "succeeded"
        await discord.stop()

    async with await Database.open(path) as db:
        assert set(await usage_repo.uncertain_by_job(db)) == {running_id}
        assert set(await usage_repo.ledger_by_job(db)) == {queued_id}
